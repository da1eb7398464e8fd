package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// Op performs one request for one worker and says what it was. warm marks
// a request of the warm-up, which the scenario may send elsewhere and the
// recorder ignores. An Op is used by one goroutine only.
type Op func(warm bool) (OpKind, api.Result)

// LoadConfig bounds a load run. Both Duration and MaxRequests always apply.
type LoadConfig struct {
	Clients     int           // closed loop: concurrent clients, each waits for its answer
	RatePerSec  float64       // open loop when > 0: fixed arrival rate
	MaxInFlight int           // open loop: senders, so requests in flight at most
	Warmup      time.Duration // not measured
	Duration    time.Duration // measured
	MaxRequests int64         // measured requests at most
}

// Validate refuses a run that is not bounded.
func (c *LoadConfig) Validate() error {
	switch {
	case c.Duration <= 0:
		return errors.New("bench: duration must be > 0")
	case c.Duration > 24*time.Hour:
		return errors.New("bench: duration must be <= 24h")
	case c.Warmup < 0:
		return errors.New("bench: warm-up must be >= 0")
	case c.MaxRequests <= 0:
		return errors.New("bench: max requests must be > 0")
	case c.RatePerSec < 0:
		return errors.New("bench: rate must be >= 0")
	case c.RatePerSec > 0 && c.MaxInFlight <= 0:
		return errors.New("bench: open loop needs max in-flight > 0")
	case c.RatePerSec > 1e7:
		return errors.New("bench: rate must be <= 10M/s")
	case c.RatePerSec == 0 && c.Clients <= 0:
		return errors.New("bench: closed loop needs clients > 0")
	}
	return nil
}

// OpenLoop reports whether the run keeps a fixed arrival rate.
func (c *LoadConfig) OpenLoop() bool { return c.RatePerSec > 0 }

// Workers is the number of goroutines that send.
func (c *LoadConfig) Workers() int {
	if c.OpenLoop() {
		return c.MaxInFlight
	}
	return c.Clients
}

// Load is one bounded run of a load model against one system.
type Load struct {
	cfg          LoadConfig
	clock        Clock
	Start        time.Time // warm-up starts
	MeasureStart time.Time // measurement starts
	End          time.Time // no request starts (is due) at or after End
	Rec          *Recorder

	measured atomic.Int64 // closed loop: measured requests started
	done     <-chan struct{}
}

// stopped reports whether the run was cancelled (a non-blocking check).
func (l *Load) stopped() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// LoadStats says how a run ended.
type LoadStats struct {
	Elapsed   time.Duration // measurement start to the last measured answer
	StoppedBy string        // "duration", "requests" or "cancelled"
}

// NewLoad plans a run that starts now on clock.
func NewLoad(cfg LoadConfig, clock Clock) *Load {
	start := clock.Now()
	l := &Load{cfg: cfg, clock: clock, Start: start}
	l.MeasureStart = start.Add(cfg.Warmup)
	l.End = l.MeasureStart.Add(cfg.Duration)
	shards := min(max(cfg.Workers()/8, 1), 16)
	l.Rec = NewRecorder(shards, l.MeasureStart)
	return l
}

// Run drives the load until its bounds or ctx stop it. newOp makes each
// worker's Op.
func (l *Load) Run(ctx context.Context, newOp func(worker int) Op) LoadStats {
	l.done = ctx.Done()
	n := l.cfg.Workers()
	lastDone := make([]time.Time, n)
	var wg sync.WaitGroup
	var sched Schedule
	var warmCount int64
	var next atomic.Int64
	if l.cfg.OpenLoop() {
		sched = Schedule{Start: l.Start, RatePerSec: l.cfg.RatePerSec}
		warmCount = sched.CountBefore(l.MeasureStart)
	}
	for w := range n {
		op := newOp(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.cfg.OpenLoop() {
				lastDone[w] = l.openWorker(w, op, sched, warmCount, &next)
			} else {
				lastDone[w] = l.closedWorker(w, op)
			}
		}()
	}
	wg.Wait()
	st := LoadStats{StoppedBy: "duration"}
	for _, t := range lastDone {
		if d := t.Sub(l.MeasureStart); d > st.Elapsed {
			st.Elapsed = d
		}
	}
	switch {
	case ctx.Err() != nil:
		st.StoppedBy = "cancelled"
	case l.Rec.Totals().Requests >= l.cfg.MaxRequests:
		st.StoppedBy = "requests"
	}
	return st
}

// closedWorker sends, waits for the answer, and sends again. Latency runs
// from the send.
func (l *Load) closedWorker(w int, op Op) (lastDone time.Time) {
	for !l.stopped() {
		t0 := l.clock.Now()
		if !t0.Before(l.End) {
			return lastDone
		}
		warm := t0.Before(l.MeasureStart)
		if !warm && l.measured.Add(1) > l.cfg.MaxRequests {
			return lastDone
		}
		kind, res := op(warm)
		done := l.clock.Now()
		if warm {
			l.Rec.RecordWarm(w, kind, &res)
		} else {
			l.Rec.Record(w, kind, t0, done.Sub(t0), 0, &res)
			lastDone = done
		}
	}
	return lastDone
}

// openWorker takes the next due request off the shared schedule, waits for
// its due time, sends it and records the latency from the due time. When
// every worker is busy, due requests wait, and that wait counts.
func (l *Load) openWorker(w int, op Op, sched Schedule, warmCount int64, next *atomic.Int64) (lastDone time.Time) {
	for !l.stopped() {
		i := next.Add(1) - 1
		if i-warmCount >= l.cfg.MaxRequests {
			return lastDone
		}
		due := sched.At(i)
		if !due.Before(l.End) {
			return lastDone
		}
		l.clock.SleepUntil(due)
		if l.stopped() {
			return lastDone
		}
		warm := i < warmCount
		sent := l.clock.Now()
		kind, res := op(warm)
		done := l.clock.Now()
		if warm {
			l.Rec.RecordWarm(w, kind, &res)
		} else {
			lat, lag := openLoopTiming(due, sent, done)
			l.Rec.Record(w, kind, due, lat, lag, &res)
			lastDone = done
		}
	}
	return lastDone
}
