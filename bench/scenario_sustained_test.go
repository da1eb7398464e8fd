package bench

import (
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

// sentRequest is what the recording server saw of one request.
type sentRequest struct {
	kind string // "purchase", "pay", "cancel"
	user int    // purchases: the buyer, from the Authorization header
	key  string // purchases: the Idempotency-Key
	body string
	path string
}

// recordingServer answers like onsale while stock lasts (201 and a new
// order per new key, 200 and the same order for a key seen before, 200
// to payments and cancels) and keeps every request in arrival order.
type recordingServer struct {
	mu     sync.Mutex
	sent   []sentRequest
	orders map[string]string // key -> order id
	userOf map[string]int    // Authorization -> user index
}

func startRecordingServer(t *testing.T, users *Users) (*recordingServer, string) {
	t.Helper()
	rs := &recordingServer{orders: map[string]string{}, userOf: map[string]int{}}
	for i, a := range users.Auth {
		rs.userOf[a] = i
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: rs.handle}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return rs, ln.Addr().String()
}

func (rs *recordingServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := sentRequest{path: path, body: string(ctx.PostBody())}
	ctx.SetContentType("application/json")
	switch {
	case strings.HasSuffix(path, "/purchase"):
		r.kind = "purchase"
		r.user = rs.userOf[string(ctx.Request.Header.Peek("Authorization"))]
		r.key = string(ctx.Request.Header.Peek("Idempotency-Key"))
		id, seen := rs.orders[r.key]
		status := 200
		if !seen {
			id, status = fmt.Sprintf("o%d", len(rs.orders)), 201
			rs.orders[r.key] = id
		}
		ctx.SetStatusCode(status)
		fmt.Fprintf(ctx, `{"order_id":%q,"status":"pending","amount_cents":4500,"currency":"EUR"}`, id)
	case path == "/v1/payments/webhook":
		r.kind = "pay"
		ctx.SetBodyString(`{}`)
	case strings.HasSuffix(path, "/cancel"):
		r.kind = "cancel"
		ctx.SetBodyString(`{}`)
	default:
		ctx.SetStatusCode(404)
	}
	rs.sent = append(rs.sent, r)
}

// TestSustainedBuyers drives the sustained scenario's ops in a fixed order
// against a recording server and checks the crowd it makes: every buyer
// makes 2-4 purchases as one user and leaves, no two workers are the same
// buyer, a share of purchases resend their key, and a share of orders are
// paid or cancelled. The order of the calls is fixed, so the run is
// deterministic for its seed.
func TestSustainedBuyers(t *testing.T) {
	const workers, opsPerWorker = 3, 4_000
	cfg := DefaultSustained()
	cfg.Users = 10_000
	cfg.FollowUp = FollowUpConfig{PayShare: 0.5, CancelShare: 0.2, RetryShare: 0.05}
	users, err := MintUsers([]byte("secret"), cfg.Users, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rs, addr := startRecordingServer(t, users)
	c, err := api.NewClient(api.ClientConfig{Addr: addr, PaymentSecret: []byte("pay"), MaxConns: 4, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	scen := NewSustained(cfg, users, time.Now())
	if s := scen.Sales(); len(s) != 1 || s[0].Tiers[0].Stock != cfg.Stock || s[0].PerUserLimit != cfg.PerUserLimit {
		t.Fatalf("sale %+v", s)
	}
	ops := make([]Op, workers)
	for w := range ops {
		ops[w] = scen.NewOp(c, w)
	}
	worker := make([]int, 0, workers*opsPerWorker) // who sent request i
	for i := range workers * opsPerWorker {
		w := i % workers
		kind, res := ops[w](false)
		if !res.OK() {
			t.Fatalf("request %d (%s) got %d %s", i, kind, res.Status, res.Code)
		}
		worker = append(worker, w)
	}
	if len(rs.sent) != len(worker) {
		t.Fatalf("server saw %d requests, sent %d", len(rs.sent), len(worker))
	}

	seenKey := map[string]bool{}
	ownerOf := map[int]int{}                // user -> worker
	runs := make([][]int, workers)          // per worker: lengths of same-user runs of new purchases
	lastUser := []int{-1, -1, -1}           // per worker
	var created, retried, pays, cancels int // requests by kind
	for i, r := range rs.sent {
		w := worker[i]
		switch r.kind {
		case "pay":
			pays++
			continue
		case "cancel":
			cancels++
			continue
		}
		if !strings.Contains(r.path, "/v1/sales/sustained/") || r.body != `{"tier":"ga","quantity":1}` {
			t.Fatalf("purchase %d: %s %s", i, r.path, r.body)
		}
		if seenKey[r.key] {
			retried++
			continue
		}
		seenKey[r.key] = true
		created++
		if o, ok := ownerOf[r.user]; ok && o != w {
			t.Fatalf("user %d bought through workers %d and %d", r.user, o, w)
		}
		ownerOf[r.user] = w
		if r.user == lastUser[w] {
			runs[w][len(runs[w])-1]++
		} else {
			runs[w] = append(runs[w], 1)
			lastUser[w] = r.user
		}
	}
	var total, n int
	for w, rl := range runs {
		for j, l := range rl[:len(rl)-1] { // the last buyer may be cut short
			if l < cfg.BuyerPurchasesMin || l > cfg.BuyerPurchasesMax {
				t.Fatalf("worker %d buyer %d made %d purchases, want %d-%d", w, j, l, cfg.BuyerPurchasesMin, cfg.BuyerPurchasesMax)
			}
			total += l
			n++
		}
	}
	if mean := float64(total) / float64(n); math.Abs(mean-3) > 0.15 {
		t.Errorf("%.2f purchases per buyer, want about 3", mean)
	}
	// Shares, loosely: every order got its fate; those still queued at the
	// end were not sent.
	share := func(got int, of int, want float64) bool {
		return math.Abs(float64(got)/float64(of)-want) <= 0.25*want
	}
	if !share(retried, created+retried, cfg.FollowUp.RetryShare) {
		t.Errorf("%d retries of %d purchases, want a share of %.2f", retried, created+retried, cfg.FollowUp.RetryShare)
	}
	if !share(pays, created, cfg.FollowUp.PayShare) || !share(cancels, created, cfg.FollowUp.CancelShare) {
		t.Errorf("%d pays and %d cancels for %d orders, want shares %.2f and %.2f", pays, cancels, created, cfg.FollowUp.PayShare, cfg.FollowUp.CancelShare)
	}
	if got := len(scen.Tracker().Orders()); got != created {
		t.Errorf("tracker holds %d orders, server made %d", got, created)
	}
	if v, n := scen.Tracker().Violations(); n != 0 {
		t.Errorf("tracker saw violations: %v", v)
	}
}

func TestSustainedValidate(t *testing.T) {
	for name, mut := range map[string]func(*SustainedConfig){
		"min 0":             func(c *SustainedConfig) { c.BuyerPurchasesMin = 0 },
		"max below min":     func(c *SustainedConfig) { c.BuyerPurchasesMin, c.BuyerPurchasesMax = 4, 2 },
		"limit below buyer": func(c *SustainedConfig) { c.PerUserLimit = 3 },
		"no stock":          func(c *SustainedConfig) { c.Stock = 0 },
		"shares":            func(c *SustainedConfig) { c.FollowUp.PayShare = 0.9; c.FollowUp.CancelShare = 0.2 },
	} {
		c := DefaultSustained()
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := DefaultSustained()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
