package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/onsale/onsale/engine"
)

// benchServer is a Server on an engine over the in-memory journal, driven
// through its handler with a RequestCtx: no sockets, so the numbers are the
// handler's and the engine's. userRate > 0 turns the per-buyer limit on,
// with a bucket that never runs dry: the cost of the check, not its 429s.
func benchServer(b *testing.B, userRate float64) (*Server, []string) {
	b.Helper()
	log := newTestJournal(b)
	eng, err := engine.Open(engine.Config{Journal: log, Shards: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	secret := []byte("bench-user-secret")
	s := New(Config{
		Engine: eng, Users: log,
		AdminToken: "admin", DoorToken: "door", UserSecret: secret, DataKey: testDataKey, PaymentSecrets: [][]byte{[]byte("pay")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.NewSet(), BcryptCost: bcrypt.MinCost,
		UserRatePerSec: userRate, UserBurst: 1 << 30,
	})
	b.Cleanup(func() {
		s.Shutdown(context.Background())
		eng.Close()
	})
	now := time.Now()
	_, _, err = eng.PutSale(context.Background(), engine.SaleConfig{
		ID: "s1", Name: "Bench", Currency: "EUR", OpensAtMs: now.Add(-time.Hour).UnixMilli(),
		ClosesAtMs: now.Add(time.Hour).UnixMilli(), HoldMs: 3600_000, PerUserLimit: 1_000_000,
		Tiers: []engine.TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: engine.StockPerTierMax}},
	})
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, 64)
	for i := range tokens {
		if tokens[i], err = MintUserToken(secret, fmt.Sprintf("user-%d", i), now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	return s, tokens
}

func newPurchaseCtx(token string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/sales/s1/purchase")
	ctx.Request.Header.Set("Authorization", "Bearer "+token)
	ctx.Request.SetBodyString(`{"tier":"floor","quantity":1}`)
	return ctx
}

// benchUserRates are the two settings of the per-buyer limit each purchase
// benchmark runs with, so that one run gives both figures.
var benchUserRates = []struct {
	name   string
	perSec float64
}{{"user_rate=off", 0}, {"user_rate=on", 1e9}}

// BenchmarkPurchaseHandler measures POST /v1/sales/{id}/purchase through
// the handler: routing, token check (cached after the first), the
// per-buyer rate check (on or off), strict JSON decode, the engine's
// durable answer (in-memory journal), the order written by hand.
func BenchmarkPurchaseHandler(b *testing.B) {
	for _, ur := range benchUserRates {
		b.Run("created/"+ur.name, func(b *testing.B) { benchPurchaseCreated(b, ur.perSec) })
		b.Run("replayed/"+ur.name, func(b *testing.B) { benchPurchaseReplayed(b, ur.perSec) })
		b.Run("parallel/"+ur.name, func(b *testing.B) { benchPurchaseParallel(b, ur.perSec) })
	}
	b.Run("coupon/user_rate=off", benchPurchaseCoupon) // compare with created/user_rate=off
}

// benchPurchaseCoupon is benchPurchaseCreated with a 10 % coupon (no caps)
// in the body, written in lower case as a buyer might.
func benchPurchaseCoupon(b *testing.B) {
	s, tokens := benchServer(b, 0)
	if _, err := s.eng.PutCoupon(context.Background(), "s1", engine.CouponConfig{Code: "TEN", PercentOff: 10}); err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	ctx := newPurchaseCtx(tokens[0])
	ctx.Request.SetBodyString(`{"tier":"floor","quantity":1,"coupon":"ten"}`)
	key := make([]byte, 0, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key = strconv.AppendInt(append(key[:0], 'k'), int64(i), 10)
		ctx.Request.Header.SetBytesV("Idempotency-Key", key)
		ctx.Response.Reset()
		h(ctx)
		if ctx.Response.StatusCode() != 201 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func benchPurchaseCreated(b *testing.B, userRate float64) {
	s, tokens := benchServer(b, userRate)
	h := s.Handler()
	ctx := newPurchaseCtx(tokens[0])
	key := make([]byte, 0, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key = strconv.AppendInt(append(key[:0], 'k'), int64(i), 10)
		ctx.Request.Header.SetBytesV("Idempotency-Key", key)
		ctx.Response.Reset()
		h(ctx)
		if ctx.Response.StatusCode() != 201 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func benchPurchaseReplayed(b *testing.B, userRate float64) {
	s, tokens := benchServer(b, userRate)
	h := s.Handler()
	ctx := newPurchaseCtx(tokens[0])
	ctx.Request.Header.Set("Idempotency-Key", "k")
	h(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func benchPurchaseParallel(b *testing.B, userRate float64) {
	s, tokens := benchServer(b, userRate)
	h := s.Handler()
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		ctx := newPurchaseCtx(tokens[int(w)%len(tokens)])
		key := make([]byte, 0, 32)
		for i := 0; pb.Next(); i++ {
			key = strconv.AppendInt(append(strconv.AppendInt(append(key[:0], 'w'), w, 10), '-'), int64(i), 10)
			ctx.Request.Header.SetBytesV("Idempotency-Key", key)
			ctx.Response.Reset()
			h(ctx)
			if ctx.Response.StatusCode() != 201 {
				b.Errorf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
		}
	})
}

// BenchmarkHandlerParts isolates the pieces of the hot path.
func BenchmarkHandlerParts(b *testing.B) {
	b.Run("decode", func(b *testing.B) {
		body := []byte(`{"tier":"floor","quantity":1}`)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var p purchaseBody
			if err := decodeStrict(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode_purchase", func(b *testing.B) {
		body := []byte(`{"tier":"floor","quantity":1}`)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var p purchaseBody
			if err := decodePurchaseBody(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	webhook := []byte(`{"id":"evt_000123","type":"payment.succeeded","order_id":"s1.abcdefghijklmnopqrstuvwxyz","amount_cents":9000,"currency":"EUR"}`)
	b.Run("decode_webhook_strict", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var ev webhookBody
			if err := decodeStrict(webhook, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode_webhook", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var ev webhookBody
			if err := decodeWebhookBody(webhook, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendOrder", func(b *testing.B) {
		o := engine.Order{ID: "s1.abcdefghijklmnopqrstuvwxyz", SaleID: "s1", TierID: "floor", UserID: "user-1",
			Quantity: 2, AmountCents: 10000, Currency: "EUR", Status: engine.StatusPaid,
			CreatedAtMs: 1_800_000_000_000, ExpiresAtMs: 1_800_000_600_000, UpdatedAtMs: 1_800_000_000_000}
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			buf = appendOrder(buf[:0], &o, viewWithTickets)
		}
	})
	b.Run("route", func(b *testing.B) {
		p := []byte("/v1/sales/s1/purchase")
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r, _ := matchRoute(p); r != routePurchase {
				b.Fatal(r)
			}
		}
	})
	b.Run("token_cached", func(b *testing.B) {
		v := newTokenVerifier([]byte("k"))
		tok, _ := MintUserToken([]byte("k"), "u1", time.Now(), time.Hour)
		token := []byte(tok) // as fasthttp hands it: the conversion is not measured
		now := time.Now()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := v.verify(token, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// authenticate_cached: the whole check of a buyer's repeated request,
	// from the Authorization header to the user id.
	b.Run("authenticate_cached", func(b *testing.B) {
		s, tokens := benchServer(b, 0)
		ctx := newPurchaseCtx(tokens[0])
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if who, problem := s.authenticate(ctx); problem != "" || who.kind != principalBuyer {
				b.Fatal(problem)
			}
		}
	})
	b.Run("token_uncached", func(b *testing.B) {
		v := newTokenVerifier([]byte("k"))
		tok, _ := MintUserToken([]byte("k"), "u1", time.Now(), time.Hour)
		token := []byte(tok) // as fasthttp hands it: the conversion is not measured
		now := time.Now()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for j := range v.shards {
				clear(v.shards[j].m)
			}
			if _, err := v.verify(token, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetSale measures the public availability read through the
// handler: a published view, no shard, no log.
// BenchmarkGetSale: the public availability read in the handler, of the
// one-tier sale and of a sale shaped as the harness's steady scenario's
// (three tiers).
func BenchmarkGetSale(b *testing.B) {
	s, _ := benchServer(b, 0)
	now := time.Now()
	steady := engine.SaleConfig{
		ID: "s00042", Name: "Sale 42", Currency: "EUR", OpensAtMs: now.Add(-time.Hour).UnixMilli(),
		ClosesAtMs: now.Add(time.Hour).UnixMilli(), HoldMs: 120_000, PerUserLimit: 4,
	}
	for t := range 3 {
		steady.Tiers = append(steady.Tiers, engine.TierConfig{ID: fmt.Sprintf("t%d", t+1), Name: fmt.Sprintf("Tier t%d", t+1),
			PriceCents: int64(2_000 + 1_500*t), Stock: 2_000})
	}
	if _, _, err := s.eng.PutSale(context.Background(), steady); err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	b.Run("tiers=3/new-view", func(b *testing.B) {
		// What the first poll of a new view pays (after a purchase, say):
		// the encoding, its ETag, two allocations. A copy of the view
		// has no memo, so every round makes its answer.
		sl, err := s.eng.Sale(context.Background(), steady.ID)
		if err != nil {
			b.Fatal(err)
		}
		nowMs := now.UnixMilli()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if a := saleAnswerOf(&sl, nowMs); len(a.body) == 0 {
				b.Fatal("no body")
			}
		}
	})
	for _, c := range []struct{ name, sale string }{{"tiers=1", "s1"}, {"tiers=3", steady.ID}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := &fasthttp.RequestCtx{}
			ctx.Request.Header.SetMethod("GET")
			ctx.Request.SetRequestURI("/v1/sales/" + c.sale)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ctx.Response.Reset()
				h(ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
