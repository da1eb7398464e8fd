package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// sampleExposition is /metrics of an onsale build before the dashboards
// release, with VictoriaMetrics histograms (vmrange buckets) and other
// families around the stage histograms.
const sampleExposition = `# HELP go_goroutines
go_goroutines 42
onsale_http_requests_total{route="purchase",status="201"} 300
onsale_stage_seconds_bucket{stage="decide",vmrange="1.000e-06...1.136e-06"} 60
onsale_stage_seconds_bucket{stage="decide",vmrange="1.000e-05...1.136e-05"} 40
onsale_stage_seconds_sum{stage="decide"} 0.000502
onsale_stage_seconds_count{stage="decide"} 100
onsale_stage_seconds_bucket{stage="sync_wait",vmrange="5.995e-04...6.813e-04"} 98
onsale_stage_seconds_bucket{stage="sync_wait",vmrange="1.000e+18...+Inf"} 2
onsale_stage_seconds_sum{stage="sync_wait"} 2e+18
onsale_stage_seconds_count{stage="sync_wait"} 100
process_cpu_seconds_total 1.5
`

func TestParseStagesSample(t *testing.T) {
	got, err := parseStages([]byte(sampleExposition))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["decide"] == nil || got["sync_wait"] == nil {
		t.Fatalf("stages %v", got)
	}
	d := got["decide"]
	if d.count != 100 || d.sum != 0.000502 || len(d.ranges) != 2 || d.ranges["1.000e-05...1.136e-05"] != 40 {
		t.Fatalf("decide %+v", d)
	}
	// 60 values in the first bucket, 40 in the second: p50 is inside the
	// first (5/6 of the way), p99 inside the second.
	if q := d.quantile(0.5); !near(q, 1e-6+0.136e-6*50/60, 1e-9) {
		t.Errorf("decide p50 %g", q)
	}
	if q := d.quantile(0.99); q < 1e-5 || q > 1.136e-5 {
		t.Errorf("decide p99 %g, want in [1e-5, 1.136e-5]", q)
	}
	// The open top bucket answers its lower bound, not infinity.
	if q := got["sync_wait"].quantile(0.99); q != 1e18 {
		t.Errorf("sync_wait p99 %g, want the top bucket's lower bound", q)
	}
	if q := got["sync_wait"].quantile(0.5); q < 5.995e-4 || q > 6.813e-4 {
		t.Errorf("sync_wait p50 %g", q)
	}
}

func TestDiffStagesSample(t *testing.T) {
	after, err := parseStages([]byte(sampleExposition))
	if err != nil {
		t.Fatal(err)
	}
	// Before the phase, decide had 50 values in its first bucket and
	// sync_wait did not exist yet.
	before, err := parseStages([]byte(`onsale_stage_seconds_bucket{stage="decide",vmrange="1.000e-06...1.136e-06"} 50
onsale_stage_seconds_sum{stage="decide"} 0.00005
onsale_stage_seconds_count{stage="decide"} 50
`))
	if err != nil {
		t.Fatal(err)
	}
	st := diffStages(before, after)
	if len(st) != 2 || st[0].Stage != "decide" || st[1].Stage != "sync_wait" {
		t.Fatalf("stages %+v", st)
	}
	dec := st[0]
	if dec.Count != 50 || !near(dec.MeanUs, (0.000502-0.00005)/50*1e6, 1e-6) {
		t.Errorf("decide %+v", dec)
	}
	// 10 of the 50 in the first bucket, 40 in the second: p50 is in the
	// second.
	if dec.P50Us < 10 || dec.P50Us > 11.36 {
		t.Errorf("decide p50 %v µs", dec.P50Us)
	}
	if st[1].Count != 100 {
		t.Errorf("sync_wait %+v", st[1])
	}
	// Nothing between two equal scrapes: no stage.
	if st := diffStages(after, after); len(st) != 0 {
		t.Errorf("equal scrapes gave %+v", st)
	}
}

// TestStagesFromLibrary feeds the parser what the library itself writes,
// in both formats, so that a change of its format fails here rather than
// in a report.
func TestStagesFromLibrary(t *testing.T) {
	for _, c := range []struct {
		name string
		new  func(set *metrics.Set, name string) func(float64)
		// widthMax is a bucket's width relative to its lower bound: the
		// interpolated quantile is within that of the true one.
		widthMax float64
	}{
		{"vmrange", func(set *metrics.Set, name string) func(float64) { return set.NewHistogram(name).Update }, 0.137},
		{"le", func(set *metrics.Set, name string) func(float64) {
			return set.NewPrometheusHistogramExt(name, onsaleStageBounds).Update
		}, 0.5},
	} {
		t.Run(c.name, func(t *testing.T) { testStagesFromLibrary(t, c.new, c.widthMax) })
	}
}

// onsaleStageBounds are the stage histogram's bounds in onsale (1, 1.5, 2,
// 3, 4, 6, 8 per decade, 1 µs to 10 s); the harness does not depend on
// them, any bounds work.
var onsaleStageBounds = func() []float64 {
	var out []float64
	for _, decade := range []float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1} {
		for _, m := range []float64{1, 1.5, 2, 3, 4, 6, 8} {
			out = append(out, m*decade)
		}
	}
	return append(out, 10)
}()

func testStagesFromLibrary(t *testing.T, newHist func(*metrics.Set, string) func(float64), widthMax float64) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 7))
	set := metrics.NewSet()
	decide := newHist(set, `onsale_stage_seconds{stage="decide"}`)
	sync := newHist(set, `onsale_stage_seconds{stage="sync_wait"}`)
	other := newHist(set, `onsale_stage_seconds{stage="zz_new_stage"}`)
	set.NewCounter(`onsale_purchases_total{outcome="created"}`).Add(3)
	scrape := func() stageScrape {
		var b bytes.Buffer
		set.WritePrometheus(&b)
		s, err := parseStages(b.Bytes())
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, b.String())
		}
		return s
	}
	for range 500 { // before the measured phase: must not count
		decide(1)
	}
	before := scrape()
	var dec, syn []float64
	var decSum float64
	for range 10_000 {
		v := 2e-6 + rng.Float64()*8e-6 // 2..10 µs
		decide(v)
		dec = append(dec, v)
		decSum += v
		w := 3e-4 + rng.ExpFloat64()*2e-4
		sync(w)
		syn = append(syn, w)
	}
	other(0.001)
	st := diffStages(before, scrape())
	names := make([]string, len(st))
	for i, s := range st {
		names[i] = s.Stage
	}
	if !slices.Equal(names, []string{"decide", "sync_wait", "zz_new_stage"}) {
		t.Fatalf("seed %d: stages %v", seed, names)
	}
	check := func(s StageStats, values []float64) {
		t.Helper()
		slices.Sort(values)
		if s.Count != uint64(len(values)) {
			t.Errorf("seed %d: %s count %d, want %d", seed, s.Stage, s.Count, len(values))
		}
		// The interpolated quantile is within a bucket's width.
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"p50", s.P50Us, values[len(values)/2] * 1e6},
			{"p99", s.P99Us, values[len(values)*99/100] * 1e6},
		} {
			if math.Abs(c.got-c.want) > widthMax*c.want {
				t.Errorf("seed %d: %s %s %.3f µs, want %.3f ±%.0f%%", seed, s.Stage, c.name, c.got, c.want, widthMax*100)
			}
		}
	}
	check(st[0], dec)
	check(st[1], syn)
	if !near(st[0].MeanUs, decSum/float64(len(dec))*1e6, 1e-3) {
		t.Errorf("seed %d: decide mean %v µs, want %v", seed, st[0].MeanUs, decSum/float64(len(dec))*1e6)
	}
	if st[2].Count != 1 || !near(st[2].P50Us, 1000, widthMax) {
		t.Errorf("seed %d: %+v, want one value of 1 ms", seed, st[2])
	}
}

// sampleLEExposition is /metrics with Prometheus histograms (cumulative le
// buckets), as onsale writes them since the dashboards release.
const sampleLEExposition = `# HELP onsale_stage_seconds Time a request spends in each stage.
# TYPE onsale_stage_seconds histogram
onsale_stage_seconds_bucket{stage="decide",le="1e-06"} 0
onsale_stage_seconds_bucket{stage="decide",le="2e-06"} 60
onsale_stage_seconds_bucket{stage="decide",le="4e-06"} 60
onsale_stage_seconds_bucket{stage="decide",le="8e-06"} 100
onsale_stage_seconds_bucket{stage="decide",le="+Inf"} 100
onsale_stage_seconds_sum{stage="decide"} 0.000402
onsale_stage_seconds_count{stage="decide"} 100
onsale_stage_seconds_bucket{stage="sync_wait",le="0.001"} 98
onsale_stage_seconds_bucket{stage="sync_wait",le="10"} 98
onsale_stage_seconds_bucket{stage="sync_wait",le="+Inf"} 100
onsale_stage_seconds_sum{stage="sync_wait"} 200.05
onsale_stage_seconds_count{stage="sync_wait"} 100
# HELP process_cpu_seconds_total CPU time.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
`

func TestParseStagesLE(t *testing.T) {
	got, err := parseStages([]byte(sampleLEExposition))
	if err != nil {
		t.Fatal(err)
	}
	d := got["decide"]
	if len(got) != 2 || d == nil || d.count != 100 || d.sum != 0.000402 || d.le[4e-6] != 60 || len(d.ranges) != 0 {
		t.Fatalf("stages %+v", got)
	}
	// Cumulative 0, 60, 60, 100: 60 values in (1, 2] µs, 40 in (4, 8] µs.
	// p50 is 50/60 of the way through the first; p99 39/40 through the
	// second, as histogram_quantile would say.
	if q := d.quantile(0.5); !near(q, 1e-6+1e-6*50/60, 1e-9) {
		t.Errorf("decide p50 %g", q)
	}
	if q := d.quantile(0.99); !near(q, 4e-6+4e-6*39/40, 1e-9) {
		t.Errorf("decide p99 %g", q)
	}
	// The open top bucket answers the highest finite bound.
	if q := got["sync_wait"].quantile(0.99); q != 10 {
		t.Errorf("sync_wait p99 %g, want the highest finite bound", q)
	}
	// The lowest bucket starts at 0.
	if q := got["sync_wait"].quantile(0.49); !near(q, 0.001*49/98, 1e-9) {
		t.Errorf("sync_wait p49 %g", q)
	}

	// Before the phase decide had 50 values up to 2 µs: in between, 10
	// there and 40 in (4, 8] µs.
	before, err := parseStages([]byte(`onsale_stage_seconds_bucket{stage="decide",le="1e-06"} 0
onsale_stage_seconds_bucket{stage="decide",le="2e-06"} 50
onsale_stage_seconds_bucket{stage="decide",le="4e-06"} 50
onsale_stage_seconds_bucket{stage="decide",le="8e-06"} 50
onsale_stage_seconds_bucket{stage="decide",le="+Inf"} 50
onsale_stage_seconds_sum{stage="decide"} 0.00008
onsale_stage_seconds_count{stage="decide"} 50
`))
	if err != nil {
		t.Fatal(err)
	}
	st := diffStages(before, got)
	if len(st) != 2 || st[0].Stage != "decide" || st[1].Stage != "sync_wait" {
		t.Fatalf("stages %+v", st)
	}
	dec := st[0]
	if dec.Count != 50 || !near(dec.MeanUs, (0.000402-0.00008)/50*1e6, 1e-6) {
		t.Errorf("decide %+v", dec)
	}
	// The 25th of 50 values is the 15th of the 40 in (4, 8] µs: the empty
	// buckets between keep their bounds in the difference.
	if !near(dec.P50Us, 4+4*15.0/40, 1e-6) {
		t.Errorf("decide p50 %v µs", dec.P50Us)
	}
	if st := diffStages(got, got); len(st) != 0 {
		t.Errorf("equal scrapes gave %+v", st)
	}
}

func TestParseStagesErrors(t *testing.T) {
	if s, err := parseStages([]byte("go_goroutines 3\n")); err != nil || len(s) != 0 {
		t.Fatalf("no stage metric: %v, %v", s, err)
	}
	for _, bad := range []string{
		`onsale_stage_seconds_bucket{vmrange="1.000e-06...1.136e-06"} 1`,           // no stage
		`onsale_stage_seconds_bucket{stage="x",vmrange="1.000e-06"} 1`,             // bad range
		`onsale_stage_seconds_bucket{stage="x",vmrange="1.000e-06...1.136e-06"} x`, // bad value
		`onsale_stage_seconds_count{stage="x} 1`,                                   // bad quoting
		`onsale_stage_seconds_bucket{stage="x",le="0.1.2"} 1`,                      // bad le
		`onsale_stage_seconds_bucket{stage="x"} 1`,                                 // neither
		`onsale_stage_seconds_bucket{stage="x",le="1",vmrange="1.000e-06...1.136e-06"} 1`,
		"onsale_stage_seconds_bucket{stage=\"x\",le=\"1\"} 1\nonsale_stage_seconds_bucket{stage=\"x\",vmrange=\"1.000e-06...1.136e-06\"} 1", // mixed
	} {
		if _, err := parseStages([]byte(bad + "\n")); err == nil || !strings.Contains(err.Error(), "bench:") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want)) }
