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

	// The catalogue (engine.Catalogue), all optional.
	Event       string     `json:"event"`
	Venue       string     `json:"venue"`
	City        string     `json:"city"`
	StartsAt    *time.Time `json:"starts_at"`
	Category    string     `json:"category"`
	ImageURL    string     `json:"image_url"`
	Description string     `json:"description"`

	RealName *realNameBody `json:"real_name"` // realname.go; absent: no rule

	Refunds  *refundsBody  `json:"refunds"`  // refundrules.go; absent: no self-service refund
	Exchange *exchangeBody `json:"exchange"` // absent: no exchange
	Queue    *queueBody    `json:"queue"`    // queue.go; absent: no waiting room; mode lottery: offers.go
	Waitlist *waitlistBody `json:"waitlist"` // offers.go; absent: no waitlist
}

type tierBody struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	PriceCents *int64          `json:"price_cents"`
	Stock      *int            `json:"stock"`
	Phases     []phaseBody     `json:"phases"`     // pricing.go
	Components []componentBody `json:"components"` // pricing.go: a package
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
	case b.StartsAt != nil && b.StartsAt.UnixMilli() <= 0:
		// 0 is how the engine says "no starts_at".
		return engine.SaleConfig{}, "starts_at must be after 1970-01-01T00:00:00Z"
	}
	cfg := engine.SaleConfig{
		ID: b.ID, Name: b.Name, Currency: b.Currency,
		OpensAtMs: b.OpensAt.UnixMilli(), ClosesAtMs: b.ClosesAt.UnixMilli(),
		HoldMs: b.HoldSeconds * 1000, PerUserLimit: b.PerUserLimit,
		Tiers: make([]engine.TierConfig, len(b.Tiers)),
		Catalogue: engine.Catalogue{
			Event: b.Event, Venue: b.Venue, City: b.City, Category: b.Category,
			ImageURL: b.ImageURL, Description: b.Description,
		},
	}
	if b.StartsAt != nil {
		cfg.StartsAtMs = b.StartsAt.UnixMilli()
	}
	if b.RealName != nil {
		cfg.RealName = engine.RealNameRule{Required: b.RealName.Required, PerDocumentLimit: b.RealName.PerDocumentLimit}
	}
	if msg := refundRules(b.Refunds, b.Exchange, &cfg); msg != "" { // refundrules.go
		return engine.SaleConfig{}, msg
	}
	if msg := offerConfig(b.Queue, b.Waitlist, &cfg); msg != "" { // offers.go
		return engine.SaleConfig{}, msg
	}
	if b.Queue != nil && b.Queue.Mode != "lottery" { // queue.go
		q, msg := b.Queue.config()
		if msg != "" {
			return engine.SaleConfig{}, msg
		}
		cfg.Queue = q
	}
	for i, t := range b.Tiers {
		if t.Stock == nil && len(t.Components) > 0 {
			t.Stock = new(int) // a package has no stock of its own
		}
		if t.PriceCents == nil || t.Stock == nil {
			return engine.SaleConfig{}, fmt.Sprintf("tiers[%d]: price_cents and stock are required", i)
		}
		cfg.Tiers[i] = engine.TierConfig{ID: t.ID, Name: t.Name, PriceCents: *t.PriceCents, Stock: *t.Stock}
		if msg := t.tierRules(i, &cfg.Tiers[i]); msg != "" {
			return engine.SaleConfig{}, msg
		}
	}
	return cfg, ""
}

// appendSale appends the JSON of a sale (schema Sale in openapi.json), by
// hand like an order: GET /v1/sales/{sale_id} is what a rush polls (its
// answers are kept per published view: saleread.go).
func appendSale(b []byte, sl *engine.Sale, nowMs int64) []byte {
	status := saleStatus(sl, nowMs)
	b = append(b, `{"id":`...)
	b = appendString(b, sl.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, sl.Name)
	b = append(b, `,"currency":`...)
	b = appendString(b, sl.Currency)
	b = append(b, `,"opens_at":`...)
	b = appendTime(b, sl.OpensAtMs)
	b = append(b, `,"closes_at":`...)
	b = appendTime(b, sl.ClosesAtMs)
	b = append(b, `,"hold_seconds":`...)
	b = strconv.AppendInt(b, sl.HoldMs/1000, 10)
	b = append(b, `,"per_user_limit":`...)
	b = strconv.AppendInt(b, int64(sl.PerUserLimit), 10)
	b = appendCatalogue(b, &sl.Catalogue)
	b = appendRealNameRule(b, sl.RealName) // realname.go
	b = appendRefundRules(b, sl.RefundPolicy)
	b = appendQueue(b, sl)  // queue.go
	b = appendOffers(b, sl) // offers.go
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","closed":`...)
	b = strconv.AppendBool(b, sl.Closed)
	b = append(b, `,"order_count":`...)
	b = strconv.AppendInt(b, int64(sl.OrderCount), 10)
	b = append(b, `,"tiers":[`...)
	for i := range sl.Tiers {
		t := &sl.Tiers[i]
		if i > 0 {
			b = append(b, ',')
		}
		var c engine.TierCounts
		if i < len(sl.TierCounts) {
			c = sl.TierCounts[i]
		}
		b = append(b, `{"id":`...)
		b = appendString(b, t.ID)
		b = append(b, `,"name":`...)
		b = appendString(b, t.Name)
		b = append(b, `,"price_cents":`...)
		b = strconv.AppendInt(b, t.PriceCents, 10)
		b = append(b, `,"stock":`...)
		b = strconv.AppendInt(b, int64(tierStock(t)), 10)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, int64(c.Available), 10)
		b = append(b, `,"held":`...)
		b = strconv.AppendInt(b, int64(c.Held), 10)
		b = append(b, `,"sold":`...)
		b = strconv.AppendInt(b, int64(c.Sold), 10)
		b = appendTierRules(b, t) // pricing.go
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// saleStatus is a sale's status at nowMs: scheduled, open, closed or
// archived (archive.go).
func saleStatus(sl *engine.Sale, nowMs int64) string {
	switch {
	case sl.Archived:
		return "archived"
	case sl.Closed || nowMs >= sl.ClosesAtMs:
		return "closed"
	case nowMs < sl.OpensAtMs:
		return "scheduled"
	}
	return "open"
}

// appendCatalogue appends the catalogue members a sale has; a sale
// without one is written as before catalogues existed.
func appendCatalogue(b []byte, c *engine.Catalogue) []byte {
	str := func(b []byte, name, v string) []byte {
		if v == "" {
			return b
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		return appendString(b, v)
	}
	b = str(b, "event", c.Event)
	b = str(b, "venue", c.Venue)
	b = str(b, "city", c.City)
	if c.StartsAtMs != 0 {
		b = append(b, `,"starts_at":`...)
		b = appendTime(b, c.StartsAtMs)
	}
	b = str(b, "category", c.Category)
	b = str(b, "image_url", c.ImageURL)
	return str(b, "description", c.Description)
}

// writeSale answers with one sale.
func (s *Server) writeSale(ctx *fasthttp.RequestCtx, status int, sl *engine.Sale) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := appendSale((*buf)[:0], sl, s.now().UnixMilli())
	b = append(b, '\n')
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// writeSales answers with {"sales":[...]}.
func (s *Server) writeSales(ctx *fasthttp.RequestCtx, sales []engine.Sale) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	now := s.now().UnixMilli()
	buf := getBuffer()
	b := append((*buf)[:0], `{"sales":[`...)
	for i := range sales {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSale(b, &sales[i], now)
	}
	b = append(b, "]}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
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
	sl, created, err := s.eng.PutSale(s.engineCtx(ctx), cfg)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
		ctx.Response.Header.Set("Location", "/v1/sales/"+sl.ID)
	}
	s.writeSale(ctx, status, &sl)
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
	sales, err := s.eng.LoadSales(s.engineCtx(ctx), cfgs)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeSales(ctx, sales)
}

// listSales: GET /v1/admin/sales.
func (s *Server) listSales(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	sales, err := s.eng.Sales(s.reqCtx())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeSales(ctx, sales)
}

func (s *Server) closeSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.setSaleClosed(ctx, id, true)
}

func (s *Server) reopenSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.setSaleClosed(ctx, id, false)
}

// setSaleClosed: POST /v1/admin/sales/{sale_id}:close and :reopen.
func (s *Server) setSaleClosed(ctx *fasthttp.RequestCtx, id []byte, closed bool) {
	sl, err := s.eng.SetSaleClosed(s.engineCtx(ctx), string(id), closed)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeSale(ctx, fasthttp.StatusOK, &sl)
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
