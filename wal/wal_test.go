package wal

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var quiet = slog.New(slog.DiscardHandler)

func openMem(t testing.TB, fs vfs.FS) *Log {
	t.Helper()
	l, err := Open("db", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func replayAll(t testing.TB, l *Log, shard int, after uint64) []string {
	t.Helper()
	var got []string
	if err := l.Replay(shard, after, func(seq uint64, e []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", seq, e))
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func TestAppendReplaySnapshotReset(t *testing.T) {
	l := openMem(t, vfs.NewMem())
	defer l.Close()
	if n, err := l.Layout(); n != 0 || err != nil {
		t.Fatalf("empty Layout = %d, %v", n, err)
	}
	if err := appendSync(l, 0, 1, [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(l, 1, 1, [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := appendSync(l, 0, 3, [][]byte{[]byte("c")}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replayAll(t, l, 0, 0), " "); got != "1:a 2:b 3:c" {
		t.Fatalf("shard 0: %s", got)
	}
	if got := strings.Join(replayAll(t, l, 0, 2), " "); got != "3:c" {
		t.Fatalf("shard 0 after 2: %s", got)
	}
	if got := strings.Join(replayAll(t, l, 1, 0), " "); got != "1:x" {
		t.Fatalf("shard 1: %s", got)
	}
	if err := l.SaveSnapshot(0, 2, [][]byte{[]byte("s0"), []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	var chunks []string
	seq, found, err := l.LoadSnapshot(0, func(c []byte) error { chunks = append(chunks, string(c)); return nil })
	if err != nil || !found || seq != 2 || strings.Join(chunks, ",") != "s0,s1" {
		t.Fatalf("LoadSnapshot: %d %v %v %v", seq, found, err, chunks)
	}
	if got := strings.Join(replayAll(t, l, 0, 2), " "); got != "3:c" {
		t.Fatalf("after snapshot: %s", got)
	}
	// Entries up to the snapshot are gone: replaying from before it is a gap.
	if err := l.Replay(0, 0, func(uint64, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("replay across a deleted prefix: %v", err)
	}
	if err := l.Reset([][][]byte{{[]byte("r0")}, {}, {[]byte("r2")}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Layout(); n != 3 {
		t.Fatalf("Layout after Reset = %d", n)
	}
	for shard, want := range []string{"r0", "", "r2"} {
		chunks = nil
		seq, found, err := l.LoadSnapshot(shard, func(c []byte) error { chunks = append(chunks, string(c)); return nil })
		if err != nil || !found || seq != 0 || strings.Join(chunks, "") != want {
			t.Fatalf("shard %d after Reset: %d %v %v %q", shard, seq, found, err, chunks)
		}
		if got := replayAll(t, l, shard, 0); len(got) != 0 {
			t.Fatalf("shard %d log after Reset: %v", shard, got)
		}
	}
	if err := l.Put("user/alice", []byte("hash")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := l.Get("user/alice"); !ok || err != nil || string(v) != "hash" {
		t.Fatalf("Get: %q %v %v", v, ok, err)
	}
	if err := l.Delete("user/alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.Get("user/alice"); ok {
		t.Fatal("deleted key still there")
	}
}

// TestCrashKeepsEveryAcknowledgedAppend appends from several shards at once
// and takes crash clones (unsynced data partly dropped) at random moments:
// every Append that returned before the clone must be in it, without gaps.
func TestCrashKeepsEveryAcknowledgedAppend(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := vfs.NewCrashableMem()
	l := openMem(t, fs)
	const shards, perShard = 4, 300
	var acked [shards]struct {
		sync.Mutex
		n uint64
	}
	var wg sync.WaitGroup
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= perShard; seq++ {
				if err := appendSync(l, s, seq, [][]byte{fmt.Appendf(nil, "s%d-%d", s, seq)}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				acked[s].Lock()
				acked[s].n = seq
				acked[s].Unlock()
			}
		}()
	}
	crashes := 0
	for done := false; !done && crashes < 40; crashes++ {
		var floor [shards]uint64
		for s := range shards {
			acked[s].Lock()
			floor[s] = acked[s].n
			acked[s].Unlock()
		}
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 2))})
		l2, err := Open("db", Options{FS: clone, Logger: quiet})
		if err != nil {
			t.Fatalf("seed %d: reopen after crash %d: %v", seed, crashes, err)
		}
		done = true
		for s := range shards {
			got := replayAll(t, l2, s, 0)
			if uint64(len(got)) < floor[s] {
				t.Fatalf("seed %d: crash %d shard %d: %d entries survive, %d were acknowledged", seed, crashes, s, len(got), floor[s])
			}
			for i, g := range got {
				if g != fmt.Sprintf("%d:s%d-%d", i+1, s, i+1) {
					t.Fatalf("seed %d: entry %d of shard %d is %q", seed, i+1, s, g)
				}
			}
			if floor[s] < perShard {
				done = false
			}
		}
		l2.Close()
	}
	wg.Wait()
	l.Close()
	t.Logf("%d crash points checked", crashes)
}

// TestSnapshotIsAtomicUnderCrash: a crash during SaveSnapshot leaves the old
// snapshot with its log, or the new snapshot; either way nothing is lost.
func TestSnapshotIsAtomicUnderCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openMem(t, fs)
	defer l.Close()
	for seq := uint64(1); seq <= 10; seq++ {
		if err := appendSync(l, 0, seq, [][]byte{{byte(seq)}}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		big := bytes.Repeat([]byte("x"), 1<<20)
		if err := l.SaveSnapshot(0, 10, [][]byte{big, big, big}); err != nil {
			t.Error(err)
		}
	}()
	for i := 0; ; i++ {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(i), 3))})
		l2, err := Open("db", Options{FS: clone, Logger: quiet})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		n := 0
		seq, found, err := l2.LoadSnapshot(0, func([]byte) error { n++; return nil })
		if err != nil {
			t.Fatalf("LoadSnapshot after crash: %v", err)
		}
		entries := replayAll(t, l2, 0, seq)
		switch {
		case !found && len(entries) == 10:
		case found && seq == 10 && n == 3 && len(entries) == 0:
		default:
			t.Fatalf("crash during snapshot left found=%v seq=%d chunks=%d entries=%d", found, seq, n, len(entries))
		}
		l2.Close()
		if finished {
			if !found {
				t.Fatal("snapshot acknowledged but not found after crash")
			}
			return
		}
	}
}
