package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// sampler takes one Sample per interval of the measured phase and writes
// one progress line per interval of the warm-up and the measured phase, so
// that a long run shows how it goes while it goes. Its ticks fall at the
// warm-up's start plus whole intervals, then exactly at the measurement
// start and whole intervals after it, so that no tick mixes the two
// phases.
type sampler struct {
	load     *Load
	name     string
	interval time.Duration
	out      io.Writer            // progress lines; nil writes none
	usage    func() treeUsage     // the server's processes; nil when unknown
	dataDirs func() []string      // the server's data, for the disk figure; may be nil
	genCPU   func() time.Duration // the generator's CPU time so far
	checkIns bool                 // door: the line counts check-ins, not purchases
	samples  []Sample
	last     cpuReading // at the previous tick
	quit     chan struct{}
	done     chan struct{}
}

func newSampler(l *Load, name string, interval time.Duration, out io.Writer, usage func() treeUsage, dataDirs func() []string) *sampler {
	s := &sampler{load: l, name: name, interval: interval, out: out, usage: usage, dataDirs: dataDirs,
		genCPU: selfCPU, quit: make(chan struct{}), done: make(chan struct{})}
	s.last = s.read(l.Start)
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	for {
		next := s.nextTick(s.last.at)
		t := time.NewTimer(time.Until(next))
		select {
		case <-s.quit:
			t.Stop()
			return
		case <-t.C:
			s.tick(time.Now())
		}
	}
}

// nextTick is the tick after one at prev.
func (s *sampler) nextTick(prev time.Time) time.Time {
	l := s.load
	if prev.Before(l.MeasureStart) {
		if next := prev.Add(s.interval); next.Before(l.MeasureStart) {
			return next
		}
		return l.MeasureStart
	}
	return prev.Add(s.interval)
}

// stop ends the sampling with a last, partial interval if it is long
// enough to mean something, and returns the samples.
func (s *sampler) stop() []Sample {
	close(s.quit)
	<-s.done
	if now := time.Now(); now.After(s.load.MeasureStart) && now.Sub(s.last.at) > s.interval/10 {
		s.tick(now)
	}
	return s.samples
}

func (s *sampler) read(now time.Time) cpuReading {
	r := cpuReading{at: now, generator: s.genCPU()}
	if s.usage != nil {
		r.server = s.usage().cpu
	}
	return r
}

// tick closes the interval that ends at now: a progress line, and in the
// measured phase a Sample.
func (s *sampler) tick(now time.Time) {
	iv := s.load.Rec.TakeInterval()
	prev := s.last
	cur := cpuReading{at: now, generator: s.genCPU()}
	var mem int64
	if s.usage != nil {
		u := s.usage()
		cur.server, mem = u.cpu, u.memBytes
	}
	s.last = cur
	secs := now.Sub(prev.at).Seconds()
	if secs <= 0 {
		return
	}
	serverCores, genCores := prev.cores(cur)
	if s.usage == nil {
		serverCores = -1
	}
	if prev.at.Before(s.load.MeasureStart) {
		s.line("warm-up", now.Sub(s.load.Start), s.load.MeasureStart.Sub(s.load.Start), iv.Warm, secs, nil, serverCores, genCores)
		return
	}
	var disk int64
	if s.dataDirs != nil {
		disk = dirBytes(s.dataDirs())
	}
	s.samples = append(s.samples, Sample{
		AtS:              now.Sub(s.load.MeasureStart).Seconds(),
		RequestsPerSec:   float64(iv.Requests) / secs,
		GoodputPerSec:    float64(iv.Business) / secs,
		PurchasesPerSec:  float64(iv.Created) / secs,
		RejectionsPerSec: float64(iv.Rejected) / secs,
		AdmittedPerSec:   float64(iv.Admitted) / secs,
		ErrorsPerSec:     float64(iv.Errors) / secs,
		P50Ms:            iv.Latency.P50Ms,
		P99Ms:            iv.Latency.P99Ms,
		MaxMs:            iv.Latency.MaxMs,
		ServerCores:      max(serverCores, 0),
		GeneratorCores:   genCores,
		RSSBytes:         mem,
		DiskBytes:        disk,
	})
	s.line("measure", now.Sub(s.load.MeasureStart), s.load.End.Sub(s.load.MeasureStart), iv.Counts, secs, &iv.Latency, serverCores, genCores)
}

// line writes one progress line. serverCores < 0 means unknown.
func (s *sampler) line(phase string, at, of time.Duration, c Counts, secs float64, lat *Percentiles, serverCores, genCores float64) {
	if s.out == nil {
		return
	}
	var b strings.Builder
	what, made := "purchases", c.Created
	if s.checkIns {
		what, made = "check-ins", c.Admitted
	}
	fmt.Fprintf(&b, "%-14s %-7s %5s/%-5s %8.0f req/s  %s %7.0f/s  rejected %7.0f/s  errors %6.0f/s",
		s.name, phase, roundSecs(at), roundSecs(of), float64(c.Requests)/secs, what, float64(made)/secs,
		float64(c.Rejected)/secs, float64(c.Errors)/secs)
	if lat != nil {
		fmt.Fprintf(&b, "  p50 %6.2f ms  p99 %7.2f ms", lat.P50Ms, lat.P99Ms)
	}
	if serverCores >= 0 {
		fmt.Fprintf(&b, "  server %.2f cores", serverCores)
	}
	fmt.Fprintf(&b, "  generator %.2f cores\n", genCores)
	io.WriteString(s.out, b.String())
}

func roundSecs(d time.Duration) string {
	return fmt.Sprintf("%.0fs", d.Seconds())
}
