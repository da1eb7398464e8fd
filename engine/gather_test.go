package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// steppedJournal is a memJournal whose syncs end one by one, when the test
// says so. Each Append reports its entry count on appended.
type steppedJournal struct {
	*memJournal
	appended chan int
	release  chan struct{}
}

func (j *steppedJournal) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	if _, err := j.memJournal.Append(shard, firstSeq, entries); err != nil {
		return nil, err
	}
	j.appended <- len(entries)
	return func() error { <-j.release; return nil }, nil
}

// TestGatherJoinsReturningCallers: after a sync, the committer holds what
// arrived during it until the caller that sync answered comes back, so both
// share the next sync; with gathering off, the held purchase goes alone.
// When the expected caller does not come, the hold ends after the bound and
// the next groups go out at once.
func TestGatherJoinsReturningCallers(t *testing.T) {
	gatherBoundFixed = true
	defer func() { gatherBoundFixed = false }()
	for _, gather := range []time.Duration{-1, time.Millisecond, time.Hour} {
		t.Run(fmt.Sprintf("gather=%v", gather), func(t *testing.T) {
			j := &steppedJournal{newMemJournal(), make(chan int, 16), make(chan struct{})}
			clock := newFakeClock()
			e, err := Open(Config{Journal: j, Shards: 1, Now: clock.Now, OnFatal: func(error) {}, Logger: quietLogger, SyncGatherMax: gather})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			put := make(chan error, 1)
			go func() { _, _, err := e.PutSale(ctx, testSale("s", clock, 100, 100)); put <- err }()
			<-j.appended
			j.release <- struct{}{}
			if err := <-put; err != nil {
				t.Fatal(err)
			}

			buy := func(user string) chan error {
				done := make(chan error, 1)
				go func() {
					_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: user})
					done <- err
				}()
				return done
			}
			// A's purchase is syncing while B's is decided.
			a := buy("a")
			<-j.appended
			b := buy("b")
			for e.AwaitingSync() < 2 { // B decided, handed to the committer
				runtime.Gosched()
			}
			j.release <- struct{}{} // A's sync ends; A is answered
			if err := <-a; err != nil {
				t.Fatal(err)
			}
			if gather < time.Hour { // off, or A's caller does not come back in time
				if n := <-j.appended; n != 1 {
					t.Fatalf("B went out with %d entries, want 1", n)
				}
				j.release <- struct{}{}
				if err := <-b; err != nil {
					t.Fatal(err)
				}
				return
			}
			select {
			case n := <-j.appended:
				t.Fatalf("B was appended (%d entries) before A's caller came back", n)
			default:
			}
			a2 := buy("a2") // A's caller returns
			if n := <-j.appended; n != 2 {
				t.Fatalf("B and A's return were appended as %d entries, want 2 in one Append", n)
			}
			j.release <- struct{}{}
			for _, c := range []chan error{a2, b} {
				if err := <-c; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
