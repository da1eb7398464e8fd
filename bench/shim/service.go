// Package shim holds the baselines the bench harness compares onsale with:
// a bare fasthttp ceiling that answers every route with a fixed body, and a
// minimal purchase service with onsale's API shape in front of Redis (a Lua
// script checks stock and the per-user count and decrements atomically) or
// PostgreSQL (a conditional UPDATE of the tier row and the order INSERT in
// one transaction).
//
// The shims are the industry's usual designs, written plainly and honestly:
// they authenticate buyers with the same HS256 JWTs, verify webhook
// signatures, keep idempotency keys and per-user counts, and answer with
// the same JSON. They do not expire holds (a bench run is shorter than a
// hold) and keep their sale configuration in memory, as a real shim would
// cache it.
//
// Each shim runs in its own process (see bench.MaybeRunShim) so that it has
// its own scheduler and garbage collector, like onsale.
package shim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

// Config says which shim to run and how.
type Config struct {
	Kind          string `json:"kind"` // "ceiling", "redis" or "postgres"
	Addr          string `json:"addr"`
	AdminToken    string `json:"admin_token"`
	UserSecret    string `json:"user_secret"`
	PaymentSecret string `json:"payment_secret"`
	RedisAddr     string `json:"redis_addr,omitempty"`
	RedisConns    int    `json:"redis_conns,omitempty"`
	PostgresDSN   string `json:"postgres_dsn,omitempty"`
	PostgresConns int    `json:"postgres_conns,omitempty"`
	// CeilingPurchase is the ceiling's answer to a purchase: CeilingSoldOut
	// (the default) or CeilingCreated.
	CeilingPurchase string `json:"ceiling_purchase,omitempty"`
}

// Run serves the shim on cfg.Addr until ctx is done.
func Run(ctx context.Context, cfg Config, logw io.Writer) error {
	if err := api.CheckLoopback(cfg.Addr); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logw, nil)).With("shim", cfg.Kind)
	var handler fasthttp.RequestHandler
	var closeFn func()
	switch cfg.Kind {
	case "ceiling":
		c, err := newCeiling(cfg.CeilingPurchase)
		if err != nil {
			return err
		}
		handler = c.handle
	case "redis", "postgres":
		var st store
		var err error
		if cfg.Kind == "redis" {
			st, err = newRedisStore(ctx, cfg.RedisAddr, cfg.RedisConns)
		} else {
			st, err = newPostgresStore(ctx, cfg.PostgresDSN, cfg.PostgresConns)
		}
		if err != nil {
			return err
		}
		closeFn = st.close
		svc := &service{cfg: cfg, st: st, sales: map[string]*api.SaleSpec{}, log: log,
			userSecret: []byte(cfg.UserSecret), paymentSecret: []byte(cfg.PaymentSecret)}
		handler = svc.handle
	default:
		return fmt.Errorf("shim: unknown kind %q", cfg.Kind)
	}
	srv := &fasthttp.Server{
		Handler:               handler,
		Name:                  "shim-" + cfg.Kind,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxRequestBodySize:    8 << 20,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(cfg.Addr) }()
	log.Info("serving", "addr", cfg.Addr)
	select {
	case err := <-errc:
		if closeFn != nil {
			closeFn()
		}
		return fmt.Errorf("shim: cannot serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.ShutdownWithContext(sctx)
	if closeFn != nil {
		closeFn()
	}
	return err
}

// store is what the purchase service needs of its database.
type store interface {
	putSale(ctx context.Context, s *api.SaleSpec) (created bool, err error)
	purchase(ctx context.Context, p *purchase) (api.Order, outcome, error)
	getOrder(ctx context.Context, id string) (api.Order, bool, error)
	cancel(ctx context.Context, id, user string) (api.Order, outcome, error)
	pay(ctx context.Context, ev *api.PaymentEvent) (api.Order, outcome, error)
	tiers(ctx context.Context, s *api.SaleSpec) ([]api.TierView, error)
	export(ctx context.Context, sale, cursor string, limit int) ([]api.Order, string, error)
	close()
}

// purchase is one validated purchase request.
type purchase struct {
	sale        *api.SaleSpec
	tier        string
	priceCents  int64
	qty         int
	user        string
	key         string
	orderID     string // fresh id, used if the purchase succeeds
	expiresAt   time.Time
	currency    string
	userLimit   int
	createdAtMs int64
}

// outcome is a store's business answer: "" for done, "replay" for an
// idempotent repeat, or an api error code.
type outcome string

const (
	outcomeOK     outcome = ""
	outcomeReplay outcome = "replay"
)

type service struct {
	cfg           Config
	st            store
	log           *slog.Logger
	userSecret    []byte
	paymentSecret []byte

	mu    sync.RWMutex
	sales map[string]*api.SaleSpec
}

func (s *service) handle(ctx *fasthttp.RequestCtx) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", "panic", fmt.Sprint(r))
			problem(ctx, 500, "internal", "internal error")
		}
	}()
	path := string(ctx.Path())
	method := string(ctx.Method())
	switch {
	case path == "/readyz" || path == "/healthz":
		ctx.SetStatusCode(200)
	case strings.HasPrefix(path, "/v1/sales/") && strings.HasSuffix(path, "/purchase") && method == "POST":
		s.purchase(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/sales/"), "/purchase"))
	case strings.HasPrefix(path, "/v1/sales/") && method == "GET":
		s.getSale(ctx, strings.TrimPrefix(path, "/v1/sales/"))
	case strings.HasPrefix(path, "/v1/orders/") && strings.HasSuffix(path, "/cancel") && method == "POST":
		s.cancel(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/orders/"), "/cancel"))
	case strings.HasPrefix(path, "/v1/orders/") && method == "GET":
		s.getOrder(ctx, strings.TrimPrefix(path, "/v1/orders/"))
	case path == "/v1/payments/webhook" && method == "POST":
		s.webhook(ctx)
	case path == "/v1/admin/sales:load" && method == "POST":
		s.loadSales(ctx)
	case strings.HasPrefix(path, "/v1/admin/sales/") && strings.HasSuffix(path, "/orders") && method == "GET":
		s.export(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/admin/sales/"), "/orders"))
	case strings.HasPrefix(path, "/v1/admin/sales/") && method == "PUT":
		s.putSale(ctx, strings.TrimPrefix(path, "/v1/admin/sales/"))
	default:
		problem(ctx, 404, api.CodeNotFound, "no such route")
	}
}

func (s *service) sale(id string) *api.SaleSpec {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sales[id]
}

func (s *service) purchase(ctx *fasthttp.RequestCtx, saleID string) {
	user, ok := s.user(ctx)
	if !ok {
		return
	}
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if key == "" || len(key) > 255 {
		problem(ctx, 400, api.CodeInvalidRequest, "Idempotency-Key must be 1 to 255 characters")
		return
	}
	var body struct {
		Tier     string `json:"tier"`
		Quantity int    `json:"quantity"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &body); err != nil {
		problem(ctx, 400, api.CodeInvalidRequest, "bad JSON body")
		return
	}
	sale := s.sale(saleID)
	if sale == nil {
		problem(ctx, 404, api.CodeUnknownSale, "no such sale")
		return
	}
	var price int64 = -1
	for _, t := range sale.Tiers {
		if t.ID == body.Tier {
			price = t.PriceCents
		}
	}
	if price < 0 {
		problem(ctx, 404, api.CodeUnknownTier, "no such tier")
		return
	}
	if body.Quantity < 1 || body.Quantity > 64 {
		problem(ctx, 400, api.CodeInvalidRequest, "quantity must be 1 to 64")
		return
	}
	now := time.Now()
	switch {
	case now.Before(sale.OpensAt):
		problem(ctx, 409, api.CodeSaleNotOpen, "the sale is not open yet")
		return
	case !now.Before(sale.ClosesAt):
		problem(ctx, 409, api.CodeSaleClosed, "the sale is closed")
		return
	}
	p := &purchase{
		sale: sale, tier: body.Tier, priceCents: price, qty: body.Quantity, user: user, key: key,
		orderID: newOrderID(sale.ID), expiresAt: now.Add(time.Duration(sale.HoldSeconds) * time.Second).UTC(),
		currency: sale.Currency, userLimit: sale.PerUserLimit, createdAtMs: now.UnixMilli(),
	}
	o, out, err := s.st.purchase(ctx, p)
	switch {
	case err != nil:
		s.fail(ctx, "purchase", err)
	case out == outcomeReplay:
		if o.Tier != p.tier || o.Quantity != p.qty {
			problem(ctx, 422, api.CodeIdempotencyConflict, "this key was used for a different purchase")
			return
		}
		writeOrder(ctx, 200, &o)
	case out != outcomeOK:
		problem(ctx, 409, string(out), "purchase refused: "+string(out))
	default:
		writeOrder(ctx, 201, &o)
	}
}

func (s *service) getOrder(ctx *fasthttp.RequestCtx, id string) {
	user, admin, ok := s.userOrAdmin(ctx)
	if !ok {
		return
	}
	o, found, err := s.st.getOrder(ctx, id)
	switch {
	case err != nil:
		s.fail(ctx, "get order", err)
	case !found || (!admin && o.UserID != user):
		problem(ctx, 404, api.CodeNotFound, "no such order")
	default:
		writeOrder(ctx, 200, &o)
	}
}

func (s *service) cancel(ctx *fasthttp.RequestCtx, id string) {
	user, ok := s.user(ctx)
	if !ok {
		return
	}
	o, out, err := s.st.cancel(ctx, id, user)
	switch {
	case err != nil:
		s.fail(ctx, "cancel", err)
	case out == api.CodeNotFound:
		problem(ctx, 404, api.CodeNotFound, "no such order")
	case out != outcomeOK:
		problem(ctx, 409, string(out), "the order cannot be cancelled")
	default:
		writeOrder(ctx, 200, &o)
	}
}

// signatureToleranceSec is the webhook timestamp tolerance, both ways.
const signatureToleranceSec = 300

func (s *service) webhook(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	if !verifySignature(s.paymentSecret, string(ctx.Request.Header.Peek(api.SignatureHeader)), body, time.Now().Unix()) {
		problem(ctx, 401, api.CodeUnauthorized, "bad signature")
		return
	}
	var ev api.PaymentEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.OrderID == "" ||
		(ev.Type != api.PaymentSucceeded && ev.Type != api.PaymentFailed) {
		problem(ctx, 400, api.CodeInvalidRequest, "bad payment event")
		return
	}
	o, out, err := s.st.pay(ctx, &ev)
	switch {
	case err != nil:
		s.fail(ctx, "webhook", err)
	case out == api.CodeNotFound:
		problem(ctx, 404, api.CodeNotFound, "no such order")
	case out != outcomeOK:
		problem(ctx, 422, string(out), "payment does not match the order")
	default:
		writeOrder(ctx, 200, &o)
	}
}

// verifySignature checks "t=<unix>,v1=<hex>" over "<t>.<body>".
func verifySignature(secret []byte, header string, body []byte, now int64) bool {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || t < now-signatureToleranceSec || t > now+signatureToleranceSec {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func (s *service) getSale(ctx *fasthttp.RequestCtx, id string) {
	sale := s.sale(id)
	if sale == nil {
		problem(ctx, 404, api.CodeUnknownSale, "no such sale")
		return
	}
	tiers, err := s.st.tiers(ctx, sale)
	if err != nil {
		s.fail(ctx, "get sale", err)
		return
	}
	writeJSON(ctx, 200, &api.SaleView{ID: sale.ID, Name: sale.Name, Currency: sale.Currency, PerUserLimit: sale.PerUserLimit, Tiers: tiers})
}

func (s *service) putSale(ctx *fasthttp.RequestCtx, id string) {
	if !s.admin(ctx) {
		return
	}
	var spec api.SaleSpec
	if err := json.Unmarshal(ctx.PostBody(), &spec); err != nil {
		problem(ctx, 400, api.CodeInvalidRequest, "bad sale JSON")
		return
	}
	spec.ID = id
	created, err := s.storeSale(ctx, &spec)
	if err != nil {
		s.fail(ctx, "put sale", err)
		return
	}
	writeJSON(ctx, map[bool]int{true: 201, false: 200}[created], &spec)
}

func (s *service) loadSales(ctx *fasthttp.RequestCtx) {
	if !s.admin(ctx) {
		return
	}
	var doc struct {
		Sales []api.SaleSpec `json:"sales"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &doc); err != nil {
		problem(ctx, 400, api.CodeInvalidRequest, "bad sales JSON")
		return
	}
	for i := range doc.Sales {
		if _, err := s.storeSale(ctx, &doc.Sales[i]); err != nil {
			s.fail(ctx, "load sales", err)
			return
		}
	}
	writeJSON(ctx, 200, map[string]int{"loaded": len(doc.Sales)})
}

func (s *service) storeSale(ctx context.Context, spec *api.SaleSpec) (bool, error) {
	if spec.ID == "" || len(spec.Tiers) == 0 {
		return false, errors.New("shim: a sale needs an id and tiers")
	}
	created, err := s.st.putSale(ctx, spec)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.sales[spec.ID] = spec
	s.mu.Unlock()
	return created, nil
}

func (s *service) export(ctx *fasthttp.RequestCtx, saleID string) {
	if !s.admin(ctx) {
		return
	}
	limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
	if limit <= 0 || limit > 10_000 {
		limit = 1000
	}
	orders, next, err := s.st.export(ctx, saleID, string(ctx.QueryArgs().Peek("cursor")), limit)
	if err != nil {
		s.fail(ctx, "export", err)
		return
	}
	if orders == nil {
		orders = []api.Order{}
	}
	writeJSON(ctx, 200, &api.OrderPage{Orders: orders, NextCursor: next})
}

// user authenticates a buyer's JWT, or answers 401.
func (s *service) user(ctx *fasthttp.RequestCtx) (string, bool) {
	tok, ok := bytes.CutPrefix(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), []byte("Bearer "))
	if ok {
		if sub, err := s.parseToken(string(tok)); err == nil {
			return sub, true
		}
	}
	problem(ctx, 401, api.CodeUnauthorized, "a valid bearer token is required")
	return "", false
}

func (s *service) parseToken(tok string) (string, error) {
	t, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return s.userSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", err
	}
	sub, err := t.Claims.GetSubject()
	if err != nil || sub == "" {
		return "", errors.New("shim: token without sub")
	}
	return sub, nil
}

func (s *service) userOrAdmin(ctx *fasthttp.RequestCtx) (user string, admin, ok bool) {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if hmac.Equal(auth, []byte("Bearer "+s.cfg.AdminToken)) {
		return "", true, true
	}
	user, ok = s.user(ctx)
	return user, false, ok
}

func (s *service) admin(ctx *fasthttp.RequestCtx) bool {
	if hmac.Equal(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), []byte("Bearer "+s.cfg.AdminToken)) {
		return true
	}
	problem(ctx, 401, api.CodeUnauthorized, "admin token required")
	return false
}

func (s *service) fail(ctx *fasthttp.RequestCtx, what string, err error) {
	s.log.Error("cannot "+what, "err", err)
	problem(ctx, 500, "internal", "internal error")
}

func newOrderID(sale string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return sale + "_" + hex.EncodeToString(b[:])
}

func writeOrder(ctx *fasthttp.RequestCtx, status int, o *api.Order) {
	writeJSON(ctx, status, o)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem(ctx, 500, "internal", "cannot encode")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func problem(ctx *fasthttp.RequestCtx, status int, code, detail string) {
	b, _ := json.Marshal(&api.Problem{Title: fasthttp.StatusMessage(status), Status: status, Detail: detail, Code: code})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/problem+json")
	ctx.SetBody(b)
}
