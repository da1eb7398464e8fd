package engine

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func audited(actor, action, target string) context.Context {
	return WithAudit(context.Background(), &AuditEntry{
		Actor: actor, Role: "admin", Action: action, Target: target, Remote: "10.0.0.1", RequestID: "req-" + action + "-" + target,
	})
}

// TestAuditRecordsWithTheAction: an audited command's entry is recorded
// with its outcome, accepted or refused; a buyer's purchase records none;
// listing is newest first across shards, filters and pages; entries
// survive a restart from the log and from a snapshot, and the cap drops
// the oldest.
func TestAuditRecordsWithTheAction(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 3)
	ctx := context.Background()
	for i := range 6 {
		id := fmt.Sprintf("s%d", i)
		if _, _, err := e.PutSale(audited("admin", "admin_put_sale", id), testSale(id, clock, 10, 4)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	_, err := e.SetSaleClosed(audited("cred_x", "admin_close_sale", "nope"), "nope", true)
	wantCode(t, err, CodeUnknownSale)
	clock.Advance(time.Second)
	if _, _, err := e.Purchase(audited("admin", "purchase", "s0"), PurchaseRequest{SaleID: "s0", TierID: "floor", Quantity: 1, UserID: "u1", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateCredential(audited("admin", "admin_create_credential", "cred_a"),
		Credential{ID: "cred_a", Name: "Gate", Role: RoleStaff, Sales: []string{"s0"}}); err != nil {
		t.Fatal(err)
	}

	check := func(e *Engine, when string) {
		t.Helper()
		all, next, err := e.Audit(ctx, AuditQuery{Limit: 100})
		if err != nil || next != "" {
			t.Fatalf("%s: Audit: %v, next %q", when, err, next)
		}
		var got []string
		for _, a := range all {
			got = append(got, a.Action+":"+a.Target+":"+a.Outcome)
		}
		want := "[admin_create_credential:cred_a:ok admin_close_sale:nope:unknown_sale admin_put_sale:s5:ok admin_put_sale:s4:ok " +
			"admin_put_sale:s3:ok admin_put_sale:s2:ok admin_put_sale:s1:ok admin_put_sale:s0:ok]"
		if fmt.Sprint(got) != want {
			t.Fatalf("%s: entries %v\nwant %s", when, got, want)
		}
		a := all[1]
		if a.Actor != "cred_x" || a.Role != "admin" || a.Remote != "10.0.0.1" || a.RequestID != "req-admin_close_sale-nope" || a.AtMs != clock.Ms()-1000 {
			t.Fatalf("%s: entry %+v", when, a)
		}
		// Filters.
		if got, _, _ := e.Audit(ctx, AuditQuery{Actor: "cred_x", Limit: 10}); len(got) != 1 || got[0].Target != "nope" {
			t.Fatalf("%s: actor filter %v", when, got)
		}
		if got, _, _ := e.Audit(ctx, AuditQuery{Action: "admin_put_sale", Target: "s3", Limit: 10}); len(got) != 1 || got[0].Target != "s3" {
			t.Fatalf("%s: action and target filter %v", when, got)
		}
		from := all[5].AtMs // s2
		if got, _, _ := e.Audit(ctx, AuditQuery{FromMs: from, ToMs: from + 2000, Limit: 10}); len(got) != 2 || got[0].Target != "s3" || got[1].Target != "s2" {
			t.Fatalf("%s: time filter %v", when, got)
		}
		// Pages of 3 give the same entries in the same order.
		var paged []string
		cursor := ""
		for range 10 {
			page, next, err := e.Audit(ctx, AuditQuery{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				paged = append(paged, a.Action+":"+a.Target+":"+a.Outcome)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if fmt.Sprint(paged) != want {
			t.Fatalf("%s: pages %v", when, paged)
		}
	}
	check(e, "live")
	if _, _, err := e.Audit(ctx, AuditQuery{Limit: 1, Cursor: "x"}); err == nil {
		t.Fatal("a bad cursor was accepted")
	}
	e.Close()
	e = openTest(t, j, clock, 3)
	check(e, "after replay")
	// A snapshot of every shard, then a restart from the snapshots.
	e.Close()
	e, err = Open(Config{Journal: j, Shards: 3, Now: clock.Now, Logger: quietLogger, SnapshotEvents: 1, OnFatal: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 { // one event per shard at least: each writes a snapshot
		if _, err := e.SetSaleClosed(ctx, fmt.Sprintf("s%d", i), false); err != nil {
			t.Fatal(err)
		}
		e.SetSaleClosed(ctx, fmt.Sprintf("s%d", i), true)
	}
	e.Close()
	for i := range 3 {
		if _, found, _ := j.LoadSnapshot(i, func([]byte) error { return nil }); !found {
			t.Fatalf("shard %d has no snapshot", i)
		}
	}
	e = openTest(t, j, clock, 3)
	check(e, "after snapshot")
	e.Close()
	// Another shard count: the entries move, in order.
	e = openTest(t, j, clock, 2)
	check(e, "after repartition")
	e.Close()
}

func TestAuditCapDropsTheOldest(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e, err := Open(Config{Journal: j, Shards: 1, Now: clock.Now, Logger: quietLogger, AuditMax: 3, OnFatal: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 5 {
		id := fmt.Sprintf("s%d", i)
		if _, _, err := e.PutSale(audited("admin", "admin_put_sale", id), testSale(id, clock, 10, 4)); err != nil {
			t.Fatal(err)
		}
	}
	all, _, _ := e.Audit(context.Background(), AuditQuery{Limit: 10})
	if len(all) != 3 || all[0].Target != "s4" || all[2].Target != "s2" || all[0].Seq != 5 {
		t.Fatalf("kept %+v", all)
	}
}
