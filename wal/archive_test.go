package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestArchiveWithEntryAtomic appends entries that carry archive records and
// takes crash clones (a random share of unsynced data dropped) before and
// after each sync: in every clone, an entry is there exactly when its
// records are, and a synced one always is.
func TestArchiveWithEntryAtomic(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	mem := vfs.NewCrashableMem()
	l := openMem(t, mem)
	defer l.Close()
	type clone struct {
		fs     *vfs.MemFS
		synced int // entries synced when it was taken
	}
	var clones []clone
	const n = 8
	for i := 1; i <= n; i++ {
		var keys, values [][]byte
		for k := range 1 + rng.IntN(200) {
			keys = append(keys, fmt.Appendf(nil, "sale%d/%05d", i, k))
			values = append(values, make([]byte, rng.IntN(3000)))
		}
		wait, err := l.AppendArchive(0, uint64(i), [][]byte{fmt.Appendf(nil, "entry %d", i)}, keys, values)
		if err != nil {
			t.Fatal(err)
		}
		clones = append(clones, clone{mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng}), i - 1})
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		clones = append(clones, clone{mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng}), i})
	}
	for ci, c := range clones {
		l2 := openMem(t, c.fs)
		entries := len(replayAll(t, l2, 0, 0))
		if entries < c.synced {
			t.Fatalf("clone %d (seed %d): %d entries, %d were synced", ci, seed, entries, c.synced)
		}
		for i := 1; i <= n; i++ {
			records := 0
			if err := l2.ArchiveScan(fmt.Appendf(nil, "sale%d/", i), nil, func(k, v []byte) (bool, error) {
				records++
				return true, nil
			}); err != nil {
				t.Fatal(err)
			}
			_, first, err := l2.ArchiveGet(fmt.Appendf(nil, "sale%d/00000", i))
			if err != nil {
				t.Fatal(err)
			}
			if (i <= entries) != (records > 0) || first != (records > 0) {
				t.Fatalf("clone %d (seed %d): entry %d present %v, its records %d", ci, seed, i, i <= entries, records)
			}
		}
		l2.Close()
	}
}

func TestArchiveScanBounds(t *testing.T) {
	l := openMem(t, vfs.NewMem())
	defer l.Close()
	keys := [][]byte{[]byte("a\x00"), []byte("a\x01"), []byte("a\xff"), []byte("a\xff\xff"), []byte("b")}
	values := [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5")}
	wait, err := l.AppendArchive(0, 1, [][]byte{[]byte("e")}, keys, values)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := l.ArchiveScan([]byte("a"), []byte("a\x01"), func(k, v []byte) (bool, error) {
		got += string(v)
		return len(got) < 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != "23" {
		t.Fatalf("scan from a\\x01, two values: %q", got)
	}
	got = ""
	if err := l.ArchiveScan([]byte("a\xff"), nil, func(k, v []byte) (bool, error) {
		got += string(v)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != "34" {
		t.Fatalf("prefix a\\xff: %q", got)
	}
	if _, ok, err := l.ArchiveGet([]byte("c")); ok || err != nil {
		t.Fatalf("missing key: %v %v", ok, err)
	}
}
