package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFollowerPromotesToWhatOpenRecovers: a standby that follows a log
// while it is written (entries read in random runs, snapshots taken and the
// log truncated behind them, the standby sometimes falling behind one and
// reloading it, its indexes settled part way) and is promoted after the
// writer's last entries, which it never read, holds exactly what a cold
// Open of the same journal recovers, and what the writer held; and its
// promotion replayed only those last entries.
func TestFollowerPromotesToWhatOpenRecovers(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d", seed)
	for round := range 6 {
		t.Run(fmt.Sprint("round=", round), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(round)))
			followAndPromote(t, rng)
		})
	}
}

func followAndPromote(t *testing.T, rng *rand.Rand) {
	const shards = 2
	j := newMemJournal()
	empty := newState().snapshotEncoding()
	if err := j.Reset([][][]byte{empty, empty}); err != nil {
		t.Fatal(err)
	}
	// Each shard's log is a random one; the writer's state follows it.
	logs := make([][][]byte, shards)
	writers := make([]*state, shards)
	written := make([]int, shards)
	for i := range shards {
		_, logs[i] = randomLog(rand.New(rand.NewPCG(rng.Uint64(), uint64(i))), 1500+rng.IntN(1500), false)
		writers[i] = newState()
	}
	write := func(i, n int) {
		n = min(n, len(logs[i])-written[i])
		if n == 0 {
			return
		}
		entries := logs[i][written[i] : written[i]+n]
		if _, err := j.Append(i, uint64(written[i]+1), entries); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := decodeEntry(e, writers[i].apply); err != nil {
				t.Fatal(err)
			}
		}
		written[i] += n
	}
	snapshot := func(i int) {
		if err := j.SaveSnapshot(i, uint64(written[i]), writers[i].snapshotEncoding()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Journal: j, Shards: shards, Now: newFakeClock().Now, TickInterval: time.Hour,
		SnapshotEvents: 1 << 30, OnFatal: func(error) {}, Logger: quietLogger}

	// The writer starts; a snapshot maybe; then the standby.
	for i := range shards {
		write(i, rng.IntN(len(logs[i])/3))
		if rng.IntN(2) == 0 {
			snapshot(i)
		}
	}
	f, err := NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.settleOrders = int32(50 + rng.IntN(400))
	reloads := 0
	// read is the standby's Follow: the entries after what it holds, at
	// most n of them; behind a truncation, it reloads the snapshot.
	read := func(i, n int) {
		j.mu.Lock()
		es := append([]memEntry(nil), j.entries[i]...)
		j.mu.Unlock()
		if len(es) > 0 && es[0].seq > f.Seq(i)+1 {
			reloads++
			if err := f.Reload(i); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range es {
			if n == 0 {
				return
			}
			if e.seq <= f.Seq(i) {
				continue
			}
			if err := f.Apply(i, e.seq, e.data); err != nil {
				t.Fatal(err)
			}
			n--
		}
	}
	for step := 0; ; step++ {
		i := rng.IntN(shards)
		if written[i] == len(logs[i]) && written[1-i] == len(logs[1-i]) {
			break
		}
		switch r := rng.IntN(11); {
		case r < 5:
			write(i, 1+rng.IntN(60))
		case r < 6:
			snapshot(i)
		case r < 7:
			if err := f.Settle(i); err != nil {
				t.Fatal(err)
			}
		default:
			read(i, rng.IntN(80))
		}
	}
	if rng.IntN(2) == 0 { // all read and settled: the promotion recounts nothing
		for i := range shards {
			read(i, len(logs[i]))
			if err := f.Settle(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The writer's last entries, which the standby never reads; or, for a
	// shard it fell behind on, every entry after the snapshot (Promote
	// recovers that one cold).
	unread := 0
	for i := range shards {
		from := f.Seq(i)
		if snap := j.snaps[i].seq; snap > from {
			from = snap
		}
		for seq := from + 1; seq <= uint64(written[i]); seq++ {
			unread += countEvents(t, logs[i][seq-1])
		}
	}
	e, err := f.Promote()
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	cold, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cold.Close()
	for i := range shards {
		writers[i].dropStaleHolds()
		want := dumpFull(writers[i])
		if got := dumpFull(cold.shards[i].st); got != want {
			t.Fatalf("shard %d: the cold Open differs from the writer:\n%s", i, firstDiff(want, got))
		}
		if got := dumpFull(e.shards[i].st); got != want {
			t.Fatalf("shard %d: the promoted standby differs from the writer (%d reloads):\n%s", i, reloads, firstDiff(want, got))
		}
	}
	t.Logf("%d + %d entries, %d reloads, %d events left for the promotion", written[0], written[1], reloads, unread)
	if got := f.Replayed(); got != unread {
		t.Fatalf("the promotion replayed %d events, want the %d the standby had not read", got, unread)
	}
}

func countEvents(t *testing.T, entry []byte) int {
	t.Helper()
	n := 0
	if err := decodeEntry(entry, func(*event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFollowerRefusesAnotherLayout: a log written with another shard count
// is not followed (its takeover repartitions), nor an empty one.
func TestFollowerRefusesAnotherLayout(t *testing.T) {
	j := newMemJournal()
	cfg := Config{Journal: j, Shards: 2, Logger: quietLogger}
	if _, err := NewFollower(cfg); !errors.Is(err, ErrNothingToFollow) {
		t.Fatalf("empty log: %v, want ErrNothingToFollow", err)
	}
	empty := newState().snapshotEncoding()
	if err := j.Reset([][][]byte{empty, empty, empty}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFollower(cfg); !errors.Is(err, ErrOtherLayout) {
		t.Fatalf("3 shards followed with 2: %v, want ErrOtherLayout", err)
	}
}
