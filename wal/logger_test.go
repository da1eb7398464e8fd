package wal

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFailingFlushIsNotAFlood: Pebble retries a flush that fails for want
// of space at once and forever, logging each failure. Alike lines are
// logged at most alikeLinesPerSecondMax times a second; the next one
// says how many were held back, and so does Close.
func TestFailingFlushIsNotAFlood(t *testing.T) {
	var failing atomic.Bool
	var attempts atomic.Int64
	manyFailures := make(chan struct{})
	var once sync.Once
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
			if attempts.Add(1) == 200 {
				once.Do(func() { close(manyFailures) })
			}
			return syscall.ENOSPC
		}
		return nil
	})
	var clock atomic.Int64 // seconds
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	var out lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	l, err := Open("db", Options{FS: errorfs.Wrap(vfs.NewMem(), inj), Logger: logger, now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := appendSync(l, 0, 1, [][]byte{[]byte("entry")}); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	flushed, err := l.db.AsyncFlush()
	if err != nil {
		t.Fatal(err)
	}
	<-manyFailures
	if n := out.count(); n < 1 || n > alikeLinesPerSecondMax {
		t.Fatalf("%d failures in one second of the clock logged %d lines, want 1 to %d:\n%s",
			attempts.Load(), n, alikeLinesPerSecondMax, out.String())
	}

	// A second later the next failure is logged with the count held back.
	clock.Add(1)
	for out.held() == 0 {
		<-time.After(time.Millisecond) // Pebble retries at once; observe its next line
	}
	failing.Store(false)
	<-flushed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Every failure is logged or counted; Close logged the last count held
	// back (its line repeats the latest failure).
	if n, held := out.count(), out.held(); int64(n+held) < attempts.Load() || n > 2*alikeLinesPerSecondMax+1 {
		t.Errorf("%d failures: %d lines logged, %d counted as held back:\n%s", attempts.Load(), out.count(), out.held(), out.String())
	}
}

func TestAlikeKind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"background error: flush: 000123.sst: no space left on device", "background error: flush: #.sst: no space left on device"},
		{"[JOB 12] flushing 3 memtables", "[JOB #] flushing # memtables"},
		{"no digits", "no digits"},
		{"", ""},
	} {
		if got := alikeKind(c.in); got != c.want {
			t.Errorf("alikeKind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// lockedBuffer collects JSON log lines from Pebble's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// count is the number of lines about the injected error.
func (w *lockedBuffer) count() int { return strings.Count(w.String(), "no space left on device") }

// held sums alike_lines_held_back over the lines logged.
func (w *lockedBuffer) held() int {
	n := 0
	for _, line := range strings.Split(w.String(), "\n") {
		var l struct {
			Held int `json:"alike_lines_held_back"`
		}
		if json.Unmarshal([]byte(line), &l) == nil {
			n += l.Held
		}
	}
	return n
}
