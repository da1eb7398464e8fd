package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

func TestParseTickets(t *testing.T) {
	ts, err := api.ParseTickets([]byte(`{"tickets":[{"index":0,"code":"ABC","state":"valid","extra":1},{"index":1,"code":"DEF","state":"valid"}]}`))
	if err != nil || len(ts) != 2 || ts[1].Code != "DEF" || ts[0].State != api.TicketValid {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, bad := range []string{`{"tickets":[{"index":0,"state":"valid"}]}`, `{"tickets":[{"index":0,"code":"A"},{"index":0,"code":"B"}]}`, `not json`} {
		if _, err := api.ParseTickets([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestPlanScans checks the scan plan for random sizes and shares: every
// ticket scanned first exactly once, repeats the asked share of all
// scans, each after its ticket's first scan; the same seed the same plan.
func TestPlanScans(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	for run := range 50 {
		n, share := 1+rng.IntN(3000), []float64{0, 0.1, 0.5, 0.9}[rng.IntN(4)]
		plan := planScans(n, share, rand.New(rand.NewPCG(seed, uint64(run))))
		again := planScans(n, share, rand.New(rand.NewPCG(seed, uint64(run))))
		firstAt := make([]int, n)
		for i := range firstAt {
			firstAt[i] = -1
		}
		repeats := 0
		for pos, s := range plan {
			if again[pos] != s {
				t.Fatalf("seed %d run %d: the same seed gave another plan at %d", seed, run, pos)
			}
			if !s.repeat {
				if firstAt[s.ticket] >= 0 {
					t.Fatalf("seed %d run %d: ticket %d first scanned twice", seed, run, s.ticket)
				}
				firstAt[s.ticket] = pos
				continue
			}
			repeats++
			if firstAt[s.ticket] < 0 {
				t.Fatalf("seed %d run %d: ticket %d repeated at %d before its first scan", seed, run, s.ticket, pos)
			}
		}
		for i, at := range firstAt {
			if at < 0 {
				t.Fatalf("seed %d run %d: ticket %d never scanned", seed, run, i)
			}
		}
		if got := float64(repeats) / float64(len(plan)); share > 0 && (got < share-0.01 || got > share+0.01) && n > 500 {
			t.Errorf("seed %d run %d: %d tickets, repeats %.3f of scans, want %.2f", seed, run, n, got, share)
		}
		if share == 0 && repeats != 0 {
			t.Errorf("seed %d run %d: %d repeats at share 0", seed, run, repeats)
		}
	}
}

// doorServer is a fake onsale for the door scenario: purchases, payments,
// tickets and check-ins with the real rule (the first scan of a code
// admits, later ones get 409), or, when admitTwice is set, a broken door
// that admits every scan. noTickets makes it a server without the routes.
type doorServer struct {
	mu         sync.Mutex
	orders     map[string]int  // order id -> quantity
	checkedIn  map[string]bool // code -> admitted
	gates      map[string]int
	admitTwice bool
	noTickets  bool
}

func startDoorServer(t *testing.T, ds *doorServer) string {
	t.Helper()
	ds.orders, ds.checkedIn, ds.gates = map[string]int{}, map[string]bool{}, map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: ds.handle}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func (ds *doorServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ctx.SetContentType("application/json")
	switch {
	case strings.HasPrefix(path, "/v1/admin/sales/"):
		ctx.SetStatusCode(201)
	case strings.HasSuffix(path, "/purchase"):
		var body struct{ Quantity int }
		_ = json.Unmarshal(ctx.PostBody(), &body)
		id := fmt.Sprintf("door_%04d", len(ds.orders))
		ds.orders[id] = body.Quantity
		ctx.SetStatusCode(201)
		fmt.Fprintf(ctx, `{"order_id":%q,"status":"pending","amount_cents":4500,"currency":"EUR"}`, id)
	case path == "/v1/payments/webhook":
		ctx.SetBodyString(`{}`)
	case strings.HasSuffix(path, "/tickets") && !ds.noTickets:
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/orders/"), "/tickets")
		var l api.TicketList
		for n := range ds.orders[id] {
			l.Tickets = append(l.Tickets, api.Ticket{N: n, Code: fmt.Sprintf("CODE-%s-%d", strings.ToUpper(id), n), State: "valid"})
		}
		b, _ := json.Marshal(&l)
		ctx.SetBody(b)
	case path == "/v1/checkin":
		var body struct{ Code, Gate string }
		_ = json.Unmarshal(ctx.PostBody(), &body)
		ds.gates[body.Gate]++
		if ds.checkedIn[body.Code] && !ds.admitTwice {
			ctx.SetStatusCode(409)
			ctx.SetBodyString(`{"title":"Conflict","status":409,"code":"already_checked_in"}`)
			return
		}
		ds.checkedIn[body.Code] = true
		ctx.SetBodyString(`{"admitted":true}`)
	default:
		ctx.SetStatusCode(404)
		ctx.SetBodyString(`{"title":"Not Found","status":404,"code":"not_found"}`)
	}
}

// runDoor runs setup and the whole plan (warm-up first) on 3 workers
// taking turns, as the load loop would, and returns the counts.
func runDoor(t *testing.T, ds *doorServer, cfg DoorConfig) (*door, Counts, error) {
	t.Helper()
	addr := startDoorServer(t, ds)
	c, err := api.NewClient(api.ClientConfig{Addr: addr, AdminToken: "admin", PaymentSecret: []byte("pay"), MaxConns: 4, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	users, err := MintUsers([]byte("secret"), cfg.Buyers, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDoor(cfg, users, time.Now(), nil).(*door)
	if err := d.Setup(c); err != nil {
		return d, Counts{}, err
	}
	ops := []Op{d.NewOp(c, 0), d.NewOp(c, 1), d.NewOp(c, 2)}
	for i := range 2 * cfg.WarmupTickets {
		ops[i%3](true)
	}
	var total Counts
	for i := range d.MaxRequests() {
		kind, res := ops[i%3](false)
		total.add(countOf(kind, &res))
	}
	return d, total, nil
}

func TestDoorScansEachTicketOnce(t *testing.T) {
	cfg := DoorConfig{Tickets: 301, WarmupTickets: 20, Buyers: 7, PerOrder: 3, RepeatShare: 0.2, Gates: 2, Seed: 5}
	ds := &doorServer{}
	d, c, err := runDoor(t, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	repeats := int64(len(d.plan) - cfg.Tickets)
	if c.Admitted != int64(cfg.Tickets) || c.Rejected != repeats || c.Errors != 0 || repeats < 60 || repeats > 90 {
		t.Errorf("counts %+v, plan %d scans: want %d admitted and the %d repeats refused", c, len(d.plan), cfg.Tickets, repeats)
	}
	if len(ds.checkedIn) != cfg.Tickets+cfg.WarmupTickets {
		t.Errorf("%d codes checked in, want %d", len(ds.checkedIn), cfg.Tickets+cfg.WarmupTickets)
	}
	if len(ds.gates) != 2 {
		t.Errorf("gates %v, want gate-0 and gate-1", ds.gates)
	}
	if vs := d.RunViolations(); len(vs) != 0 {
		t.Errorf("violations %v", vs)
	}
	if o := d.Tracker().Orders(); len(o) != 107 || o[0].Allowed[0] != api.StatusPaid {
		t.Errorf("%d orders tracked (want 107), first %+v", len(o), o[0])
	}
}

// TestDoorCatchesDoubleAdmission: a server that admits a ticket twice
// fails the run.
func TestDoorCatchesDoubleAdmission(t *testing.T) {
	cfg := DoorConfig{Tickets: 50, Buyers: 5, PerOrder: 2, RepeatShare: 0.3, Gates: 1, Seed: 1}
	d, _, err := runDoor(t, &doorServer{admitTwice: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	vs := d.RunViolations()
	if len(vs) == 0 || vs[0].Rule != RuleCheckIn || !strings.Contains(vs[0].Detail, "admitted 2 times") {
		t.Fatalf("violations %v", vs)
	}
}

// TestDoorWithoutTicketRoutes: a server that predates the door routes
// stops the setup with an error that says so.
func TestDoorWithoutTicketRoutes(t *testing.T) {
	cfg := DoorConfig{Tickets: 10, Buyers: 2, PerOrder: 2, Gates: 1, Seed: 1}
	_, _, err := runDoor(t, &doorServer{noTickets: true}, cfg)
	if err == nil || !strings.Contains(err.Error(), errNoTicketRoute.Error()) {
		t.Fatalf("error %v", err)
	}
}

// TestDoorOnsale runs the door scenario against onsale built from this
// tree: every ticket admitted once, the repeats refused, the audit passed.
func TestDoorOnsale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onsale server")
	}
	cfg := smallFlash(t, SysOnsale)
	cfg.Scenario = ScenarioDoor
	cfg.Door = DoorConfig{Tickets: 2_000, WarmupTickets: 100, Buyers: 200, PerOrder: 2, RepeatShare: 0.1, Gates: 4, PriceCents: 4_500, Seed: 1}
	rep := runBuiltOnsale(t, cfg)
	s := &rep.Systems[0]
	if s.Error != "" {
		t.Fatal(s.Error)
	}
	if s.StoppedBy != "requests" || s.Admitted != int64(cfg.Door.Tickets) || s.Rejected == 0 || s.Errors != 0 {
		t.Errorf("stopped by %s: %d admitted (want %d), %d refused, %d errors", s.StoppedBy, s.Admitted, cfg.Door.Tickets, s.Rejected, s.Errors)
	}
	if s.Audit == nil || !s.Audit.Passed {
		t.Fatalf("audit %+v", s.Audit)
	}
	var table strings.Builder
	rep.Table(&table)
	if !strings.Contains(table.String(), "check-ins/s") {
		t.Errorf("table lacks check-ins/s:\n%s", table.String())
	}
}
