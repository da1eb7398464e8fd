package bench

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

// OpKind is what one request of a scenario did.
type OpKind uint8

// Operation kinds a scenario issues.
const (
	OpPurchase OpKind = iota
	OpPay             // signed payment webhook
	OpCancel
	OpRead      // public availability read
	OpCheckIn   // a ticket scanned at the door
	OpQueueJoin // a buyer joining a sale's waiting room
	opKinds
)

var opNames = [opKinds]string{"purchase", "pay", "cancel", "read", "checkin", "queue_join"}

func (k OpKind) String() string { return opNames[k] }

// Histogram range: 1 µs to 100 s with 3 significant digits, in
// microseconds. Values outside are clamped, never dropped.
const (
	histMinUs   = 1
	histMaxUs   = 100_000_000
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUs, histMaxUs, histSigFigs)
}

// recordLatency adds d to h, clamped into the histogram's range.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMinUs {
		us = histMinUs
	}
	if us > histMaxUs {
		us = histMaxUs
	}
	_ = h.RecordValue(us) // in range by construction
}

// Percentiles summarises one latency histogram, in milliseconds.
type Percentiles struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summarize reads the standard percentiles off h.
func Summarize(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  ms(h.ValueAtQuantile(50)),
		P90Ms:  ms(h.ValueAtQuantile(90)),
		P99Ms:  ms(h.ValueAtQuantile(99)),
		P999Ms: ms(h.ValueAtQuantile(99.9)),
		MaxMs:  ms(h.Max()),
	}
}

// PercentileCurve is the latency at increasing percentiles (the classic
// HdrHistogram plot), for the latency chart.
type PercentileCurve struct {
	Percentile []float64 `json:"percentile"`
	LatencyMs  []float64 `json:"latency_ms"`
}

var curvePercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

func curveOf(h *hdrhistogram.Histogram) PercentileCurve {
	var c PercentileCurve
	if h.TotalCount() == 0 {
		return c
	}
	for _, p := range curvePercentiles {
		c.Percentile = append(c.Percentile, p)
		c.LatencyMs = append(c.LatencyMs, float64(h.ValueAtQuantile(p))/1000)
	}
	return c
}

// StatusCode is one kind of answer: an HTTP status and the problem code
// (Status 0: no answer, Code says why).
type StatusCode struct {
	Status int    `json:"status"`
	Code   string `json:"code,omitempty"`
}

// StatusCount counts one StatusCode.
type StatusCount struct {
	StatusCode
	Count int64 `json:"count"`
}

// Counts are the request counters of a recorder or of one interval.
type Counts struct {
	Requests  int64 // measured requests answered or failed
	Business  int64 // definitive business outcomes (2xx, 409 sold_out/...)
	Purchases int64 // 2xx purchases (201 new, 200 replay)
	Created   int64 // 201 purchases: new orders, each durable before its answer
	Rejected  int64 // business refusals (409 sold_out, limit_exceeded, already_checked_in, ...): no order
	Admitted  int64 // 2xx check-ins: tickets let in, each durable before its answer
	Errors    int64 // everything else: 4xx other than the above, 5xx, 429, no answer
	LateSends int64 // open loop: sent later than scheduled by more than lateSendThreshold
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Business += o.Business
	c.Purchases += o.Purchases
	c.Created += o.Created
	c.Rejected += o.Rejected
	c.Admitted += o.Admitted
	c.Errors += o.Errors
	c.LateSends += o.LateSends
}

// countOf classifies one answer.
func countOf(kind OpKind, res *api.Result) Counts {
	c := Counts{Requests: 1}
	switch {
	case res.OK():
		c.Business = 1
		switch kind {
		case OpPurchase:
			c.Purchases = 1
			if res.Status == fasthttp.StatusCreated {
				c.Created = 1
			}
		case OpCheckIn:
			c.Admitted = 1
		}
	case res.Business():
		c.Business, c.Rejected = 1, 1
	default:
		c.Errors = 1
	}
	return c
}

// lateSendThreshold is how far behind its schedule an open-loop send may
// start before it counts as late (the generator or the server fell behind).
const lateSendThreshold = time.Millisecond

// Recorder collects the measured requests of one run. Record is safe for
// concurrent use; each caller passes its worker id, which picks a shard.
type Recorder struct {
	shards []recShard
	start  time.Time // measurement start
}

type recShard struct {
	mu       sync.Mutex
	byOp     [opKinds]*hdrhistogram.Histogram
	all      *hdrhistogram.Histogram
	business *hdrhistogram.Histogram // definitive business answers (accepted work)
	shed     *hdrhistogram.Histogram // 429: refused at the door (overload, rate limit)
	// The same two from the actual send, not the schedule: what the server
	// (and the client's own work) took, without the generator's backlog.
	businessSent *hdrhistogram.Histogram
	shedSent     *hdrhistogram.Histogram
	interval     *hdrhistogram.Histogram
	total        Counts
	window       Counts
	warm         Counts // warm-up requests of the current interval (progress only)
	codes        map[StatusCode]int64
	sendLag      time.Duration // open loop: worst send delay behind schedule
	// firstSoldOut is the earliest start of a request answered sold_out.
	firstSoldOut time.Time
	_            [64]byte // keep shards on separate cache lines
}

// NewRecorder returns a recorder with n shards whose measurement starts at
// start.
func NewRecorder(n int, start time.Time) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{shards: make([]recShard, n), start: start}
	for i := range r.shards {
		s := &r.shards[i]
		for k := range s.byOp {
			s.byOp[k] = newHist()
		}
		s.all = newHist()
		s.business = newHist()
		s.shed = newHist()
		s.businessSent = newHist()
		s.shedSent = newHist()
		s.interval = newHist()
		s.codes = make(map[StatusCode]int64)
	}
	return r
}

// Record adds one request that started (closed loop: was sent; open loop:
// was scheduled) at start and took latency, measured from start.
// sendLag is how late an open-loop request was sent (0 in a closed loop).
func (r *Recorder) Record(worker int, kind OpKind, start time.Time, latency, sendLag time.Duration, res *api.Result) {
	s := &r.shards[worker%len(r.shards)]
	s.mu.Lock()
	recordLatency(s.byOp[kind], latency)
	recordLatency(s.all, latency)
	recordLatency(s.interval, latency)
	c := countOf(kind, res)
	switch {
	case c.Business == 1:
		recordLatency(s.business, latency)
		recordLatency(s.businessSent, latency-sendLag)
	case res.Status == fasthttp.StatusTooManyRequests:
		recordLatency(s.shed, latency)
		recordLatency(s.shedSent, latency-sendLag)
	}
	if sendLag > lateSendThreshold {
		c.LateSends = 1
	}
	if sendLag > s.sendLag {
		s.sendLag = sendLag
	}
	s.total.add(c)
	s.window.add(c)
	if !res.OK() {
		s.codes[StatusCode{res.Status, res.Code}]++
		if res.Code == api.CodeSoldOut && (s.firstSoldOut.IsZero() || start.Before(s.firstSoldOut)) {
			s.firstSoldOut = start
		}
	} else {
		s.codes[StatusCode{Status: res.Status}]++
	}
	s.mu.Unlock()
}

// RecordWarm counts one warm-up request for the progress lines; the
// results never see it.
func (r *Recorder) RecordWarm(worker int, kind OpKind, res *api.Result) {
	s := &r.shards[worker%len(r.shards)]
	c := countOf(kind, res)
	s.mu.Lock()
	s.warm.add(c)
	s.mu.Unlock()
}

// Interval is what happened since the previous call to TakeInterval.
type Interval struct {
	Counts
	Latency Percentiles
	Warm    Counts // warm-up requests
}

// TakeInterval returns and resets the per-interval counters and histogram.
func (r *Recorder) TakeInterval() Interval {
	merged := newHist()
	var iv Interval
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		merged.Merge(s.interval)
		s.interval.Reset()
		iv.Counts.add(s.window)
		s.window = Counts{}
		iv.Warm.add(s.warm)
		s.warm = Counts{}
		s.mu.Unlock()
	}
	iv.Latency = Summarize(merged)
	return iv
}

// Totals is the merged result of a recorder.
type Totals struct {
	Counts
	All             *hdrhistogram.Histogram
	BusinessLatency *hdrhistogram.Histogram // latency of definitive business answers
	ShedLatency     *hdrhistogram.Histogram // latency of 429 answers
	BusinessSent    *hdrhistogram.Histogram // the same two, from the actual send
	ShedSent        *hdrhistogram.Histogram
	ByOp            map[string]*hdrhistogram.Histogram
	Codes           []StatusCount
	MaxSendLag      time.Duration
	FirstSoldOut    time.Duration // since measurement start; -1 if never
}

// Totals merges all shards. Call it after the load has stopped.
func (r *Recorder) Totals() Totals {
	t := Totals{All: newHist(), BusinessLatency: newHist(), ShedLatency: newHist(),
		BusinessSent: newHist(), ShedSent: newHist(), ByOp: map[string]*hdrhistogram.Histogram{}, FirstSoldOut: -1}
	codes := map[StatusCode]int64{}
	var first time.Time
	for k := OpKind(0); k < opKinds; k++ {
		t.ByOp[k.String()] = newHist()
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		t.All.Merge(s.all)
		t.BusinessLatency.Merge(s.business)
		t.ShedLatency.Merge(s.shed)
		t.BusinessSent.Merge(s.businessSent)
		t.ShedSent.Merge(s.shedSent)
		for k := range s.byOp {
			t.ByOp[OpKind(k).String()].Merge(s.byOp[k])
		}
		t.Counts.add(s.total)
		for sc, n := range s.codes {
			codes[sc] += n
		}
		if s.sendLag > t.MaxSendLag {
			t.MaxSendLag = s.sendLag
		}
		if !s.firstSoldOut.IsZero() && (first.IsZero() || s.firstSoldOut.Before(first)) {
			first = s.firstSoldOut
		}
		s.mu.Unlock()
	}
	if !first.IsZero() {
		t.FirstSoldOut = max(first.Sub(r.start), 0)
	}
	for sc, n := range codes {
		t.Codes = append(t.Codes, StatusCount{sc, n})
	}
	sort.Slice(t.Codes, func(i, j int) bool {
		a, b := t.Codes[i], t.Codes[j]
		if a.Status != b.Status {
			return a.Status < b.Status
		}
		return a.Code < b.Code
	})
	return t
}
