package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/notify"
)

// testClock is a clock the test moves by hand; the engine and the server
// both read it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

// testDataKey is the server's root secret in tests.
var testDataKey = []byte("0123456789abcdef0123456789abcdef")

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testEnv is a real server on a loopback port with an engine on an
// in-memory journal.
type testEnv struct {
	t          *testing.T
	srv        *Server
	eng        *engine.Engine
	clock      *testClock
	base       string
	client     *http.Client
	set        *metrics.Set
	adminToken string
	doorToken  string
	userSecret []byte
	paySecret  []byte
	logs       *lockedWriter // the server's log, read with logText
	notifier   *notify.Notifier
}

type envOptions struct {
	shards   int
	inboxMax int
	cfg      func(*Config)
	// fasthttp, when set, adjusts the fasthttp.Server before it serves
	// (settings that Config does not expose, such as how long idle
	// workers live).
	fasthttp func(*fasthttp.Server)
	// listener, when set, wraps the server's listener.
	listener func(net.Listener) net.Listener
	// dir, when set, puts the journal on the real disk there;
	// snapshotEvents sets the engine's snapshot interval.
	dir            string
	snapshotEvents int
}

// startEnv starts a server; the clock starts at a fixed time.
func startEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if opts.shards == 0 {
		opts.shards = 2
	}
	set := metrics.NewSet()
	logs := &lockedWriter{w: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := newTestJournal(t)
	if opts.dir != "" {
		log = newDiskJournal(t, opts.dir) // realname_test.go
	}
	notifier := notify.New(notify.Config{DataKey: testDataKey, Logger: logger, Metrics: set,
		BackoffBase: time.Millisecond, BackoffMax: 50 * time.Millisecond})
	eng, err := engine.Open(engine.Config{
		Outbox:  notifier,
		Journal: log, Shards: opts.shards, InboxMax: opts.inboxMax, SnapshotEvents: opts.snapshotEvents,
		Now: clock.Now, TickInterval: 5 * time.Millisecond, Logger: logger, Metrics: set,
		OnFatal: func(err error) { t.Errorf("engine failed: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		t: t, eng: eng, clock: clock, set: set, logs: logs,
		adminToken: "admin-token-for-tests", doorToken: "door-token-for-tests",
		userSecret: []byte("user-secret-for-tests-32-bytes!!"), paySecret: []byte("payment-secret-for-tests"),
	}
	cfg := Config{
		Engine: eng, Users: log,
		AdminToken: e.adminToken, DoorToken: e.doorToken, UserSecret: e.userSecret, DataKey: testDataKey,
		PaymentSecrets: [][]byte{[]byte("old-payment-secret"), e.paySecret},
		Logger:         logger, Metrics: set, Now: clock.Now, BcryptCost: bcrypt.MinCost,
		Notify: notifier,
	}
	if opts.cfg != nil {
		opts.cfg(&cfg)
	}
	e.srv = New(cfg)
	e.notifier = notifier
	if err := notifier.Start(log, eng); err != nil {
		t.Fatal(err)
	}
	if opts.fasthttp != nil {
		opts.fasthttp(e.srv.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.listener != nil {
		ln = opts.listener(ln)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	e.srv.SetReady(true)
	e.base = "http://" + ln.Addr().String()
	// Generous: drawing a chart under -race on a machine running every
	// package's tests at once has taken longer than 10 s; a server that
	// hangs still fails the test.
	e.client = &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(func() {
		// Idle keep-alive connections would hold Shutdown up; a client
		// that made many at once (concurrency tests) closes them first.
		e.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		notifier.Close() // first: a snapshot may wait for it
		eng.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.text())
		}
	})
	return e
}

// sub returns the env for a subtest: failures go to t.
func (e *testEnv) sub(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// text is what was written so far; the server may still be writing.
func (l *lockedWriter) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.(*bytes.Buffer).String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// resp is an answer, checked against openapi.json when it arrived.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r *resp) json() map[string]any {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		panic(fmt.Sprintf("body %q: %v", r.body, err))
	}
	return m
}

func (r *resp) str(key string) string {
	v, _ := r.json()[key].(string)
	return v
}

func (r *resp) code() string { return r.str("code") }

type hdr map[string]string

// do sends a request and checks the exchange against the OpenAPI document
// (openapi_check_test.go).
func (e *testEnv) do(method, path string, h hdr, body string) *resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // as a client would; h may say otherwise
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &resp{status: res.StatusCode, header: res.Header, body: b}
	x := exchange{req: req, reqBody: []byte(body), status: r.status, header: res.Header, body: b}
	if err := loadSpec(e.t).check(x); err != nil {
		e.t.Errorf("exchange does not conform to openapi.json: %v\nbody: %.500s", err, b)
	}
	return r
}

// want fails the test unless r has the status (and, for problems, the code).
func (e *testEnv) want(r *resp, status int, code string) *resp {
	e.t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		e.t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	if code != "" && r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("problem with content type %q", r.header.Get("Content-Type"))
	}
	return r
}

func (e *testEnv) admin() hdr { return hdr{"Authorization": "Bearer " + e.adminToken} }

// buyer mints a token for userID as a frontend would.
func (e *testEnv) buyer(userID string) hdr {
	tok, err := MintUserToken(e.userSecret, userID, e.clock.Now(), time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return hdr{"Authorization": "Bearer " + tok}
}

func (h hdr) with(k, v string) hdr {
	out := hdr{k: v}
	for kk, vv := range h {
		out[kk] = vv
	}
	return out
}

// saleJSON is a sale opening an hour before the test clock.
func (e *testEnv) saleJSON(stock, limit int) string {
	now := e.clock.Now()
	return fmt.Sprintf(`{"name":"Concert","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,
		"per_user_limit":%d,"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":%d},
		{"id":"seat","name":"Seated","price_cents":8000,"stock":%d}]}`,
		now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339), limit, stock, stock)
}

func (e *testEnv) putSale(id string, stock, limit int) {
	e.t.Helper()
	r := e.do("PUT", "/v1/admin/sales/"+id, e.admin(), e.saleJSON(stock, limit))
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("put sale: %d %s", r.status, r.body)
	}
}

// buy purchases and returns the answer.
func (e *testEnv) buy(sale, user, key, tier string, qty int) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/sales/"+sale+"/purchase", e.buyer(user).with("Idempotency-Key", key),
		fmt.Sprintf(`{"tier":%q,"quantity":%d}`, tier, qty))
}

// pay sends a signed webhook event.
func (e *testEnv) pay(eventID, typ, orderID string, amount int64, currency string) *resp {
	e.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"type":%q,"order_id":%q,"amount_cents":%d,"currency":%q}`, eventID, typ, orderID, amount, currency)
	return e.do("POST", "/v1/payments/webhook", hdr{"Onsale-Signature": SignWebhook(e.paySecret, []byte(body), e.clock.Now())}, body)
}
