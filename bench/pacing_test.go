package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// fakeClock is a clock that moves only when told: SleepUntil jumps to the
// wake-up time, and an op "takes" time by advancing it. Used with one
// worker, it makes the load loops deterministic and sleep-free.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestScheduleAt(t *testing.T) {
	start := time.Unix(100, 0)
	for _, tc := range []struct {
		rate float64
		i    int64
		want time.Duration
	}{
		{1000, 0, 0},
		{1000, 1, time.Millisecond},
		{1000, 1500, 1500 * time.Millisecond},
		{3, 1, 333_333_333},
		{3, 3, time.Second},
		{0.5, 2, 4 * time.Second},
	} {
		s := Schedule{Start: start, RatePerSec: tc.rate}
		if got := s.At(tc.i).Sub(start); got != tc.want {
			t.Errorf("rate %v: At(%d) = %v, want %v", tc.rate, tc.i, got, tc.want)
		}
	}
}

func TestScheduleCountBefore(t *testing.T) {
	start := time.Unix(100, 0)
	for _, tc := range []struct {
		rate  float64
		after time.Duration
		want  int64
	}{
		{1000, 0, 0},
		{1000, -time.Second, 0},
		{1000, time.Nanosecond, 1},     // request 0 is due at the start
		{1000, time.Millisecond, 1},    // request 1 is due exactly then: not before
		{1000, time.Second, 1000},      // 0..999
		{1000, time.Second + 1, 1001},  // and 1000
		{3, time.Second, 3},            // 0, 1/3, 2/3
		{7919, 3 * time.Second, 23757}, // a rate that does not divide a second
	} {
		s := Schedule{Start: start, RatePerSec: tc.rate}
		got := s.CountBefore(start.Add(tc.after))
		if got != tc.want {
			t.Errorf("rate %v: CountBefore(+%v) = %d, want %d", tc.rate, tc.after, got, tc.want)
		}
		// Consistent with At: request got-1 is before, request got is not.
		if got > 0 && !s.At(got-1).Before(start.Add(tc.after)) {
			t.Errorf("rate %v: request %d is not before +%v", tc.rate, got-1, tc.after)
		}
		if s.At(got).Before(start.Add(tc.after)) {
			t.Errorf("rate %v: request %d is before +%v but not counted", tc.rate, got, tc.after)
		}
	}
}

func TestOpenLoopTiming(t *testing.T) {
	due := time.Unix(10, 0)
	lat, lag := openLoopTiming(due, due.Add(5*time.Millisecond), due.Add(7*time.Millisecond))
	if lat != 7*time.Millisecond || lag != 5*time.Millisecond {
		t.Fatalf("latency %v lag %v, want 7ms 5ms (latency counts from the due time)", lat, lag)
	}
	// A send that is early (clock granularity) never has a negative lag.
	if _, lag := openLoopTiming(due, due.Add(-time.Microsecond), due.Add(time.Millisecond)); lag != 0 {
		t.Fatalf("lag %v, want 0", lag)
	}
}

// stallingOp takes service time per request, except the stallAt-th
// measured request, which takes stall.
func stallingOp(clock *fakeClock, service, stall time.Duration, stallAt int) Op {
	n := 0
	return func(warm bool) (OpKind, api.Result) {
		if !warm {
			n++
		}
		if !warm && n == stallAt {
			clock.advance(stall)
		} else {
			clock.advance(service)
		}
		return OpPurchase, api.Result{Status: 201}
	}
}

// TestOpenLoopCountsTheStall is the coordinated-omission check: one 200 ms
// stall at 1,000 req/s delays the ~200 requests due during it, and the
// open loop charges each of them its wait.
func TestOpenLoopCountsTheStall(t *testing.T) {
	clock := newFakeClock()
	cfg := LoadConfig{RatePerSec: 1000, MaxInFlight: 1, Warmup: 100 * time.Millisecond, Duration: time.Second, MaxRequests: 1 << 30}
	l := NewLoad(cfg, clock)
	st := l.Run(context.Background(), func(int) Op { return stallingOp(clock, 100*time.Microsecond, 200*time.Millisecond, 101) })
	tot := l.Rec.Totals()
	if tot.Requests != 1000 {
		t.Fatalf("measured %d requests, want 1000 (warm-up excluded, every due request sent)", tot.Requests)
	}
	if st.StoppedBy != "duration" {
		t.Errorf("stopped by %q, want duration", st.StoppedBy)
	}
	p := Summarize(tot.All)
	if p.P50Ms > 0.2 {
		t.Errorf("p50 %.3f ms, want the 0.1 ms service time", p.P50Ms)
	}
	if p.MaxMs < 199 || p.MaxMs > 201 {
		t.Errorf("max %.3f ms, want the 200 ms stall", p.MaxMs)
	}
	// ~200 of 1,000 requests waited behind the stall: p85 is well above
	// the service time, p90 around 100 ms (linearly decreasing waits).
	if v := float64(tot.All.ValueAtQuantile(85)) / 1000; v < 20 {
		t.Errorf("p85 %.3f ms: the requests queued behind the stall were not charged their wait", v)
	}
	// Late: the 200 requests due during the stall, and the ones after it
	// until the backlog drains at 0.9 ms per request: ~222.
	if tot.LateSends < 215 || tot.LateSends > 225 {
		t.Errorf("late sends %d, want ~222", tot.LateSends)
	}
	if tot.MaxSendLag < 199*time.Millisecond {
		t.Errorf("max send lag %v, want ~200ms", tot.MaxSendLag)
	}
}

// TestClosedLoopHidesTheStall shows why the open loop exists: the same
// stall in a closed loop costs one slow request and fewer requests sent.
func TestClosedLoopHidesTheStall(t *testing.T) {
	clock := newFakeClock()
	cfg := LoadConfig{Clients: 1, Duration: time.Second, MaxRequests: 1000}
	l := NewLoad(cfg, clock)
	st := l.Run(context.Background(), func(int) Op { return stallingOp(clock, 100*time.Microsecond, 200*time.Millisecond, 101) })
	tot := l.Rec.Totals()
	if tot.Requests != 1000 || st.StoppedBy != "requests" {
		t.Fatalf("measured %d requests, stopped by %s; want 1000 by requests", tot.Requests, st.StoppedBy)
	}
	if v := float64(tot.All.ValueAtQuantile(99)) / 1000; v > 0.2 {
		t.Errorf("closed-loop p99 %.3f ms, want the service time: only one request saw the stall", v)
	}
	if want := 200*time.Millisecond + 999*100*time.Microsecond; st.Elapsed != want {
		t.Errorf("elapsed %v, want %v", st.Elapsed, want)
	}
}

func TestOpenLoopStopsAtMaxRequests(t *testing.T) {
	clock := newFakeClock()
	cfg := LoadConfig{RatePerSec: 100, MaxInFlight: 1, Warmup: time.Second, Duration: time.Hour, MaxRequests: 50}
	l := NewLoad(cfg, clock)
	var warm, measured int
	st := l.Run(context.Background(), func(int) Op {
		return func(w bool) (OpKind, api.Result) {
			if w {
				warm++
			} else {
				measured++
			}
			clock.advance(time.Millisecond)
			return OpRead, api.Result{Status: 200}
		}
	})
	if warm != 100 || measured != 50 {
		t.Fatalf("warm %d measured %d, want 100 and 50", warm, measured)
	}
	if got := l.Rec.Totals().Requests; got != 50 || st.StoppedBy != "requests" {
		t.Fatalf("recorded %d, stopped by %s", got, st.StoppedBy)
	}
	// The last measured request was due at 1s + 49/100 s and took 1 ms.
	if want := 491 * time.Millisecond; st.Elapsed != want {
		t.Fatalf("elapsed %v, want %v", st.Elapsed, want)
	}
}

func TestLoadStopsWhenCancelled(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	l := NewLoad(LoadConfig{Clients: 1, Duration: time.Hour, MaxRequests: 1 << 40}, clock)
	n := 0
	st := l.Run(ctx, func(int) Op {
		return func(bool) (OpKind, api.Result) {
			if n++; n == 10 {
				cancel()
			}
			clock.advance(time.Millisecond)
			return OpRead, api.Result{Status: 200}
		}
	})
	if st.StoppedBy != "cancelled" {
		t.Fatalf("stopped by %q", st.StoppedBy)
	}
	if n != 10 {
		t.Fatalf("%d requests, want 10: none after the cancel", n)
	}
}

func TestLoadConfigValidate(t *testing.T) {
	ok := LoadConfig{Clients: 1, Duration: time.Second, MaxRequests: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*LoadConfig){
		"no duration":      func(c *LoadConfig) { c.Duration = 0 },
		"no request bound": func(c *LoadConfig) { c.MaxRequests = 0 },
		"no clients":       func(c *LoadConfig) { c.Clients = 0 },
		"open no inflight": func(c *LoadConfig) { c.RatePerSec = 10; c.MaxInFlight = 0 },
		"negative warm-up": func(c *LoadConfig) { c.Warmup = -1 },
		"a day and more":   func(c *LoadConfig) { c.Duration = 25 * time.Hour },
	} {
		c := ok
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
