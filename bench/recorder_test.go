package bench

import (
	"math"
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// within reports whether got is within HDR's precision (3 significant
// digits, so 0.1%) of want, plus one bucket of slack.
func within(got, want float64) bool {
	return math.Abs(got-want) <= want*0.002+0.001
}

func TestSummarizeUniform(t *testing.T) {
	h := newHist()
	for us := int64(1); us <= 10_000; us++ { // 1 µs .. 10 ms, one each
		recordLatency(h, time.Duration(us)*time.Microsecond)
	}
	p := Summarize(h)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", p.P50Ms, 5},
		{"p90", p.P90Ms, 9},
		{"p99", p.P99Ms, 9.9},
		{"p99.9", p.P999Ms, 9.99},
		{"max", p.MaxMs, 10},
		{"mean", p.MeanMs, 5.0005},
	} {
		if !within(c.got, c.want) {
			t.Errorf("%s = %v ms, want %v", c.name, c.got, c.want)
		}
	}
	if p.Count != 10_000 {
		t.Errorf("count %d", p.Count)
	}
}

func TestSummarizeTail(t *testing.T) {
	// 9,990 fast requests and 10 slow ones: p99 is fast, p99.9 is not.
	h := newHist()
	for range 9_990 {
		recordLatency(h, 200*time.Microsecond)
	}
	for range 10 {
		recordLatency(h, 2*time.Second)
	}
	p := Summarize(h)
	if !within(p.P99Ms, 0.2) {
		t.Errorf("p99 %v ms, want 0.2", p.P99Ms)
	}
	if !within(p.P999Ms, 0.2) {
		t.Errorf("p99.9 %v ms, want 0.2 (the 9,990th of 10,000)", p.P999Ms)
	}
	if !within(p.MaxMs, 2000) {
		t.Errorf("max %v ms, want 2000", p.MaxMs)
	}
	recordLatency(h, 2*time.Second) // now 11 slow of 10,001: p99.9 is slow
	if p := Summarize(h); !within(p.P999Ms, 2000) {
		t.Errorf("p99.9 %v ms, want 2000", p.P999Ms)
	}
}

func TestRecordLatencyClamps(t *testing.T) {
	h := newHist()
	recordLatency(h, 0)
	recordLatency(h, -time.Second)
	recordLatency(h, time.Hour) // beyond 100 s
	if h.TotalCount() != 3 {
		t.Fatalf("count %d, want 3: out-of-range values must be clamped, not dropped", h.TotalCount())
	}
	if h.Min() != histMinUs {
		t.Errorf("min %d", h.Min())
	}
	if got := h.Max(); !within(float64(got), histMaxUs) {
		t.Errorf("max %d, want ~%d", got, histMaxUs)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	if p := Summarize(newHist()); p != (Percentiles{}) {
		t.Fatalf("%+v", p)
	}
	if c := curveOf(newHist()); len(c.Percentile) != 0 {
		t.Fatalf("%+v", c)
	}
}

func TestCurveIsMonotonic(t *testing.T) {
	h := newHist()
	for i := range 5000 {
		recordLatency(h, time.Duration(i*i)*time.Nanosecond+time.Microsecond)
	}
	c := curveOf(h)
	for i := 1; i < len(c.LatencyMs); i++ {
		if c.LatencyMs[i] < c.LatencyMs[i-1] || c.Percentile[i] <= c.Percentile[i-1] {
			t.Fatalf("curve not monotonic at %d: %+v", i, c)
		}
	}
}

func TestRecorderCountsAndCodes(t *testing.T) {
	start := time.Unix(1000, 0)
	r := NewRecorder(3, start)
	ok := api.Result{Status: 201}
	soldOut := api.Result{Status: 409, Code: api.CodeSoldOut}
	limit := api.Result{Status: 409, Code: api.CodeLimitExceeded}
	overloaded := api.Result{Status: 429, Code: api.CodeOverloaded}
	timeout := api.Result{Code: api.CodeTimeout}
	conflict := api.Result{Status: 409, Code: "stock_below_sold"} // a 409 that is not the buyer's business
	replay := api.Result{Status: 200}
	for w, res := range []api.Result{ok, ok, soldOut, soldOut, soldOut, limit, overloaded, timeout, conflict, replay} {
		r.Record(w, OpPurchase, start.Add(time.Duration(10-w)*time.Second), time.Millisecond, 0, &res)
	}
	read := api.Result{Status: 200}
	r.Record(0, OpRead, start, time.Millisecond, 2*time.Millisecond, &read)
	tot := r.Totals()
	// A replay (200) is a purchase answer but not a new order; a read's
	// 200 is neither. Refusals are business answers but no purchase.
	want := Counts{Requests: 11, Business: 8, Purchases: 3, Created: 2, Rejected: 4, Errors: 3, LateSends: 1}
	if tot.Counts != want {
		t.Fatalf("counts %+v, want %+v", tot.Counts, want)
	}
	wantCodes := map[StatusCode]int64{
		{Status: 0, Code: api.CodeTimeout}:         1,
		{Status: 200}:                              2,
		{Status: 201}:                              2,
		{Status: 409, Code: api.CodeLimitExceeded}: 1,
		{Status: 409, Code: api.CodeSoldOut}:       3,
		{Status: 409, Code: "stock_below_sold"}:    1,
		{Status: 429, Code: api.CodeOverloaded}:    1,
	}
	if len(tot.Codes) != len(wantCodes) {
		t.Fatalf("codes %+v", tot.Codes)
	}
	for i, c := range tot.Codes {
		if wantCodes[c.StatusCode] != c.Count {
			t.Errorf("%+v: %d, want %d", c.StatusCode, c.Count, wantCodes[c.StatusCode])
		}
		if i > 0 && tot.Codes[i-1].Status > c.Status {
			t.Errorf("codes not sorted: %+v", tot.Codes)
		}
	}
	// Workers 2, 3, 4 got sold_out, started at +8s, +7s, +6s: the first is +6s.
	if tot.FirstSoldOut != 6*time.Second {
		t.Errorf("first sold out at %v, want 6s", tot.FirstSoldOut)
	}
	if tot.ByOp["purchase"].TotalCount() != 10 || tot.ByOp["read"].TotalCount() != 1 {
		t.Errorf("by op: purchase %d read %d", tot.ByOp["purchase"].TotalCount(), tot.ByOp["read"].TotalCount())
	}
	if tot.MaxSendLag != 2*time.Millisecond {
		t.Errorf("max send lag %v", tot.MaxSendLag)
	}
	// Business answers and 429s are also kept apart, for overload figures.
	if tot.BusinessLatency.TotalCount() != 8 || tot.ShedLatency.TotalCount() != 1 {
		t.Errorf("business %d, shed %d", tot.BusinessLatency.TotalCount(), tot.ShedLatency.TotalCount())
	}
	if tot.BusinessSent.TotalCount() != 8 || tot.ShedSent.TotalCount() != 1 {
		t.Errorf("from send: business %d, shed %d", tot.BusinessSent.TotalCount(), tot.ShedSent.TotalCount())
	}
}

func TestRecorderIntervals(t *testing.T) {
	r := NewRecorder(2, time.Unix(0, 0))
	ok := api.Result{Status: 201}
	for w := range 4 {
		r.Record(w, OpPurchase, time.Unix(1, 0), time.Duration(w+1)*time.Millisecond, 0, &ok)
	}
	iv := r.TakeInterval()
	if iv.Requests != 4 || iv.Purchases != 4 || !within(iv.Latency.MaxMs, 4) {
		t.Fatalf("first interval %+v", iv)
	}
	if iv := r.TakeInterval(); iv.Requests != 0 || iv.Latency.Count != 0 {
		t.Fatalf("second interval not reset: %+v", iv)
	}
	// Warm-up requests show in the interval's Warm counts only.
	soldOut := api.Result{Status: 409, Code: api.CodeSoldOut}
	r.RecordWarm(1, OpPurchase, &ok)
	r.RecordWarm(1, OpPurchase, &soldOut)
	if iv := r.TakeInterval(); iv.Requests != 0 || iv.Warm != (Counts{Requests: 2, Business: 2, Purchases: 1, Created: 1, Rejected: 1}) {
		t.Fatalf("warm interval %+v", iv)
	}
	if iv := r.TakeInterval(); iv.Warm.Requests != 0 {
		t.Fatalf("warm counts not reset: %+v", iv.Warm)
	}
	r.Record(0, OpPurchase, time.Unix(2, 0), 9*time.Millisecond, 0, &ok)
	if iv := r.TakeInterval(); iv.Requests != 1 || !within(iv.Latency.P50Ms, 9) {
		t.Fatalf("third interval %+v", iv)
	}
	if tot := r.Totals(); tot.Requests != 5 || tot.All.TotalCount() != 5 {
		t.Fatalf("totals must not be reset by intervals: %+v", tot.Counts)
	}
}

// TestRecorderLatencyFromSend: an open-loop request scheduled 10 ms before
// its answer but sent 8 ms late took the server 2 ms.
func TestRecorderLatencyFromSend(t *testing.T) {
	r := NewRecorder(1, time.Unix(0, 0))
	ok := api.Result{Status: 201}
	shed := api.Result{Status: 429, Code: api.CodeOverloaded}
	r.Record(0, OpPurchase, time.Unix(1, 0), 10*time.Millisecond, 8*time.Millisecond, &ok)
	r.Record(0, OpPurchase, time.Unix(1, 0), 9*time.Millisecond, 8*time.Millisecond, &shed)
	tot := r.Totals()
	if got := Summarize(tot.BusinessSent).MaxMs; !within(got, 2) {
		t.Errorf("business from send %v ms, want 2", got)
	}
	if got := Summarize(tot.ShedSent).MaxMs; !within(got, 1) {
		t.Errorf("shed from send %v ms, want 1", got)
	}
	if got := Summarize(tot.BusinessLatency).MaxMs; !within(got, 10) {
		t.Errorf("business from schedule %v ms, want 10", got)
	}
}
