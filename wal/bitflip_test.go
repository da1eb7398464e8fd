package wal

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var (
	flipSeed   = flag.Uint64("flip-seed", 0, "seed for TestBitFlipsAreRefused (0: from the clock)")
	flipTrials = flag.Int("flips", 150, "bit flips per TestBitFlipsAreRefused run")
)

// TestBitFlipsAreRefused flips one random bit in the synced files of a log
// (WALs, tables, manifest) and reopens a copy: either Open or Replay
// refuses with an error, or every acknowledged entry comes back intact. A
// log that opens and quietly returns fewer or different entries is the
// failure. The last entries are sentinels that are allowed to vanish: a
// flip in the last chunks synced cannot be told from a torn write (tail.go).
func TestBitFlipsAreRefused(t *testing.T) {
	seed := *flipSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -flip-seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 11))

	// Two runs of the log: the first WAL is closed and older, the second is
	// the newest and was never closed (a crash).
	mem := vfs.NewCrashableMem()
	var want []string
	seq := uint64(0)
	write := func(l *Log, n int) {
		for range n {
			seq++
			e := fmt.Sprintf("entry %d %s", seq, strings.Repeat("x", rng.IntN(200)))
			if err := appendSync(l, 0, seq, [][]byte{[]byte(e)}); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("%d:%s", seq, e))
		}
	}
	l := openMem(t, mem)
	write(l, 300)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openMem(t, mem)
	defer l.Close()
	write(l, 400)
	// Sentinels, allowed to vanish: the last few hundred bytes synced
	// before a crash cannot be vouched for (tail.go).
	write(l, 8)
	want = want[:len(want)-8]
	synced := mem.CrashClone(vfs.CrashCloneCfg{})
	files := flippable(t, synced)

	refused, intact := 0, 0
	for trial := range *flipTrials {
		fs := synced.CrashClone(vfs.CrashCloneCfg{})
		name, off, bit := pickBit(rng, files)
		flipBit(t, fs, name, off, bit)
		got, err := openAndReplay(fs)
		if err != nil {
			refused++
			if refused <= 3 {
				t.Logf("flip %s@%d bit %d refused: %v", name, off, bit, err)
			}
			continue
		}
		if len(got) < len(want) || !equalPrefix(got, want) {
			t.Fatalf("seed %d trial %d: a flip of %s@%d bit %d opened and replayed %d entries, not the %d acknowledged (first difference at %d)",
				seed, trial, name, off, bit, len(got), len(want), firstDiff(got, want))
		}
		intact++
	}
	t.Logf("%d flips: %d refused, %d harmless (padding, unused bytes)", *flipTrials, refused, intact)
	if refused == 0 {
		t.Fatal("no flip was refused; the test did not reach the data")
	}
}

type flipFile struct {
	name string
	size int64
}

// flippable lists the files that hold data: WALs, tables and the manifest.
func flippable(t *testing.T, fs vfs.FS) []flipFile {
	names, err := fs.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var files []flipFile
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") && !strings.HasSuffix(n, ".sst") && !strings.HasPrefix(n, "MANIFEST-") {
			continue
		}
		st, err := fs.Stat(fs.PathJoin("db", n))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 0 {
			files = append(files, flipFile{n, st.Size()})
		}
	}
	if len(files) == 0 {
		t.Fatal("no data files")
	}
	return files
}

// pickBit picks a bit uniformly over all the files' bytes.
func pickBit(rng *rand.Rand, files []flipFile) (string, int64, uint) {
	var total int64
	for _, f := range files {
		total += f.size
	}
	at := rng.Int64N(total)
	for _, f := range files {
		if at < f.size {
			return f.name, at, uint(rng.IntN(8))
		}
		at -= f.size
	}
	panic("unreachable")
}

func flipBit(t *testing.T, fs vfs.FS, name string, off int64, bit uint) {
	t.Helper()
	path := fs.PathJoin("db", name)
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1 << bit
	w, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// fatalError is how a test's OnFatal hands Pebble's fatal message back:
// in the binary, OnFatal logs it and exits.
type fatalError string

func (f fatalError) Error() string { return string(f) }

// openAndReplay opens and replays the copy; an error from either, or a
// fatal corruption report from Pebble while reading, is a refusal.
func openAndReplay(fs vfs.FS) (got []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			got, err = nil, f
		}
	}()
	l, err := Open("db", Options{FS: fs, Logger: quiet, OnFatal: func(msg string) { panic(fatalError(msg)) }})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	err = l.Replay(0, 0, func(seq uint64, e []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", seq, bytes.Clone(e)))
		return nil
	})
	return got, err
}

func equalPrefix(got, want []string) bool {
	return firstDiff(got, want) == len(want)
}

func firstDiff(got, want []string) int {
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			return i
		}
	}
	return len(want)
}
