package jetstream

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// follower runs Follow on shard 0 of j from after, until the test ends,
// and hands over what it reads.
type follower struct {
	entries chan string
	done    chan error
	cancel  context.CancelFunc
}

func follow(t *testing.T, j *Journal, after uint64) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{entries: make(chan string, 100), done: make(chan error, 1), cancel: cancel}
	next := after + 1
	go func() {
		f.done <- j.Follow(ctx, 0, after, func(seq uint64, e []byte) error {
			if seq != next {
				t.Errorf("followed entry %d, want %d", seq, next)
			}
			next++
			f.entries <- string(e)
			return nil
		}, nil)
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// take waits (at most 10 s) for the next n entries the follower reads.
func (f *follower) take(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e := <-f.entries:
			got = append(got, e)
		case err := <-f.done:
			t.Fatalf("Follow ended after %q: %v", got, err)
		case <-timeout:
			t.Fatalf("followed %q in 10 s, want %d entries", got, n)
		}
	}
	return got
}

// TestJournalFollow: a standby's Follow reads what the owner appends as
// it is stored, through a snapshot's purge; a takeover's Replay then reads
// only what came after what was followed (the deposed owner's last
// entries), and the fence refuses the old owner. A standby that starts
// behind the snapshot is told so (ErrBehind).
func TestJournalFollow(t *testing.T) {
	c := jstest.Start(t, 3, false)
	owner := openJournal(t, c, "follow")
	if err := owner.Reset([][][]byte{{[]byte("s")}}); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(t, owner, 0, 1, "1", "2", "3"); err != nil {
		t.Fatal(err)
	}
	standby := openJournal(t, c, "follow")
	f := follow(t, standby, 0)
	if got := f.take(t, 3); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("followed %q", got)
	}
	if err := appendSync(t, owner, 0, 4, "4", "5", "6", "7"); err != nil {
		t.Fatal(err)
	}
	if got := f.take(t, 4); !slices.Equal(got, []string{"4", "5", "6", "7"}) {
		t.Fatalf("followed %q", got)
	}
	if err := owner.SaveSnapshot(0, 6, [][]byte{[]byte("s6")}); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(t, owner, 0, 8, "8"); err != nil {
		t.Fatal(err)
	}
	if got := f.take(t, 1); !slices.Equal(got, []string{"8"}) {
		t.Fatalf("followed %q after the purge", got)
	}

	// A standby started now, from a snapshot older than the purge, is
	// behind; from the snapshot's seq it reads 7 and 8.
	late := openJournal(t, c, "follow")
	if err := late.Follow(context.Background(), 0, 2, func(uint64, []byte) error { return nil }, nil); !errors.Is(err, ErrBehind) {
		t.Fatalf("Follow behind the snapshot: %v, want ErrBehind", err)
	}
	if got := follow(t, late, 6).take(t, 2); !slices.Equal(got, []string{"7", "8"}) {
		t.Fatalf("followed %q from the snapshot", got)
	}

	// The takeover: the standby stops following at 8, the owner appends
	// 9 meanwhile; the standby's Replay after 8 (fence first) reads 9 only.
	f.cancel()
	if err := <-f.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v", err)
	}
	f.done <- nil // for the cleanup
	if err := appendSync(t, owner, 0, 9, "9"); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, standby, 0, 8); !slices.Equal(got, []string{"9"}) {
		t.Fatalf("takeover replays %q after what it followed", got)
	}
	if err := appendSync(t, owner, 0, 10, "deposed"); !errors.Is(err, ErrFenced) {
		t.Fatalf("the deposed owner's append: %v, want ErrFenced", err)
	}
	if err := appendSync(t, standby, 0, 10, "10"); err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, standby, 0, 6); !slices.Equal(got, []string{"7", "8", "9", "10"}) {
		t.Fatalf("the new owner's tail after the snapshot = %q", got)
	}
	cold := openJournal(t, c, "follow")
	if got := replayAll(t, cold, 0, 6); !slices.Equal(got, []string{"7", "8", "9", "10"}) {
		t.Fatalf("a cold replay after the snapshot reads %q", got)
	}
}

// TestJournalFollowCaughtUp: Follow says when it has read every message
// stored, on a stream holding only a writer's fence and on one with
// entries.
func TestJournalFollowCaughtUp(t *testing.T) {
	c := jstest.Start(t, 3, false)
	owner := openJournal(t, c, "caught")
	if err := owner.Reset([][][]byte{{[]byte("s")}, {[]byte("s")}}); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(t, owner, 1, 1, "1", "2"); err != nil {
		t.Fatal(err)
	}
	standby := openJournal(t, c, "caught")
	for shard := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		caught := make(chan struct{})
		var once sync.Once
		done := make(chan error, 1)
		go func() {
			done <- standby.Follow(ctx, shard, 0, func(uint64, []byte) error { return nil }, func() { once.Do(func() { close(caught) }) })
		}()
		select {
		case <-caught:
		case err := <-done:
			t.Fatalf("shard %d: Follow ended: %v", shard, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("shard %d: not caught up after 10 s", shard)
		}
		cancel()
		<-done
	}
}
