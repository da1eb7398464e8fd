package httpapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// saleBody is a sale as an admin writes it (schema SaleInput). Pointers
// mark the members that are required and whose zero is a valid value, so a
// missing price is an error rather than a free ticket.
type saleBody struct {
	ID           string     `json:"id"` // required in sales:load; in PUT, optional and equal to the path's
	Name         string     `json:"name"`
	Currency     string     `json:"currency"`
	OpensAt      *time.Time `json:"opens_at"`
	ClosesAt     *time.Time `json:"closes_at"`
	HoldSeconds  int64      `json:"hold_seconds"`
	PerUserLimit int        `json:"per_user_limit"`
	Tiers        []tierBody `json:"tiers"`
}

type tierBody struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents *int64 `json:"price_cents"`
	Stock      *int   `json:"stock"`
}

type loadBody struct {
	Sales []saleBody `json:"sales"`
}

// config checks presence and converts; the engine validates the values.
func (b *saleBody) config() (engine.SaleConfig, string) {
	switch {
	case b.OpensAt == nil:
		return engine.SaleConfig{}, "opens_at is required (RFC 3339)"
	case b.ClosesAt == nil:
		return engine.SaleConfig{}, "closes_at is required (RFC 3339)"
	case b.HoldSeconds < 1 || b.HoldSeconds > engine.HoldMsMax/1000:
		return engine.SaleConfig{}, fmt.Sprintf("hold_seconds is required: 1 to %d", engine.HoldMsMax/1000)
	}
	cfg := engine.SaleConfig{
		ID: b.ID, Name: b.Name, Currency: b.Currency,
		OpensAtMs: b.OpensAt.UnixMilli(), ClosesAtMs: b.ClosesAt.UnixMilli(),
		HoldMs: b.HoldSeconds * 1000, PerUserLimit: b.PerUserLimit,
		Tiers: make([]engine.TierConfig, len(b.Tiers)),
	}
	for i, t := range b.Tiers {
		if t.PriceCents == nil || t.Stock == nil {
			return engine.SaleConfig{}, fmt.Sprintf("tiers[%d]: price_cents and stock are required", i)
		}
		cfg.Tiers[i] = engine.TierConfig{ID: t.ID, Name: t.Name, PriceCents: *t.PriceCents, Stock: *t.Stock}
	}
	return cfg, ""
}

// saleView is a sale as answered (schema Sale).
type saleView struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Currency     string     `json:"currency"`
	OpensAt      string     `json:"opens_at"`
	ClosesAt     string     `json:"closes_at"`
	HoldSeconds  int64      `json:"hold_seconds"`
	PerUserLimit int        `json:"per_user_limit"`
	Status       string     `json:"status"` // scheduled, open, closed
	Closed       bool       `json:"closed"` // closed by an admin
	OrderCount   int        `json:"order_count"`
	Tiers        []tierView `json:"tiers"`
}

type tierView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Stock      int    `json:"stock"`
	Available  int    `json:"available"`
	Held       int    `json:"held"`
	Sold       int    `json:"sold"`
}

func (s *Server) viewSale(sl *engine.Sale) saleView {
	now := s.now().UnixMilli()
	status := "open"
	switch {
	case sl.Closed || now >= sl.ClosesAtMs:
		status = "closed"
	case now < sl.OpensAtMs:
		status = "scheduled"
	}
	v := saleView{
		ID: sl.ID, Name: sl.Name, Currency: sl.Currency,
		OpensAt: formatTime(sl.OpensAtMs), ClosesAt: formatTime(sl.ClosesAtMs),
		HoldSeconds: sl.HoldMs / 1000, PerUserLimit: sl.PerUserLimit,
		Status: status, Closed: sl.Closed, OrderCount: sl.OrderCount,
		Tiers: make([]tierView, len(sl.Tiers)),
	}
	for i, t := range sl.Tiers {
		v.Tiers[i] = tierView{ID: t.ID, Name: t.Name, PriceCents: t.PriceCents, Stock: t.Stock}
		if i < len(sl.TierCounts) {
			c := sl.TierCounts[i]
			v.Tiers[i].Available, v.Tiers[i].Held, v.Tiers[i].Sold = c.Available, c.Held, c.Sold
		}
	}
	return v
}

type salesView struct {
	Sales []saleView `json:"sales"`
}

func (s *Server) viewSales(sales []engine.Sale) salesView {
	out := salesView{Sales: make([]saleView, len(sales))}
	for i := range sales {
		out.Sales[i] = s.viewSale(&sales[i])
	}
	return out
}

// putSale: PUT /v1/admin/sales/{sale_id} → 201 created, 200 updated.
func (s *Server) putSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	var body saleBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if body.ID != "" && body.ID != string(id) {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("body id %q differs from the path's %q", body.ID, id), -1)
		return
	}
	body.ID = string(id)
	cfg, msg := body.config()
	if msg != "" {
		writeProblem(ctx, codeInvalidRequest, msg, -1)
		return
	}
	sl, created, err := s.eng.PutSale(s.reqCtx(), cfg)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
		ctx.Response.Header.Set("Location", "/v1/sales/"+sl.ID)
	}
	s.writeJSON(ctx, status, s.viewSale(&sl))
}

// loadSales: POST /v1/admin/sales:load {"sales":[...]} → 200 {"sales":[...]}, all or nothing.
func (s *Server) loadSales(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	var body loadBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if len(body.Sales) == 0 {
		writeProblem(ctx, codeInvalidRequest, "sales must list at least one sale", -1)
		return
	}
	cfgs := make([]engine.SaleConfig, len(body.Sales))
	for i := range body.Sales {
		if body.Sales[i].ID == "" {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("sales[%d]: id is required", i), -1)
			return
		}
		var msg string
		if cfgs[i], msg = body.Sales[i].config(); msg != "" {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("sales[%d]: %s", i, msg), -1)
			return
		}
	}
	sales, err := s.eng.LoadSales(s.reqCtx(), cfgs)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, s.viewSales(sales))
}

// listSales: GET /v1/admin/sales.
func (s *Server) listSales(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	sales, err := s.eng.Sales(s.reqCtx())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, s.viewSales(sales))
}

func (s *Server) closeSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.setSaleClosed(ctx, id, true)
}

func (s *Server) reopenSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.setSaleClosed(ctx, id, false)
}

// setSaleClosed: POST /v1/admin/sales/{sale_id}:close and :reopen.
func (s *Server) setSaleClosed(ctx *fasthttp.RequestCtx, id []byte, closed bool) {
	sl, err := s.eng.SetSaleClosed(s.reqCtx(), string(id), closed)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, s.viewSale(&sl))
}

// getSale: GET /v1/sales/{sale_id}, public.
func (s *Server) getSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	sl, err := s.eng.Sale(s.reqCtx(), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, s.viewSale(&sl))
}

// Export page sizes.
const (
	exportLimitDefault = 1000
	exportLimitMax     = 10_000
)

// saleOrders: GET /v1/admin/sales/{sale_id}/orders?cursor=&limit=&format=json|csv.
func (s *Server) saleOrders(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	args := ctx.QueryArgs()
	limit := exportLimitDefault
	if raw := args.Peek("limit"); len(raw) > 0 {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 || n > exportLimitMax {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("limit must be 1 to %d", exportLimitMax), -1)
			return
		}
		limit = n
	}
	format := string(args.Peek("format"))
	if format != "" && format != "json" && format != "csv" {
		writeProblem(ctx, codeInvalidRequest, "format must be json or csv", -1)
		return
	}
	orders, next, err := s.eng.SaleOrders(s.reqCtx(), string(id), string(args.Peek("cursor")), limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if format == "csv" {
		writeOrdersCSV(ctx, orders, next)
		return
	}
	writeOrders(ctx, orders, &next)
}
