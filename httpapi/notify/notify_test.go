package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

var (
	testDataKey = []byte("data-key-for-notify-tests-32-bytes!!")
	quiet       = slog.New(slog.DiscardHandler)
)

// node is one run of onsale's back end: the log in dir, the engine and
// the notifier, stopped in the order main stops them.
type node struct {
	log *wal.Log
	eng *engine.Engine
	n   *Notifier
}

func startNode(t *testing.T, dir string, cfg Config) *node {
	t.Helper()
	return startNodeSnap(t, dir, cfg, 7)
}

// startNodeSnap is startNode with a snapshot every snapEvents events.
func startNodeSnap(t *testing.T, dir string, cfg Config, snapEvents int) *node {
	t.Helper()
	log, err := wal.Open(dir, wal.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataKey, cfg.Logger = testDataKey, quiet
	n := New(cfg)
	eng, err := engine.Open(engine.Config{Journal: log, Shards: 2, SnapshotEvents: snapEvents, TickInterval: 5 * time.Millisecond,
		Logger: quiet, Outbox: n, OnFatal: func(err error) { t.Errorf("engine failed: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(log, eng); err != nil {
		t.Fatal(err)
	}
	nd := &node{log: log, eng: eng, n: n}
	t.Cleanup(nd.stop)
	return nd
}

func (nd *node) stop() {
	if nd.log == nil {
		return
	}
	nd.n.Close()
	nd.eng.Close()
	nd.log.Close()
	nd.log = nil
}

// receiver is a webhook endpoint on loopback that checks every signature.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server
	mu     sync.Mutex
	status int // answered; 0: 200
	got    []Payload
	calls  int
	bad    int // requests whose signature did not verify
	seen   chan struct{}
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: []byte(secret), seen: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if !verify(r.secret, req.Header.Get("Onsale-Signature"), body) {
		r.bad++
		w.WriteHeader(400)
		return
	}
	if r.status != 0 {
		w.WriteHeader(r.status)
		return
	}
	var p Payload
	if err := jsonv2.Unmarshal(body, &p); err != nil || p.ID != req.Header.Get("Onsale-Event-Id") {
		r.t.Errorf("bad delivery %s: %v", body, err)
	}
	r.got = append(r.got, p)
	select {
	case r.seen <- struct{}{}:
	default:
	}
}

// verify checks t=<unix>,v1=<hex> as a receiver would.
func verify(secret []byte, header string, body []byte) bool {
	ts, sig, ok := strings.Cut(header, ",v1=")
	ts, ok2 := strings.CutPrefix(ts, "t=")
	if !ok || !ok2 {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

func (r *receiver) setStatus(code int) {
	r.mu.Lock()
	r.status = code
	r.mu.Unlock()
}

func (r *receiver) payloads() []Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until cond holds, woken by the receiver, for at most 20 s.
func (r *receiver) waitFor(t *testing.T, what string, cond func([]Payload) bool) []Payload {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if got := r.payloads(); cond(got) {
			return got
		}
		select {
		case <-r.seen:
		case <-time.After(50 * time.Millisecond): // the receiver wakes us; this only bounds a missed wake-up
		case <-deadline:
			t.Fatalf("timed out waiting for %s; got %d deliveries", what, len(r.payloads()))
		}
	}
}

func addEndpoint(t *testing.T, nd *node, id, url, secret string, events ...string) {
	t.Helper()
	_, err := nd.eng.CreateWebhook(context.Background(), engine.Webhook{ID: id, URL: url, Events: events,
		SecretSealed: nd.n.SealSecret(id, []byte(secret))})
	if err != nil {
		t.Fatal(err)
	}
	waitEndpoint(t, nd.n, id)
}

// waitEndpoint waits until the notifier has read the endpoint's creation
// from the log: notifications decided after that go to it.
func waitEndpoint(t *testing.T, n *Notifier, id string) {
	t.Helper()
	for i := 0; n.Backlog(id) < 0; i++ {
		if i == 2000 {
			t.Fatalf("endpoint %s never started", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testSale(id string) engine.SaleConfig {
	now := time.Now().UnixMilli()
	return engine.SaleConfig{ID: id, Name: "Concert " + id, Currency: "EUR", OpensAtMs: now - 1000, ClosesAtMs: now + 3600_000,
		HoldMs: 600_000, PerUserLimit: 100, Tiers: []engine.TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 1000}}}
}

func buy(t *testing.T, eng *engine.Engine, sale, user, key string) engine.Order {
	t.Helper()
	o, _, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestDeliveryAfterRestart: notifications decided while the receiver is
// down, across snapshots that truncate the log, are delivered after a
// restart: every one, signed, duplicates only by id.
func TestDeliveryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	rcv := newReceiver(t, "endpoint-secret-0123456789")
	rcv.setStatus(503)
	fast := Config{BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond}
	nd := startNode(t, dir, fast)
	addEndpoint(t, nd, "wh_a", rcv.srv.URL+"/hook", "endpoint-secret-0123456789", engine.NotifyOrderCreated, engine.NotifyOrderCancelled)
	ctx := context.Background()
	for _, s := range []string{"s1", "s2", "s3"} {
		if _, _, err := nd.eng.PutSale(ctx, testSale(s)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{} // "<type> <order id>"
	for i := range 30 {
		o := buy(t, nd.eng, "s"+strconv.Itoa(i%3+1), "user:u"+strconv.Itoa(i), "k")
		want[engine.NotifyOrderCreated+" "+o.ID] = true
		if i%5 == 0 {
			if _, err := nd.eng.Cancel(ctx, o.ID, o.UserID); err != nil {
				t.Fatal(err)
			}
			want[engine.NotifyOrderCancelled+" "+o.ID] = true
		}
	}
	nd.stop()

	rcv.setStatus(0)
	nd = startNode(t, dir, fast)
	missing := func(got []Payload) []string {
		have := map[string]bool{}
		for _, p := range got {
			have[p.Type+" "+p.Data.OrderID] = true
		}
		var out []string
		for k := range want {
			if !have[k] {
				out = append(out, k)
			}
		}
		return out
	}
	defer func() {
		if t.Failed() {
			t.Logf("missing: %v", missing(rcv.payloads()))
			for _, p := range rcv.payloads() {
				t.Logf("got %s %s %s", p.ID, p.Type, p.Data.OrderID)
			}
		}
	}()
	got := rcv.waitFor(t, "every notification", func(got []Payload) bool {
		have := map[string]bool{}
		for _, p := range got {
			have[p.Type+" "+p.Data.OrderID] = true
		}
		for k := range want {
			if !have[k] {
				return false
			}
		}
		return true
	})
	ids := map[string]string{}
	for _, p := range got {
		key := p.Type + " " + p.Data.OrderID
		if !want[key] {
			t.Errorf("delivered %s, which the endpoint did not ask for or nobody decided", key)
		}
		if prev, dup := ids[key]; dup && prev != p.ID {
			t.Errorf("%s delivered twice with different ids %s and %s", key, prev, p.ID)
		}
		ids[key] = p.ID
	}
	rcv.mu.Lock()
	bad := rcv.bad
	rcv.mu.Unlock()
	if bad > 0 {
		t.Errorf("%d deliveries had a signature that did not verify", bad)
	}
	// The order of one sale's notifications is decide order.
	last := map[string]int64{}
	for _, p := range got {
		at := p.CreatedAt.UnixMilli()
		if at < last[p.Data.SaleID] {
			t.Errorf("sale %s: %s at %v delivered after a later one", p.Data.SaleID, p.ID, p.CreatedAt)
		}
		last[p.Data.SaleID] = at
	}
}

// fakeTime is the backoff's clock: After returns at once and moves the
// clock on by the wait asked.
type fakeTime struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.waits = append(f.waits, d)
	now := f.now
	f.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- now
	return c
}

// TestReceiverDownForAnHour: a receiver that refuses everything for an
// hour of (fake) time gets every notification afterwards, in order; the
// waits between attempts grow to the cap and never beyond it.
func TestReceiverDownForAnHour(t *testing.T) {
	ft := &fakeTime{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	start := ft.Now()
	rcv := newReceiver(t, "endpoint-secret-0123456789")
	var rcvMu sync.Mutex
	up := false
	rcv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rcvMu.Lock()
		if !up && ft.Now().Sub(start) >= time.Hour {
			up = true
			rcv.setStatus(0)
		}
		rcvMu.Unlock()
		rcv.serve(w, req)
	})
	rcv.setStatus(503)
	cfg := Config{Now: ft.Now, After: ft.After, BackoffBase: time.Second, BackoffMax: 10 * time.Minute}
	nd := startNode(t, t.TempDir(), cfg)
	addEndpoint(t, nd, "wh_a", rcv.srv.URL, "endpoint-secret-0123456789", engine.NotifyOrderCreated)
	if _, _, err := nd.eng.PutSale(context.Background(), testSale("s1")); err != nil {
		t.Fatal(err)
	}
	var orders []string
	for i := range 20 {
		orders = append(orders, buy(t, nd.eng, "s1", "user:u"+strconv.Itoa(i), "k").ID)
	}
	got := rcv.waitFor(t, "20 orders", func(got []Payload) bool { return len(got) >= 20 })
	for i, p := range got[:20] {
		if p.Data.OrderID != orders[i] {
			t.Fatalf("delivery %d is %s, want %s (decide order)", i, p.Data.OrderID, orders[i])
		}
	}
	ft.mu.Lock()
	waits := slices.Clone(ft.waits)
	elapsed := ft.now.Sub(start)
	ft.mu.Unlock()
	if elapsed < time.Hour {
		t.Fatalf("delivered after %s of fake time, want the hour of the outage", elapsed)
	}
	for _, d := range waits {
		if d <= 0 || d > 10*time.Minute {
			t.Fatalf("a backoff of %s: want (0, 10m]", d)
		}
	}
	var ds []Delivery
	for i := 0; ; i++ { // the log is written just after the receiver answers
		var err error
		ds, err = nd.n.Deliveries("wh_a", 200)
		if err != nil || i == 1000 {
			t.Fatalf("delivery log: %d entries, %v", len(ds), err)
		}
		if len(ds) == 20 && ds[0].State == "delivered" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	first := ds[len(ds)-1] // newest first
	if first.State != "delivered" || first.AttemptsN < 2 || first.Attempts[0].StatusCode != 503 || first.DeliveredAt == nil {
		t.Fatalf("first delivery's log: %+v", first)
	}
	// A manual redelivery sends it again, with the same event id.
	before := len(rcv.payloads())
	d, err := nd.n.Redeliver("wh_a", first.ID)
	if err != nil || d.AttemptsN != first.AttemptsN+1 || !d.Attempts[len(d.Attempts)-1].Manual {
		t.Fatalf("Redeliver: %+v %v", d, err)
	}
	after := rcv.payloads()
	if len(after) != before+1 || after[before].ID != got[0].ID {
		t.Fatalf("redelivered %+v, want event %s again", after[before:], got[0].ID)
	}
	if _, err := nd.n.Redeliver("wh_a", "dlv_999999"); err != ErrUnknownDelivery {
		t.Fatalf("Redeliver of nothing: %v", err)
	}
}

func TestSignMatchesTheVerifier(t *testing.T) {
	body := []byte(`{"id":"evt_0_1_0"}`)
	h := Sign([]byte("s3cret"), body, time.Unix(1_700_000_000, 0))
	if !strings.HasPrefix(h, "t=1700000000,v1=") || !verify([]byte("s3cret"), h, body) {
		t.Fatalf("signature %q does not verify", h)
	}
	if verify([]byte("other"), h, body) || verify([]byte("s3cret"), h, append(body, ' ')) {
		t.Fatal("a signature verified with the wrong secret or body")
	}
}

func TestSealedSecretsAreBoundToTheirEndpoint(t *testing.T) {
	n := New(Config{DataKey: testDataKey})
	sealed := n.SealSecret("wh_a", []byte("s3cret"))
	if strings.Contains(string(sealed), "s3cret") {
		t.Fatal("the sealed secret holds the secret in clear")
	}
	if got, err := n.openSecret(&engine.Webhook{ID: "wh_a", SecretSealed: sealed}); err != nil || string(got) != "s3cret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := n.openSecret(&engine.Webhook{ID: "wh_b", SecretSealed: sealed}); err == nil {
		t.Fatal("a secret sealed for wh_a opened for wh_b")
	}
}
