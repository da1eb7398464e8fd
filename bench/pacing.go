package bench

import (
	"math"
	"time"
)

// Clock is the load loops' only source of time, so that tests can drive
// pacing with a fake one.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at or after t (at once if t has passed).
	SleepUntil(t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// Schedule is an open loop's arrival plan: request i is due at
// Start + i/RatePerSec, whatever happened to the requests before it.
// Latency is measured from that due time, so a server stall that holds up
// the sender shows in the figures instead of thinning the load
// (coordinated omission).
type Schedule struct {
	Start      time.Time
	RatePerSec float64
}

// At is the due time of request i.
func (s Schedule) At(i int64) time.Time {
	return s.Start.Add(time.Duration(math.Round(float64(i) * 1e9 / s.RatePerSec)))
}

// CountBefore is the number of requests due strictly before t.
func (s Schedule) CountBefore(t time.Time) int64 {
	if !t.After(s.Start) {
		return 0
	}
	n := int64(math.Ceil(float64(t.Sub(s.Start)) * s.RatePerSec / 1e9))
	// Correct the float estimate against At's own rounding.
	for n > 0 && !s.At(n-1).Before(t) {
		n--
	}
	for s.At(n).Before(t) {
		n++
	}
	return n
}

// openLoopTiming is the accounting of one open-loop request: the latency
// that counts runs from the due time, and sendLag says how late the send
// itself was.
func openLoopTiming(due, sent, done time.Time) (latency, sendLag time.Duration) {
	return done.Sub(due), max(sent.Sub(due), 0)
}
