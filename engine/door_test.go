package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// dumpDoor prints the door's state canonically (dumpState includes it).
func dumpDoor(st *state) []string {
	var lines []string
	for _, sl := range st.sales {
		var revoked []revokedTicket
		if sl.tickets != nil {
			revoked = sl.tickets.revoked
		}
		lines = append(lines, fmt.Sprintf("sale %s keys %+v revoked %+v", sl.cfg.ID, sl.ticketKeys(), revoked))
	}
	for i, a := range st.door.list {
		lines = append(lines, fmt.Sprintf("admission %d %+v", i, a))
	}
	var last []string
	for k, i := range st.door.last {
		last = append(last, fmt.Sprintf("last admission %x %d", k, i))
	}
	slices.Sort(last)
	return append(lines, last...)
}

// forgetDoor drops what snapshots before version 4 cannot hold.
func forgetDoor(st *state) {
	for _, sl := range st.sales {
		sl.tickets = nil
	}
	st.door = admissions{}
	for i := int32(0); i < st.orders.n; i++ {
		st.orders.mut(i).kid = 0
	}
}

// doorFixture is an engine with one sale and helpers to buy and pay.
type doorFixture struct {
	t     *testing.T
	e     *Engine
	j     *memJournal
	clock *fakeClock
	ctx   context.Context
	n     int
}

func newDoorFixture(t *testing.T, shards int, sales ...string) *doorFixture {
	f := &doorFixture{t: t, j: newMemJournal(), clock: newFakeClock(), ctx: context.Background()}
	f.e = openTest(t, f.j, f.clock, shards)
	for _, id := range sales {
		if _, _, err := f.e.PutSale(f.ctx, testSale(id, f.clock, 100, 20)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// paid buys qty tickets of a sale's floor tier and pays for them.
func (f *doorFixture) paid(sale string, qty int) OrderTickets {
	f.t.Helper()
	f.n++
	o, _, err := f.e.Purchase(f.ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: qty, UserID: "u1", IdempotencyKey: fmt.Sprint("k", f.n)})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := f.e.ApplyPayment(f.ctx, Payment{EventID: fmt.Sprint("evt", f.n), OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"}); err != nil {
		f.t.Fatal(err)
	}
	return f.tickets(o.ID)
}

func (f *doorFixture) tickets(orderID string) OrderTickets {
	f.t.Helper()
	ot, err := f.e.Tickets(f.ctx, orderID)
	if err != nil {
		f.t.Fatal(err)
	}
	return ot
}

func (f *doorFixture) scan(gate string, p TicketPayload) (Admission, error) {
	return f.e.CheckInCode(f.ctx, gate, Scan{Code: p})
}

func TestTicketsAndScans(t *testing.T) {
	f := newDoorFixture(t, 2, "s1")
	ctx := f.ctx

	// Before payment there is no ticket, and a code for one does not admit.
	pending, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u2", IdempotencyKey: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if ot := f.tickets(pending.ID); len(ot.Tickets) != 0 {
		t.Fatalf("a pending order has tickets %+v", ot.Tickets)
	}
	_, pk, _ := parseOrderID(pending.ID)
	_, err = f.scan("north-3", TicketPayload{Kid: 1, SaleID: "s1", Order: pk})
	wantCode(t, err, CodeInvalidTicket)

	ot := f.paid("s1", 2)
	if len(ot.Tickets) != 2 || ot.Tickets[1].State != TicketValid || ot.Tickets[1].Kid != 1 ||
		ot.Tickets[1].ID != ot.Order.ID+".1" || ot.SaleName != "Concert s1" || ot.TierName != "Floor" {
		t.Fatalf("tickets of a paid order: %+v", ot)
	}
	first := f.clock.Ms()
	a, err := f.scan("north-3", ot.Payload(0))
	if err != nil || a.TicketID != ot.Order.ID+".0" || a.Gate != "north-3" || a.AtMs != first || a.UserID != "u1" || a.TierID != "floor" {
		t.Fatalf("first scan: %+v %v", a, err)
	}
	f.clock.Advance(time.Minute)
	_, err = f.scan("south-1", ot.Payload(0))
	wantCode(t, err, CodeTicketAlreadyCheckIn)
	if rej := err.(*Rejection); rej.First == nil || rej.First.Gate != "north-3" || rej.First.AtMs != first {
		t.Fatalf("second scan's first admission: %+v", rej.First)
	}
	for name, p := range map[string]TicketPayload{
		"ticket past the order": func() TicketPayload { p := ot.Payload(1); p.Ticket = 2; return p }(),
		"another tier":          func() TicketPayload { p := ot.Payload(1); p.Tier = 1; return p }(),
		"unknown order":         func() TicketPayload { p := ot.Payload(1); p.Order[0]++; return p }(),
		"unknown sale":          func() TicketPayload { p := ot.Payload(1); p.SaleID = "nope"; return p }(),
	} {
		if _, err := f.scan("north-3", p); err == nil || err.(*Rejection).Code != CodeInvalidTicket {
			t.Fatalf("%s: got %v, want invalid_ticket", name, err)
		}
	}
	if _, err := f.e.CheckInCode(ctx, "", Scan{Code: ot.Payload(1)}); err == nil {
		t.Fatal("a scan without a gate was admitted")
	}
	if _, err := f.e.CheckInCode(ctx, "g", Scan{Code: ot.Payload(1), ScannedAtMs: f.clock.Ms() + ScanAheadMsMax + 1}); err == nil {
		t.Fatal("a scan from the future was admitted")
	}
	got := f.tickets(ot.Order.ID)
	if s := got.Tickets[0]; s.State != TicketCheckedIn || s.Gate != "north-3" || s.AtMs != first {
		t.Fatalf("checked-in ticket: %+v", s)
	}

	// Keys: rotate, then retire the old one: the order is re-issued.
	keys, err := f.e.RotateTicketKey(ctx, "s1")
	if err != nil || len(keys) != 2 || keys[0].Current || !keys[1].Current || keys[1].Kid != 2 || keys[1].CreatedAtMs != f.clock.Ms() {
		t.Fatalf("rotate: %+v %v", keys, err)
	}
	_, err = f.scan("north-3", func() TicketPayload { p := ot.Payload(1); p.Kid = 2; return p }())
	wantCode(t, err, CodeTicketRevoked) // kid 2 never signed this order's tickets
	_, err = f.e.RetireTicketKey(ctx, "s1", 2)
	wantCode(t, err, CodeCurrentTicketKey)
	_, err = f.e.RetireTicketKey(ctx, "s1", 3)
	wantCode(t, err, CodeUnknownTicketKey)
	newer := f.paid("s1", 1)
	if newer.Tickets[0].Kid != 2 {
		t.Fatalf("an order paid after the rotation is signed with %d", newer.Tickets[0].Kid)
	}
	if keys, err = f.e.RetireTicketKey(ctx, "s1", 1); err != nil || keys[0].RetiredAtMs != f.clock.Ms() {
		t.Fatalf("retire: %+v %v", keys, err)
	}
	reissued := f.tickets(ot.Order.ID)
	if reissued.Tickets[1].Kid != 2 {
		t.Fatalf("after retiring key 1 the order is signed with %d", reissued.Tickets[1].Kid)
	}
	_, err = f.scan("north-3", ot.Payload(1))
	wantCode(t, err, CodeTicketRevoked)
	if _, err := f.scan("north-3", reissued.Payload(1)); err != nil {
		t.Fatalf("re-issued code: %v", err)
	}

	// A refund after entry revokes the tickets not used.
	three := f.paid("s1", 3)
	if _, err := f.scan("north-3", three.Payload(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Refund(ctx, three.Order.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = f.scan("north-3", three.Payload(0))
	wantCode(t, err, CodeTicketRevoked)
	_, err = f.scan("north-3", three.Payload(1))
	wantCode(t, err, CodeTicketAlreadyCheckIn)
	states := f.tickets(three.Order.ID).Tickets
	if states[0].State != TicketRevoked || states[1].State != TicketCheckedIn || states[2].State != TicketRevoked || states[2].AtMs != f.clock.Ms() {
		t.Fatalf("tickets after a refund after entry: %+v", states)
	}

	// The revocation feed, page by page.
	var ids []string
	cursor := ""
	for range 3 {
		page, next, err := f.e.Revocations(ctx, "s1", cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			ids = append(ids, r.TicketID)
		}
		cursor = next
	}
	if want := []string{three.Order.ID + ".0", three.Order.ID + ".2"}; !slices.Equal(ids, want) || cursor != "2" {
		t.Fatalf("revocations %v, cursor %q; want %v, cursor 2", ids, cursor, want)
	}
	_, _, err = f.e.Revocations(ctx, "s1", "3", 10)
	wantCode(t, err, CodeInvalidRequest)

	// Recovery, from the log and then from snapshots under another shard
	// count: keys, admissions and revocations come back as they were.
	before := f.doorViews(ot.Order.ID, newer.Order.ID, three.Order.ID)
	f.e.Close()
	f.e = openTest(t, f.j, f.clock, 2)
	if after := f.doorViews(ot.Order.ID, newer.Order.ID, three.Order.ID); !reflect.DeepEqual(before, after) {
		t.Fatalf("after replay of the log:\n%+v\nwant\n%+v", after, before)
	}
	f.e.Close()
	recovered, _, err := recoverStates(f.j, 2, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	var snaps [][][]byte
	for _, st := range recovered {
		snaps = append(snaps, st.snapshotEncoding())
	}
	f.j.Reset(snaps)
	f.e = openTest(t, f.j, f.clock, 3)
	if after := f.doorViews(ot.Order.ID, newer.Order.ID, three.Order.ID); !reflect.DeepEqual(before, after) {
		t.Fatalf("after a snapshot and 3 shards:\n%+v\nwant\n%+v", after, before)
	}
}

type doorViews struct {
	Keys        []TicketKey
	Revocations []Revocation
	Tickets     []OrderTickets
}

func (f *doorFixture) doorViews(orders ...string) doorViews {
	f.t.Helper()
	var v doorViews
	var err error
	if v.Keys, err = f.e.TicketKeys(f.ctx, "s1"); err != nil {
		f.t.Fatal(err)
	}
	if v.Revocations, _, err = f.e.Revocations(f.ctx, "s1", "", 100); err != nil {
		f.t.Fatal(err)
	}
	for _, id := range orders {
		v.Tickets = append(v.Tickets, f.tickets(id))
	}
	return v
}

// TestConcurrentScansAdmitOnce: many gates scan one code at the same
// instant; the owner shard admits exactly one of them, and every other is
// told where that one was.
func TestConcurrentScansAdmitOnce(t *testing.T) {
	f := newDoorFixture(t, 2, "s1")
	ot := f.paid("s1", 1)
	const gates = 64
	start := make(chan struct{})
	errs := make([]error, gates)
	var wg sync.WaitGroup
	for g := range gates {
		wg.Go(func() {
			<-start
			_, errs[g] = f.scan(fmt.Sprint("gate-", g), ot.Payload(0))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for g, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("gates %d and %d both admitted the ticket", winner, g)
			}
			winner = g
		}
	}
	if winner < 0 {
		t.Fatal("no gate admitted the ticket")
	}
	for g, err := range errs {
		if g != winner {
			wantCode(t, err, CodeTicketAlreadyCheckIn)
			if first := err.(*Rejection).First; first.Gate != fmt.Sprint("gate-", winner) {
				t.Fatalf("gate %d told the first admission was at %q, not gate-%d", g, first.Gate, winner)
			}
		}
	}
}

// TestCheckInBatchOffline: a gate that worked offline uploads its scans;
// each is decided in order at its own time, a ticket admitted elsewhere
// first is a conflict naming that admission, and the same upload sent
// again gets the same answers.
func TestCheckInBatchOffline(t *testing.T) {
	f := newDoorFixture(t, 3, "s1", "s2", "s3")
	a := f.paid("s1", 2)
	b := f.paid("s3", 1)
	online := f.clock.Ms()
	if _, err := f.scan("north-1", a.Payload(0)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	t0 := online - 60_000
	scans := []Scan{
		{Code: a.Payload(1), ScannedAtMs: t0},
		{Code: a.Payload(0), ScannedAtMs: t0 + 1},                        // admitted online, later
		{Code: a.Payload(1), ScannedAtMs: t0 + 2},                        // twice in the upload
		{Code: b.Payload(0), ScannedAtMs: t0 + 3},                        // another sale, perhaps another shard
		{Code: TicketPayload{Kid: 1, SaleID: "s2"}, ScannedAtMs: t0 + 4}, // no such order
	}
	check := func(round string) {
		res, err := f.e.CheckInBatch(f.ctx, "east-offline", scans)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			code      Code
			firstGate string
			firstAt   int64
		}{{"", "", 0}, {CodeTicketAlreadyCheckIn, "north-1", online}, {CodeTicketAlreadyCheckIn, "east-offline", t0}, {"", "", 0}, {CodeInvalidTicket, "", 0}}
		for i, w := range want {
			r := res[i]
			switch {
			case w.code == "" && (r.Err != nil || r.Admission.AtMs != scans[i].ScannedAtMs || r.Admission.Gate != "east-offline"):
				t.Fatalf("%s: scan %d: %+v, want admitted at its own time", round, i, r)
			case w.code != "" && (r.Err == nil || r.Err.Code != w.code):
				t.Fatalf("%s: scan %d: %+v, want %s", round, i, r, w.code)
			case w.firstGate != "" && (r.Err.First.Gate != w.firstGate || r.Err.First.AtMs != w.firstAt):
				t.Fatalf("%s: scan %d: first admission %+v, want %s at %d", round, i, r.Err.First, w.firstGate, w.firstAt)
			}
		}
	}
	check("upload")
	check("same upload again")
	if _, err := f.e.CheckInBatch(f.ctx, "g", make([]Scan, ScansPerBatchMax+1)); err == nil {
		t.Fatal("an upload over the limit was taken")
	}
}

func TestParseTicketID(t *testing.T) {
	for _, c := range []struct {
		id    string
		order string
		n     int
		ok    bool
	}{
		{"s1.abc.3", "s1.abc", 3, true}, {"s1.abc.63", "s1.abc", 63, true}, {"s1.abc.64", "", 0, false},
		{"s1.abc.03", "", 0, false}, {"s1.abc.-1", "", 0, false}, {"s1.abc.", "", 0, false}, {"nodot", "", 0, false},
	} {
		order, n, ok := ParseTicketID(c.id)
		if ok != c.ok || ok && (order != c.order || n != c.n) {
			t.Errorf("ParseTicketID(%q) = %q %d %v", c.id, order, n, ok)
		}
	}
}

// TestSnapshotSectionsOutliveTheirChunk: the journal may reuse a chunk's
// buffer once restore has read it; the sections, restored at the end, must
// not read it again.
func TestSnapshotSectionsOutliveTheirChunk(t *testing.T) {
	st := randomState(rand.New(rand.NewPCG(5, 6)), 2000, false)
	got := newState()
	r := restorer{st: got}
	defer r.close()
	for _, c := range st.snapshotEncoding() {
		c = slices.Clone(c)
		if err := r.add(c); err != nil {
			t.Fatal(err)
		}
		for i := range c {
			c[i] = 0xff
		}
	}
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	got.dropStaleHolds()
	st.dropStaleHolds()
	if a, b := dumpFull(st), dumpFull(got); a != b {
		t.Fatalf("restored state differs:\n%s", firstDiff(a, b))
	}
}

// TestOrderSizeKeepsItsBudget: the kid took the order's last byte of
// padding; an order stays 120 bytes.
func TestOrderSizeKeepsItsBudget(t *testing.T) {
	if n := unsafe.Sizeof(order{}); n != 120 {
		t.Fatalf("order is %d bytes, want 120", n)
	}
}
