package wal

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var testPrefillWindow int64 = 64 << 10

func openPrefilled(t testing.TB, fs vfs.FS) *Log {
	t.Helper()
	l, err := Open("db", Options{FS: fs, Logger: quiet, prefillWindow: testPrefillWindow})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// newestLogSize returns the size of the newest WAL file in dir.
func newestLogSize(t testing.TB, fs vfs.FS, dir string) int64 {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	newest := ""
	for _, n := range names {
		if strings.HasSuffix(n, ".log") && n > newest {
			newest = n
		}
	}
	if newest == "" {
		t.Fatal("no WAL file")
	}
	st, err := fs.Stat(fs.PathJoin(dir, newest))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestPrefillSurvivesCrashes: with the WAL zero-filled ahead of Pebble's
// writes, two shards append concurrently while the test takes crash images
// (half the unsynced data dropped at random); each image reopens, and
// every entry acknowledged before it was taken replays intact and in
// order. The zeros are there: the WAL file grows ahead of the data.
func TestPrefillSurvivesCrashes(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	mem := vfs.NewCrashableMem()
	l := openPrefilled(t, mem)
	defer l.Close()
	const shards, perShard = 2, 400
	var mu sync.Mutex
	acked := make([]int, shards) // entries acknowledged per shard
	entry := func(shard, seq int) string { return fmt.Sprintf("s%d-e%d-%s", shard, seq, strings.Repeat("p", seq%97)) }
	var wg sync.WaitGroup
	for s := range shards {
		wg.Go(func() {
			for seq := 1; seq <= perShard; seq++ {
				if err := appendSync(l, s, uint64(seq), [][]byte{[]byte(entry(s, seq))}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[s] = seq
				mu.Unlock()
			}
		})
	}
	sawZeros := false
	check := func(i int) bool {
		mu.Lock()
		before := append([]int(nil), acked...)
		mu.Unlock()
		clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, uint64(i)))})
		if size := newestLogSize(t, clone, "db"); size >= testPrefillWindow {
			sawZeros = true
		}
		l2 := openPrefilled(t, clone)
		defer l2.Close()
		done := true
		for s := range shards {
			got := replayAll(t, l2, s, 0)
			if len(got) < before[s] {
				t.Fatalf("seed %d image %d: shard %d replays %d entries, %d were acknowledged", seed, i, s, len(got), before[s])
			}
			for j, g := range got {
				if want := fmt.Sprintf("%d:%s", j+1, entry(s, j+1)); g != want {
					t.Fatalf("seed %d image %d: shard %d entry %d is %q, want %q", seed, i, s, j+1, g, want)
				}
			}
			done = done && before[s] == perShard
		}
		return done
	}
	for i := 0; i < 200; i++ {
		if check(i) {
			break
		}
	}
	wg.Wait()
	check(200)
	if !sawZeros {
		t.Fatal("the WAL file never reached the prefill window: nothing was zero-filled ahead")
	}
}

// TestPrefillBitFlips: a bit flipped anywhere in a prefilled newest WAL,
// its zeros included, is refused or changes nothing acknowledged (as
// TestBitFlipsAreRefused holds for the log without prefill).
func TestPrefillBitFlips(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	// As in TestBitFlipsAreRefused: a first run of the log, closed, and a
	// second that is the newest and never closed (a crash).
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
	l := openPrefilled(t, mem)
	write(l, 300)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openPrefilled(t, mem)
	defer l.Close()
	write(l, 408)
	want = want[:len(want)-8] // sentinels: the last chunks synced cannot be vouched for (tail.go)
	synced := mem.CrashClone(vfs.CrashCloneCfg{})
	var logs []flipFile
	for _, f := range flippable(t, synced) {
		if strings.HasSuffix(f.name, ".log") {
			logs = append(logs, f)
		}
	}
	refused, intact := 0, 0
	for trial := range 100 {
		fs := synced.CrashClone(vfs.CrashCloneCfg{})
		name, off, bit := pickBit(rng, logs)
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
	t.Logf("100 flips: %d refused, %d harmless (the zeros ahead, padding)", refused, intact)
	if refused == 0 {
		t.Fatal("no flip was refused; the test did not reach the data")
	}
}

// TestPrefillOnDisk: on the real disk the WAL is zero-filled ahead of the
// data while the log is open, cut back to the data when it closes, and
// reopens with every entry.
func TestPrefillOnDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 100; seq++ {
		if err := appendSync(l, 0, seq, [][]byte{[]byte(fmt.Sprintf("entry %d", seq))}); err != nil {
			t.Fatal(err)
		}
	}
	// The filling runs beside the appends: wait until it has got ahead,
	// for at most 10 s.
	var open int64
	for i := 0; i < 1000; i++ {
		if open = newestLogSize(t, vfs.Default, dir); open >= prefillWindow {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if open < prefillWindow {
		t.Fatalf("the open WAL is %d bytes: not zero-filled %d bytes ahead", open, prefillWindow)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Every WAL file left is cut back to its records.
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= prefillChunk {
			t.Fatalf("%s is %d bytes after Close: the zeros were not cut off", p, len(b))
		}
	}
	l, err = Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := replayAll(t, l, 0, 0); len(got) != 100 || got[99] != "100:entry 100" {
		t.Fatalf("reopened, the log holds %d entries (last %q)", len(got), got[len(got)-1])
	}
}

// BenchmarkOpenAfterCrash: what the zeros ahead cost a start after a
// crash. Each round writes 1,000 synced entries on the real disk, copies
// the directory while the log is open (a crash image: the newest WAL with
// its zeros), and times Open of the copy.
func BenchmarkOpenAfterCrash(b *testing.B) {
	for _, w := range []struct {
		name   string
		window int64
	}{{"prefill=off", -1}, {"prefill=1MiB", 1 << 20}, {"prefill=4MiB", 4 << 20}} {
		b.Run(w.name, func(b *testing.B) {
			var open time.Duration
			for range b.N {
				dir := b.TempDir()
				l, err := Open(dir, Options{Logger: quiet, prefillWindow: w.window})
				if err != nil {
					b.Fatal(err)
				}
				for seq := uint64(1); seq <= 1000; seq++ {
					if err := appendSync(l, 0, seq, [][]byte{fmt.Appendf(nil, "entry %d %0200d", seq, seq)}); err != nil {
						b.Fatal(err)
					}
				}
				image := b.TempDir()
				if err := os.CopyFS(image, os.DirFS(dir)); err != nil {
					b.Fatal(err)
				}
				l.Close()
				start := time.Now()
				l2, err := Open(image, Options{Logger: quiet, prefillWindow: -1})
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(start)
				l2.Close()
			}
			b.ReportMetric(float64(open.Microseconds())/float64(b.N)/1e3, "open-ms")
		})
	}
}
