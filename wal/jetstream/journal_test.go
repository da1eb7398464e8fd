package jetstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/onsale/onsale/wal/jetstream/jstest"
)

func connect(t testing.TB, c *jstest.Cluster) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func openJournal(t *testing.T, c *jstest.Cluster, name string) *Journal {
	t.Helper()
	j, err := Open(context.Background(), Options{Conn: connect(t, c), Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func appendSync(t *testing.T, j *Journal, shard int, first uint64, entries ...string) error {
	t.Helper()
	var raw [][]byte
	for _, e := range entries {
		raw = append(raw, []byte(e))
	}
	wait, err := j.Append(shard, first, raw)
	if err != nil {
		return err
	}
	return wait()
}

func replayAll(t *testing.T, j *Journal, shard int, after uint64) []string {
	t.Helper()
	var got []string
	next := after + 1
	if err := j.Replay(shard, after, func(seq uint64, e []byte) error {
		if seq != next {
			return fmt.Errorf("seq %d, want %d", seq, next)
		}
		next++
		got = append(got, string(e))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestJournalRoundTrip: what one writer appended (pipelined, several
// Appends before their waits), snapshotted and laid out is what the next
// writer reads, and the stream is purged behind the snapshot.
func TestJournalRoundTrip(t *testing.T) {
	c := jstest.Start(t, 3, false)
	j := openJournal(t, c, "rt")
	if n, err := j.Layout(); err != nil || n != 0 {
		t.Fatalf("Layout of an empty log = %d, %v", n, err)
	}
	if err := j.Reset([][][]byte{{[]byte("s0")}, {[]byte("s1a"), []byte("s1b")}}); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, j, 0, 0); len(got) != 0 {
		t.Fatalf("replay after Reset = %q", got)
	}
	var waits []func() error
	for i := range 10 {
		w, err := j.Append(0, uint64(2*i+1), [][]byte{fmt.Appendf(nil, "e%d", 2*i+1), fmt.Appendf(nil, "e%d", 2*i+2)})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if err := appendSync(t, j, 1, 1, "x1"); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveSnapshot(0, 12, [][]byte{[]byte("at12")}); err != nil {
		t.Fatal(err)
	}

	k := openJournal(t, c, "rt")
	if n, err := k.Layout(); err != nil || n != 2 {
		t.Fatalf("Layout = %d, %v; want 2", n, err)
	}
	var chunks []string
	seq, found, err := k.LoadSnapshot(0, func(c []byte) error { chunks = append(chunks, string(c)); return nil })
	if err != nil || !found || seq != 12 || !slices.Equal(chunks, []string{"at12"}) {
		t.Fatalf("LoadSnapshot(0) = %d %v %v %q", seq, found, err, chunks)
	}
	want := []string{"e13", "e14", "e15", "e16", "e17", "e18", "e19", "e20"}
	if got := replayAll(t, k, 0, 12); !slices.Equal(got, want) {
		t.Fatalf("replay of shard 0 after 12 = %q, want %q", got, want)
	}
	if got := replayAll(t, k, 1, 0); !slices.Equal(got, []string{"x1"}) {
		t.Fatalf("replay of shard 1 = %q", got)
	}
	stream, err := k.js.Stream(context.Background(), "rt_0")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Left: e12 (a purge keeps the entry at the snapshot), e13..e20 and
	// the second writer's fence; e1..e11 purged.
	if info.State.Msgs != 10 {
		t.Fatalf("stream holds %d messages after the snapshot, want 10", info.State.Msgs)
	}
	// The new writer carries on from the old one's last entry.
	if err := appendSync(t, k, 0, 21, "e21"); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, openJournal(t, c, "rt"), 0, 20); !slices.Equal(got, []string{"e21"}) {
		t.Fatalf("replay after 20 = %q", got)
	}
}

// TestJournalFencesTheOldWriter: once a second writer opens a shard, no
// append of the first is acknowledged, and every later reader sees exactly
// what was acknowledged. The old writer's second pipelined message expects
// the sequence the new writer's fence made last, so the stream stores it:
// replay skips it (its writer was fenced), and the new writer, whose own
// expectation it broke, is fenced too (a liveness cost, never a wrong
// answer), so a third writer takes over.
func TestJournalFencesTheOldWriter(t *testing.T) {
	c := jstest.Start(t, 3, false)
	old := openJournal(t, c, "fence")
	if err := appendSync(t, old, 0, 1, "a1", "a2"); err != nil {
		t.Fatal(err)
	}
	next := openJournal(t, c, "fence")
	if got := replayAll(t, next, 0, 0); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("new writer replays %q", got)
	}
	w1, err := old.Append(0, 3, [][]byte{[]byte("a3")})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := old.Append(0, 4, [][]byte{[]byte("a4")})
	if err != nil {
		t.Fatal(err)
	}
	if err := w1(); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed writer's append: %v, want ErrFenced", err)
	}
	if err := w2(); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed writer's second append: %v, want ErrFenced", err)
	}
	want := []string{"a1", "a2"}
	if err := appendSync(t, next, 0, 3, "b3"); err == nil {
		want = append(want, "b3")
	} else if !errors.Is(err, ErrFenced) {
		t.Fatalf("new writer: %v", err)
	}
	third := openJournal(t, c, "fence")
	if got := replayAll(t, third, 0, 0); !slices.Equal(got, want) {
		t.Fatalf("log = %q, want %q", got, want)
	}
	if err := appendSync(t, third, 0, uint64(len(want)+1), "c"); err != nil {
		t.Fatalf("third writer: %v", err)
	}
	want = append(want, "c")
	if got := replayAll(t, openJournal(t, c, "fence"), 0, 0); !slices.Equal(got, want) {
		t.Fatalf("log = %q, want %q", got, want)
	}
}

// TestJournalSurvivesAServerStop: with one of three servers stopped (maybe
// a stream leader), appends still get their quorum, and nothing
// acknowledged is lost.
func TestJournalSurvivesAServerStop(t *testing.T) {
	c := jstest.Start(t, 3, false)
	j := openJournal(t, c, "stop")
	var want []string
	seq := uint64(1)
	for round := range 3 {
		if round == 1 {
			c.StopServer(round)
		}
		if round == 2 {
			c.StartServer(1)
		}
		for range 20 {
			e := fmt.Sprintf("e%d", seq)
			if err := appendSync(t, j, 0, seq, e); err != nil {
				t.Fatalf("round %d, entry %d: %v", round, seq, err)
			}
			want = append(want, e)
			seq++
		}
	}
	if got := replayAll(t, openJournal(t, c, "stop"), 0, 0); !slices.Equal(got, want) {
		t.Fatalf("replayed %d entries, want %d", len(got), len(want))
	}
}

// decodeSnapshot reads a snapshot as LoadSnapshot does.
func decodeSnapshot(b []byte) (seq uint64, chunks [][]byte, err error) {
	r := bufio.NewReader(bytes.NewReader(b))
	seq, count, err := readSnapshotHead(r)
	if err != nil {
		return 0, nil, err
	}
	out := make(chan []byte, count)
	if err := readChunks(r, count, out, nil); err != nil {
		return 0, nil, err
	}
	close(out)
	for c := range out {
		chunks = append(chunks, c)
	}
	return seq, chunks, nil
}

func TestSnapshotCodec(t *testing.T) {
	for _, chunks := range [][][]byte{nil, {{}}, {[]byte("a"), []byte("bc")}} {
		seq, got, err := decodeSnapshot(encodeSnapshot(7, chunks))
		if err != nil || seq != 7 || len(got) != len(chunks) {
			t.Fatalf("%q: %d %q %v", chunks, seq, got, err)
		}
		for i := range got {
			if !bytes.Equal(got[i], chunks[i]) {
				t.Fatalf("%q: chunk %d = %q", chunks, i, got[i])
			}
		}
	}
	b := encodeSnapshot(7, [][]byte{[]byte("abc")})
	for n := range len(b) {
		if _, _, err := decodeSnapshot(b[:n]); err == nil {
			t.Fatalf("a snapshot cut at %d bytes decoded", n)
		}
	}
	if _, _, err := decodeSnapshot(append(b, 0)); err == nil {
		t.Fatal("a snapshot with a trailing byte decoded")
	}
}

func tailAll(t *testing.T, j *Journal, shard int, after uint64) []string {
	t.Helper()
	var got []string
	next := after + 1
	if err := j.Tail(shard, after, func(seq uint64, e []byte) error {
		if seq != next {
			return fmt.Errorf("seq %d, want %d", seq, next)
		}
		next++
		got = append(got, string(e))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestJournalTail: the tailing read returns the acknowledged entries after
// its position and nothing else: not an entry appended and not yet
// acknowledged, not the fence of a writer that took the log over, nothing
// behind a snapshot; and it does not take the shard's lock, which an Append
// holds (the test holds it while reading: a Tail that took it would hang).
func TestJournalTail(t *testing.T) {
	c := jstest.Start(t, 3, false)
	a := openJournal(t, c, "tail")
	if err := a.Reset([][][]byte{{[]byte("s")}}); err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, a, 0, 0); len(got) != 0 {
		t.Fatalf("tail of an empty log = %q", got)
	}
	if err := appendSync(t, a, 0, 1, "1", "2", "3", "4", "5"); err != nil {
		t.Fatal(err)
	}
	s := a.shard(0)
	s.mu.Lock() // as an Append in progress
	got, rest, none := tailAll(t, a, 0, 0), tailAll(t, a, 0, 3), tailAll(t, a, 0, 5)
	s.mu.Unlock()
	if !slices.Equal(got, []string{"1", "2", "3", "4", "5"}) || !slices.Equal(rest, []string{"4", "5"}) || len(none) != 0 {
		t.Fatalf("tail after 0, 3, 5 = %q, %q, %q", got, rest, none)
	}
	wait, err := a.Append(0, 6, [][]byte{[]byte("6"), []byte("7")})
	if err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, a, 0, 5); len(got) != 0 {
		t.Fatalf("tail read %q before their acknowledgement was waited for", got)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, a, 0, 5); !slices.Equal(got, []string{"6", "7"}) {
		t.Fatalf("tail after 5 = %q", got)
	}

	// A new writer: its recovery's Replay teaches it where the entries
	// are; its fence, between 7 and its own 8, is skipped.
	b := openJournal(t, c, "tail")
	if got := replayAll(t, b, 0, 0); len(got) != 7 {
		t.Fatalf("new writer replays %q", got)
	}
	if err := appendSync(t, b, 0, 8, "8", "9"); err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, b, 0, 5); !slices.Equal(got, []string{"6", "7", "8", "9"}) {
		t.Fatalf("new writer's tail after 5 = %q", got)
	}
	if err := b.SaveSnapshot(0, 7, [][]byte{[]byte("s7")}); err != nil {
		t.Fatal(err)
	}
	if got := tailAll(t, b, 0, 5); len(got) != 0 {
		t.Fatalf("tail behind the snapshot = %q", got)
	}
	if got := tailAll(t, b, 0, 7); !slices.Equal(got, []string{"8", "9"}) {
		t.Fatalf("tail after the snapshot = %q", got)
	}
}
