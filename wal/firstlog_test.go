package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFirstLogBitFlips: a bit flipped in the newest WAL of a log that was
// never reopened since it was created — the state of a new data directory
// before its first restart — is refused or changes nothing acknowledged.
// Pebble writes a new database's first WAL before it ratchets the format to
// the one whose chunks carry synced offsets, so tail.go had nothing to check
// it against, and one flip silently dropped up to hundreds of acknowledged
// entries on reopen. Three ways to reach that WAL: a crash, a clean Close,
// and a WAL file recycled after memtable flushes.
func TestFirstLogBitFlips(t *testing.T) {
	for _, c := range []struct {
		name string
		// sentinels are last entries allowed to vanish: after a crash, the
		// last chunks synced cannot be told from a torn write (tail.go).
		sentinels int
		run       func(t *testing.T, l *Log, mem *vfs.MemFS, write func(n int)) vfs.FS
	}{
		{"crash", 8, func(t *testing.T, l *Log, mem *vfs.MemFS, write func(int)) vfs.FS {
			write(300)
			return mem.CrashClone(vfs.CrashCloneCfg{})
		}},
		// A clean close syncs everything and ends the WAL with an EOF
		// trailer, which vouches for every chunk before it: no sentinels.
		{"close", 0, func(t *testing.T, l *Log, mem *vfs.MemFS, write func(int)) vfs.FS {
			write(300)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			return mem.CrashClone(vfs.CrashCloneCfg{})
		}},
		{"recycled", 8, func(t *testing.T, l *Log, mem *vfs.MemFS, write func(int)) vfs.FS {
			for range 3 {
				write(100)
				if err := l.db.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			write(300)
			if reused := l.fs.(*reuseFS).lastReused(); reused == "" || reused != newestLog(t, mem).name {
				t.Fatalf("the newest WAL, %s, is not a recycled file (last reused: %q)", newestLog(t, mem).name, reused)
			}
			return mem.CrashClone(vfs.CrashCloneCfg{})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 17))
			mem := vfs.NewCrashableMem()
			l, err := Open("db", Options{FS: &reuseFS{FS: mem}, Logger: quiet, prefillWindow: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if c.name != "close" {
					l.Close()
				}
			}()
			var want []string
			seq := uint64(0)
			write := func(n int) {
				for range n {
					seq++
					e := fmt.Sprintf("entry %d %s", seq, strings.Repeat("x", rng.IntN(200)))
					if err := appendSync(l, 0, seq, [][]byte{[]byte(e)}); err != nil {
						t.Fatal(err)
					}
					want = append(want, fmt.Sprintf("%d:%s", seq, e))
				}
			}
			synced := c.run(t, l, mem, write)
			want = want[:len(want)-c.sentinels]
			newest := newestLog(t, synced)
			refused, intact := 0, 0
			for trial := range *flipTrials {
				fs := synced.(*vfs.MemFS).CrashClone(vfs.CrashCloneCfg{})
				name, off, bit := pickBit(rng, []flipFile{newest})
				flipBit(t, fs, name, off, bit)
				got, err := openAndReplay(fs)
				if err != nil {
					refused++
					continue
				}
				if len(got) < len(want) || !equalPrefix(got, want) {
					t.Fatalf("seed %d trial %d: a flip of %s@%d bit %d opened and replayed %d entries, not the %d acknowledged (first difference at %d)",
						seed, trial, name, off, bit, len(got), len(want), firstDiff(got, want))
				}
				intact++
			}
			t.Logf("%d flips in %s (%d bytes): %d refused, %d harmless", *flipTrials, newest.name, newest.size, refused, intact)
			if refused == 0 {
				t.Fatal("no flip was refused; the test did not reach the data")
			}
		})
	}
}

// reuseFS records the last WAL file Pebble recycled.
type reuseFS struct {
	vfs.FS
	mu     sync.Mutex
	reused string // the recycled file's new name
}

func (fs *reuseFS) lastReused() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.reused
}

func (fs *reuseFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err == nil {
		fs.mu.Lock()
		fs.reused = fs.PathBase(newname)
		fs.mu.Unlock()
	}
	return f, err
}

// newestLog returns the highest-numbered WAL file in db.
func newestLog(t *testing.T, fs vfs.FS) flipFile {
	t.Helper()
	var newest flipFile
	for _, f := range flippable(t, fs) {
		if strings.HasSuffix(f.name, ".log") && f.name > newest.name {
			newest = f
		}
	}
	if newest.name == "" {
		t.Fatal("no WAL file")
	}
	return newest
}

// TestFlippedLogNumberIsNotAnEnd: Pebble's reader ends a WAL at any chunk
// whose log number is the next one (what its EOF trailer writes), so
// flipping the lowest bit of an even log number in the first chunk would
// make a log of acknowledged entries open empty. Both in a WAL that is still
// open (a crash) and in one closed cleanly, Open refuses it.
func TestFlippedLogNumberIsNotAnEnd(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("closed=%v", closed), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			l := openMem(t, mem)
			for seq := uint64(1); seq <= 300; seq++ {
				if err := appendSync(l, 0, seq, [][]byte{fmt.Appendf(nil, "entry %d %0100d", seq, seq)}); err != nil {
					t.Fatal(err)
				}
			}
			var fs vfs.FS
			if closed {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				fs = mem.CrashClone(vfs.CrashCloneCfg{})
			} else {
				fs = mem.CrashClone(vfs.CrashCloneCfg{})
				defer l.Close()
			}
			newest := newestLog(t, fs)
			var num uint32
			if _, err := fmt.Sscanf(newest.name, "%06d.log", &num); err != nil || num%2 != 0 {
				t.Fatalf("the newest WAL is %s: want an even number, whose lowest bit a flip sets", newest.name)
			}
			flipBit(t, fs, newest.name, 7, 0) // the first chunk's log number, now num+1
			got, err := openAndReplay(fs)
			if err == nil {
				t.Fatalf("a flipped log number in the first chunk opened, with %d of 300 entries", len(got))
			}
			if !errors.Is(err, pebble.ErrCorruption) {
				t.Fatalf("refused, but not as corruption: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}
