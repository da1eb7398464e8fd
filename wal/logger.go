package wal

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// pebbleLogger sends Pebble's lines to slog, holding back repeats: alike
// lines (equal but for their numbers) are logged at most
// alikeLinesPerSecondMax times a second, and the next one logged says how
// many were held back. Pebble v2.1.7 retries a failed flush at once and
// forever, logging every failure ("TODO(peter): count consecutive flush
// errors and backoff", compaction.go): started on a full disk, that was
// 3.9 million identical "no space left on device" lines in ten minutes.
// The general repair belongs upstream (a backoff between failed flushes);
// the log flood is what we can stop here. Fatalf is never held back: it
// hands over to OnFatal, which does not return.
type pebbleLogger struct {
	log     *slog.Logger
	onFatal func(string)
	repeats *repeatLimiter
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.emit(slog.LevelInfo, fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.emit(slog.LevelError, fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error(msg, "component", "pebble")
	p.onFatal(msg)
	panic("wal: OnFatal returned: " + msg) // never continue past a fatal commit error
}

func (p pebbleLogger) emit(level slog.Level, msg string) {
	show, held := p.repeats.allow(msg, level)
	if !show {
		return
	}
	if held > 0 {
		p.log.Log(context.Background(), level, msg, "component", "pebble", "alike_lines_held_back", held)
		return
	}
	p.log.Log(context.Background(), level, msg, "component", "pebble")
}

// flush logs, for each kind of line that was held back since it was last
// logged, its latest instance with the count. Close calls it, so that the
// count of a flood that ended is not lost.
func (p pebbleLogger) flush() {
	for _, r := range p.repeats.drain() {
		p.log.Log(context.Background(), r.level, r.last, "component", "pebble", "alike_lines_held_back", r.held)
	}
}

// Limits of the repeat limiter.
const (
	alikeLinesPerSecondMax = 3
	// alikeKindsMax bounds the kinds of line remembered; past it the table
	// starts afresh (and forgets counts held back, which is rare: Pebble's
	// lines are of few kinds).
	alikeKindsMax = 256
)

// repeatLimiter counts alike lines per second. Safe for concurrent use.
type repeatLimiter struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*repeats
}

// repeats is one kind of line.
type repeats struct {
	second time.Time // start of the current one-second window
	shown  int       // lines logged in it
	held   int       // lines held back since the last one logged
	last   string    // the latest line held back
	level  slog.Level
}

type heldLines struct {
	last  string
	held  int
	level slog.Level
}

func newRepeatLimiter(now func() time.Time) *repeatLimiter {
	if now == nil {
		now = time.Now
	}
	return &repeatLimiter{now: now, kinds: make(map[string]*repeats)}
}

// allow reports whether to log line now and, if so, how many alike lines
// were held back since the last one logged.
func (l *repeatLimiter) allow(line string, level slog.Level) (show bool, held int) {
	kind := alikeKind(line)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.kinds[kind]
	if r == nil {
		if len(l.kinds) >= alikeKindsMax {
			clear(l.kinds)
		}
		r = &repeats{second: now}
		l.kinds[kind] = r
	}
	if now.Sub(r.second) >= time.Second || now.Before(r.second) {
		r.second, r.shown = now, 0
	}
	if r.shown >= alikeLinesPerSecondMax {
		r.held++
		r.last, r.level = line, level
		return false, 0
	}
	r.shown++
	held = r.held
	r.held = 0
	return true, held
}

// drain returns the kinds with lines held back, and forgets those counts.
func (l *repeatLimiter) drain() []heldLines {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []heldLines
	for _, r := range l.kinds {
		if r.held > 0 {
			out = append(out, heldLines{last: r.last, held: r.held, level: r.level})
			r.held = 0
		}
	}
	return out
}

// alikeKind is line with every run of digits replaced by '#': Pebble's
// repeated failures differ in file numbers and counters only.
func alikeKind(line string) string {
	b := make([]byte, 0, len(line))
	inDigits := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c >= '0' && c <= '9' {
			if !inDigits {
				b = append(b, '#')
			}
			inDigits = true
			continue
		}
		inDigits = false
		b = append(b, c)
	}
	return string(b)
}
