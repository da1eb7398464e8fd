package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/onsale/onsale/wal"
)

// TestRecoverNamesTheBrokenShard: shards recover in parallel; a corrupt or
// inconsistent log in one of them fails recovery with that shard named, as
// an error, never a panic.
func TestRecoverNamesTheBrokenShard(t *testing.T) {
	cfg := &SaleConfig{ID: "s1", Name: "Sale", Currency: "EUR", OpensAtMs: 1, ClosesAtMs: 2, HoldMs: 1000, PerUserLimit: 4,
		Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 1}}}
	entry := func(evs ...event) []byte {
		var b []byte
		for i := range evs {
			b = appendEvent(b, &evs[i])
		}
		return b
	}
	place := func(k byte) event {
		return event{kind: evOrderPlaced, at: 1, saleID: "s1", order: orderKey{k}, userID: "u", key: string(rune('a' + k)), qty: 1, amount: 5000, expiresAt: 1001}
	}
	good := entry(event{kind: evSalePut, sale: cfg, saleID: "s1"}, place(1))
	for _, c := range []struct {
		name  string
		entry []byte
		want  string
	}{
		{"corrupt", good[:len(good)-1], "cannot recover shard 2: engine: corrupt log record"},
		{"oversold", entry(event{kind: evSalePut, sale: cfg, saleID: "s1"}, place(1), place(2)), "cannot recover shard 2: log is inconsistent"},
		{"placed twice", entry(event{kind: evSalePut, sale: cfg, saleID: "s1"}, place(1), event{kind: evOrderCancelled, at: 2, order: orderKey{1}}, place(1)),
			"cannot recover shard 2: engine: corrupt log record: OrderPlaced twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := newMemJournal()
			j.layout = 3
			for shard := range 3 {
				j.entries[shard] = []memEntry{{1, good}}
			}
			j.entries[2] = []memEntry{{1, c.entry}}
			_, _, err := recoverStates(j, 3, quietLogger)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestReplayRebuildsEveryIndex: recovery from a log alone, and from a
// snapshot taken part-way and the log after it, gives the state that decided
// the log, every index included (the idempotency pairs and the hold heap are
// built after replay, not during it).
func TestReplayRebuildsEveryIndex(t *testing.T) {
	seed := testSeed(t)
	live, log := randomLog(rand.New(rand.NewPCG(seed, 7)), 4000, false)
	live.dropStaleHolds()
	want := dumpFull(live)
	for _, snapAt := range []int{0, len(log) / 3, len(log)} {
		t.Run(fmt.Sprintf("snapshot=%d", snapAt), func(t *testing.T) {
			wantRecovered(t, journalSnapshotAt(t, log, snapAt), len(log), want)
		})
	}
}

// TestFailedReplayStopsReading: when apply fails early in a long log, the
// goroutine reading it stops, so the Pebble log closes without a leaked
// iterator.
func TestFailedReplayStopsReading(t *testing.T) {
	log, err := wal.Open(t.TempDir(), wal.Options{Logger: quietLogger, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &SaleConfig{ID: "s1", Name: "Sale", Currency: "EUR", OpensAtMs: 1, ClosesAtMs: 2, HoldMs: 1000, PerUserLimit: 4,
		Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 1}}}
	var entries [][]byte
	var e []byte
	e = appendEvent(e, &event{kind: evSalePut, sale: cfg, saleID: "s1"})
	for k := range 2 { // the second oversells the tier: apply panics
		e = appendEvent(e, &event{kind: evOrderPlaced, at: 1, saleID: "s1", order: orderKey{byte(k)}, userID: "u", key: fmt.Sprint(k), qty: 1, expiresAt: 1001})
	}
	entries = append(entries, e)
	for i := range 100 { // far more events than replay keeps in flight
		e = nil
		for k := range 200 {
			e = appendEvent(e, &event{kind: evOrderCancelled, at: 2, order: orderKey{1, byte(i), byte(k)}})
		}
		entries = append(entries, e)
	}
	if err := log.Reset([][][]byte{newState().snapshotEncoding()}); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(0, 1, entries); err != nil {
		t.Fatal(err)
	}
	_, _, err = recoverStates(log, 1, quietLogger)
	if err == nil || !strings.Contains(err.Error(), "log is inconsistent") {
		t.Fatalf("got %v, want an inconsistent log", err)
	}
	if err := log.Close(); err != nil {
		t.Fatalf("close after a failed recovery: %v", err)
	}
}

// journalSnapshotAt is a one-shard journal holding log as a snapshot of its
// first snapAt entries (none when 0) and the rest as entries after it.
// wantRecovered recovers the one shard of j and fails t unless its last
// seq is entries and its state, every index included, dumps as want.
func wantRecovered(t *testing.T, j Journal, entries int, want string) {
	t.Helper()
	states, seqs, err := recoverStates(j, 1, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] != uint64(entries) {
		t.Fatalf("last seq %d, want %d", seqs[0], entries)
	}
	if got := dumpFull(states[0]); got != want {
		t.Fatalf("recovered state differs:\n%s", firstDiff(want, got))
	}
}

func journalSnapshotAt(t *testing.T, log [][]byte, snapAt int) *memJournal {
	t.Helper()
	j := newMemJournal()
	j.layout = 1
	if snapAt > 0 {
		st := newState()
		for _, e := range log[:snapAt] {
			if err := decodeEntry(e, st.apply); err != nil {
				t.Fatal(err)
			}
		}
		j.snaps[0] = memSnap{uint64(snapAt), st.snapshotEncoding()}
	}
	for i, e := range log[snapAt:] {
		j.entries[0] = append(j.entries[0], memEntry{uint64(snapAt + i + 1), e})
	}
	return j
}
