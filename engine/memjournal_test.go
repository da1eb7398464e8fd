package engine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// memJournal is a Journal in memory, with a switch to fail appends. Its
// copy is what a restart would see: everything Append returned nil for.
type memJournal struct {
	mu        sync.Mutex
	layout    int
	entries   map[int][]memEntry
	snaps     map[int]memSnap
	failAfter int // Append fails once this many appends succeeded; <0 never
	appends   int
}

type memEntry struct {
	seq  uint64
	data []byte
}

type memSnap struct {
	seq    uint64
	chunks [][]byte
}

func newMemJournal() *memJournal {
	return &memJournal{entries: map[int][]memEntry{}, snaps: map[int]memSnap{}, failAfter: -1}
}

func (j *memJournal) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failAfter >= 0 && j.appends >= j.failAfter {
		return nil, fmt.Errorf("memJournal: injected append failure")
	}
	j.appends++
	es := j.entries[shard]
	for i, e := range entries {
		seq := firstSeq + uint64(i)
		if n := len(es); n > 0 && es[n-1].seq+1 != seq {
			panic(fmt.Sprintf("memJournal: shard %d appends %d after %d", shard, seq, es[n-1].seq))
		}
		es = append(es, memEntry{seq, slices.Clone(e)})
	}
	j.entries[shard] = es
	return memNoWait, nil
}

func memNoWait() error { return nil }

func (j *memJournal) Replay(shard int, afterSeq uint64, fn func(uint64, []byte) error) error {
	j.mu.Lock()
	es := slices.Clone(j.entries[shard])
	snap := j.snaps[shard].seq
	j.mu.Unlock()
	// Entries after afterSeq deleted behind a snapshot (a standby that fell
	// behind, follow.go) are a gap, as wal/jetstream reports (ErrBehind).
	if len(es) > 0 && es[0].seq > afterSeq+1 || len(es) == 0 && snap > afterSeq {
		return fmt.Errorf("memJournal: shard %d: entries after %d deleted behind a snapshot", shard, afterSeq)
	}
	for _, e := range es {
		if e.seq > afterSeq {
			if err := fn(e.seq, e.data); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *memJournal) SaveSnapshot(shard int, seq uint64, chunks [][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.snaps[shard] = memSnap{seq, chunks}
	es := j.entries[shard]
	for len(es) > 0 && es[0].seq <= seq {
		es = es[1:]
	}
	j.entries[shard] = es
	return nil
}

func (j *memJournal) LoadSnapshot(shard int, fn func([]byte) error) (uint64, bool, error) {
	j.mu.Lock()
	s, ok := j.snaps[shard]
	j.mu.Unlock()
	if !ok {
		return 0, false, nil
	}
	for _, c := range s.chunks {
		if err := fn(c); err != nil {
			return 0, false, err
		}
	}
	return s.seq, true, nil
}

func (j *memJournal) Layout() (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.layout, nil
}

func (j *memJournal) Reset(snapshots [][][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = map[int][]memEntry{}
	j.snaps = map[int]memSnap{}
	for i, s := range snapshots {
		j.snaps[i] = memSnap{0, s}
	}
	j.layout = len(snapshots)
	return nil
}

// snapshotClosed saves every shard's state of e, a closed engine, as the
// shard's snapshot in j: a restart then loads it instead of the log.
func snapshotClosed(t *testing.T, e *Engine, j Journal) {
	t.Helper()
	for i, s := range e.shards {
		if err := j.SaveSnapshot(i, s.seq, s.st.freeze(s.seq).encode()); err != nil {
			t.Fatal(err)
		}
	}
}

// reopenings are the ways a test restarts an engine on its journal to see
// that a feature's state comes back: the log replayed, a snapshot loaded
// (snapshotClosed), and the sales moved to another shard count.
var reopenings = []struct {
	name   string
	shards int
	snap   bool
}{{"replay", 2, false}, {"snapshot", 2, true}, {"repartition", 3, false}}

// Span makes memJournal a logSpanner, as wal.Log is, so that every test of
// recovery on it counts the tail (tailCount) and prefills for it.
func (j *memJournal) Span(shard int) (first, last uint64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	es := j.entries[shard]
	if len(es) == 0 {
		return 0, 0, nil
	}
	return es[0].seq, es[len(es)-1].seq, nil
}
