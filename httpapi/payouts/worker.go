package payouts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/payments"
)

// Engine is what the worker needs of the engine.
type Engine interface {
	Payouts(ctx context.Context, q engine.PayoutQuery) ([]engine.Payout, error)
	UpdatePayout(ctx context.Context, u engine.PayoutUpdate) (engine.Payout, error)
}

// Config configures a Worker. Zero values take the defaults in brackets.
type Config struct {
	Engine    Engine
	Refunders map[string]payments.Refunder // by provider name; a provider without one is settled by hand
	// Auto sends duplicate charges, mismatched and late payments without
	// an admin; off, they wait for POST /v1/admin/refunds/{id}:retry.
	Auto bool
	// Since: payouts neither created nor changed since then are not sent.
	// A log written before payouts existed replays into payouts for
	// refunds made long ago (by hand, or by the provider's dashboard);
	// sending them would refund twice. An admin's :retry changes a payout,
	// so an old one still goes out when asked. Zero: all.
	Since       time.Time
	Interval    time.Duration // between looks for due payouts [1s]
	BackoffBase time.Duration // the first retry's wait [5s]
	BackoffMax  time.Duration // the longest wait [1h]
	AttemptsMax int           // attempts before refund_failed [12]
	BatchMax    int           // payouts sent per look [100]
	CallTimeout time.Duration // one provider call at most, on top of the client's own [30s]
	Logger      *slog.Logger  // [slog.Default()]
	Metrics     *metrics.Set  // [none]
	Now         func() time.Time
}

// Worker sends due payouts.
type Worker struct {
	cfg  Config
	wake chan struct{}
}

// New returns a worker; Run starts it.
func New(cfg Config) *Worker {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Interval, time.Second)
	def(&cfg.BackoffBase, 5*time.Second)
	def(&cfg.BackoffMax, time.Hour)
	def(&cfg.CallTimeout, 30*time.Second)
	if cfg.AttemptsMax <= 0 {
		cfg.AttemptsMax = 12
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Worker{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Run sends due payouts until ctx is done.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := w.Pass(ctx); err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("refund worker: cannot list due refunds; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
	}
}

// Wake makes Run look for due payouts now (after an admin's retry).
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Pass sends the payouts due now, up to BatchMax, and returns how many it
// sent.
func (w *Worker) Pass(ctx context.Context) (int, error) {
	due, err := w.cfg.Engine.Payouts(ctx, engine.PayoutQuery{DueAtMs: w.cfg.Now().UnixMilli(), ApprovedOnly: !w.cfg.Auto,
		UpdatedSinceMs: sinceMs(w.cfg.Since), Limit: w.cfg.BatchMax})
	if err != nil {
		return 0, err
	}
	for i := range due {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		w.send(ctx, &due[i])
	}
	return len(due), nil
}

// send makes one attempt at a payout (sends its refund, or asks how a
// refund the provider accepted ended) and logs its answer.
func (w *Worker) send(ctx context.Context, p *engine.Payout) {
	u := engine.PayoutUpdate{PayoutID: p.ID, Action: engine.PayoutAttempted, AttemptsSeen: p.Attempts}
	accepted := p.ProviderRefundID != "" // pending with the provider's id: accepted there, to confirm
	r := w.call(ctx, p, accepted)
	switch {
	case r.Outcome == payments.RefundDone:
		u.Outcome, u.ProviderRefundID, u.Detail = engine.PayoutRefunded, r.ProviderRefundID, r.Detail
		if u.ProviderRefundID == "" {
			u.ProviderRefundID = p.ProviderRefundID
		}
	case r.Outcome == payments.RefundFailed:
		u.Outcome, u.Detail = engine.PayoutFailed, r.Detail
	case r.Outcome == payments.RefundAccepted, r.Outcome == payments.RefundRetry && accepted:
		// At the provider: asked again later, however long it takes
		// (the money is on its way or stuck there, not here); never
		// given up on, as a refund sent again could be a second one.
		u.Outcome, u.Detail, u.ProviderRefundID = engine.PayoutPending, r.Detail, r.ProviderRefundID
		if u.ProviderRefundID == "" {
			u.ProviderRefundID = p.ProviderRefundID
		}
		u.NextAttemptAtMs = w.cfg.Now().Add(w.backoff(p.Attempts)).UnixMilli()
	case r.Outcome == payments.RefundNotFound:
		// The provider has no such refund: sent again, same key.
		u.Outcome, u.Detail = engine.PayoutPending, r.Detail
		u.NextAttemptAtMs = w.cfg.Now().UnixMilli()
	default:
		if p.Attempts+1 >= w.cfg.AttemptsMax {
			u.Outcome, u.Detail = engine.PayoutFailed, fmt.Sprintf("gave up after %d attempts: %s", p.Attempts+1, r.Detail)
		} else {
			u.Outcome, u.Detail = engine.PayoutPending, r.Detail
			u.NextAttemptAtMs = w.cfg.Now().Add(w.backoff(p.Attempts)).UnixMilli()
		}
	}
	w.count(p.Provider, u.Outcome)
	attrs := []any{"refund_id", p.ID, "provider", p.Provider, "reason", p.Reason.String(), "amount_cents", p.AmountCents,
		"currency", p.Currency, "attempt", p.Attempts + 1, "query", accepted, "outcome", u.Outcome.String(),
		"provider_refund_id", u.ProviderRefundID, "detail", u.Detail}
	if _, err := w.cfg.Engine.UpdatePayout(ctx, u); err != nil {
		// Not logged: the next pass sends it again with the same key,
		// which the provider answers as the same refund.
		w.cfg.Logger.Warn("refund sent but its answer is not logged yet; it is sent again with the same key", append(attrs, "err", err)...)
		return
	}
	level := slog.LevelInfo
	if u.Outcome == engine.PayoutFailed {
		level = slog.LevelError
	}
	w.cfg.Logger.Log(ctx, level, "refund attempted", attrs...)
}

func (w *Worker) call(ctx context.Context, p *engine.Payout, query bool) payments.RefundResult {
	r, ok := w.cfg.Refunders[p.Provider]
	if !ok {
		if query {
			return payments.RefundResult{Outcome: payments.RefundRetry,
				Detail: fmt.Sprintf("this server has no %q client to ask how refund %s ended", p.Provider, p.ProviderRefundID)}
		}
		return payments.RefundResult{Outcome: payments.RefundFailed,
			Detail: fmt.Sprintf("this server sends no refunds through %q: refund it at the provider, then mark it refunded", p.Provider)}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	req := payments.RefundRequest{
		Key: RefundKey(p.ID), TransactionID: p.TransactionID, AmountMinor: p.AmountCents, TotalMinor: p.TotalCents,
		Currency: p.Currency, Reason: "onsale " + p.Reason.String(), PayoutID: p.ID, ProviderRefundID: p.ProviderRefundID,
	}
	if query {
		return r.QueryRefund(ctx, req)
	}
	return r.Refund(ctx, req)
}

// backoff is the wait after attempt n+1 failed for now: BackoffBase·2^n,
// at most BackoffMax, with full jitter over its second half so that
// payouts that failed together do not come back together.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.BackoffMax
	if n < 30 && w.cfg.BackoffBase<<n < w.cfg.BackoffMax && w.cfg.BackoffBase<<n > 0 {
		d = w.cfg.BackoffBase << n
	}
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) count(provider string, outcome engine.PayoutStatus) {
	if w.cfg.Metrics == nil {
		return
	}
	w.cfg.Metrics.GetOrCreateCounter(fmt.Sprintf(`onsale_refund_attempts_total{provider=%q,outcome=%q}`, provider, outcome)).Inc()
}

// RefundKey is the idempotency key of a payout's refund at its provider:
// "rf" and 32 hex characters of the payout id's SHA-256. Stable across
// attempts and restarts, within every provider's limits (Alipay's
// out_request_no and WeChat Pay's out_refund_no take 64 of [0-9A-Za-z_-]),
// and distinct for distinct payouts.
func RefundKey(payoutID string) string {
	h := sha256.Sum256([]byte("onsale refund\x00" + payoutID))
	return "rf" + hex.EncodeToString(h[:16])
}

func sinceMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
