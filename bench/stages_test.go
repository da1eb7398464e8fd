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

// sampleExposition is /metrics as VictoriaMetrics/metrics writes it, with
// other families around the stage histograms.
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
	if d.count != 100 || d.sum != 0.000502 || len(d.buckets) != 2 || d.buckets["1.000e-05...1.136e-05"] != 40 {
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
// so that a change of its format fails here rather than in a report.
func TestStagesFromLibrary(t *testing.T) {
	seed := uint64(rand.Int64())
	rng := rand.New(rand.NewPCG(seed, 7))
	set := metrics.NewSet()
	decide := set.NewHistogram(`onsale_stage_seconds{stage="decide"}`)
	sync := set.NewHistogram(`onsale_stage_seconds{stage="sync_wait"}`)
	other := set.NewHistogram(`onsale_stage_seconds{stage="zz_new_stage"}`)
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
		decide.Update(1)
	}
	before := scrape()
	var dec, syn []float64
	var decSum float64
	for range 10_000 {
		v := 2e-6 + rng.Float64()*8e-6 // 2..10 µs
		decide.Update(v)
		dec = append(dec, v)
		decSum += v
		w := 3e-4 + rng.ExpFloat64()*2e-4
		sync.Update(w)
		syn = append(syn, w)
	}
	other.Update(0.001)
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
		// A bucket is 13.6 % wide: the interpolated quantile is within it.
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"p50", s.P50Us, values[len(values)/2] * 1e6},
			{"p99", s.P99Us, values[len(values)*99/100] * 1e6},
		} {
			if math.Abs(c.got-c.want) > 0.14*c.want {
				t.Errorf("seed %d: %s %s %.3f µs, want %.3f ±14%%", seed, s.Stage, c.name, c.got, c.want)
			}
		}
	}
	check(st[0], dec)
	check(st[1], syn)
	if !near(st[0].MeanUs, decSum/float64(len(dec))*1e6, 1e-3) {
		t.Errorf("seed %d: decide mean %v µs, want %v", seed, st[0].MeanUs, decSum/float64(len(dec))*1e6)
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
	} {
		if _, err := parseStages([]byte(bad + "\n")); err == nil || !strings.Contains(err.Error(), "bench:") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want)) }
