package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// stageMetric is the histogram family in onsale's /metrics that breaks a
// request's latency into stages, one series per stage label. Since the
// dashboards release onsale writes it as a Prometheus histogram, whose
// buckets are cumulative (each counts the values up to its le bound):
//
//	onsale_stage_seconds_bucket{stage="decide",le="1e-05"} 12
//	onsale_stage_seconds_bucket{stage="decide",le="+Inf"} 100
//	onsale_stage_seconds_sum{stage="decide"} 0.0123
//	onsale_stage_seconds_count{stage="decide"} 100
//
// Earlier builds, which the harness still runs for comparison, wrote a
// VictoriaMetrics histogram, whose buckets are not cumulative (each counts
// the values in its range):
//
//	onsale_stage_seconds_bucket{stage="decide",vmrange="1.000e-04...1.136e-04"} 12
//
// Both are read. The harness scrapes at the start and the end of the
// measured phase and reports what happened in between; the set of stages
// is the server's.
const stageMetric = "onsale_stage_seconds"

// stageOrder lists the stages the server is known to time, in the order a
// request meets them, so that the report reads like the request's path.
// Stages not listed follow in alphabetical order.
var stageOrder = []string{"inbox_wait", "decide", "commit_wait", "append", "sync_wait", "answer"}

// stageHistogram is one series of a stage histogram, in either format (a
// series has buckets of one format only).
type stageHistogram struct {
	ranges map[string]uint64  // VictoriaMetrics: count by vmrange
	le     map[float64]uint64 // Prometheus: cumulative count by upper bound
	sum    float64
	count  uint64
}

func newStageHistogram() *stageHistogram {
	return &stageHistogram{ranges: map[string]uint64{}, le: map[float64]uint64{}}
}

// stageScrape is the stage histograms of one scrape, by stage name.
type stageScrape map[string]*stageHistogram

// StageStats is one stage's figures over the measured phase.
type StageStats struct {
	Stage  string  `json:"stage"`
	Count  uint64  `json:"count"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
}

// parseStages reads the stage histograms out of a Prometheus text
// exposition. Other metrics are skipped; a stage line it cannot read is an
// error, so that a format change shows instead of wrong figures.
func parseStages(body []byte) (stageScrape, error) {
	out := stageScrape{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, stageMetric+"_")
		if !ok {
			continue
		}
		suffix, rest, ok := strings.Cut(rest, "{")
		if !ok || (suffix != "bucket" && suffix != "sum" && suffix != "count") {
			continue
		}
		labels, value, err := splitSeries(rest)
		if err != nil {
			return nil, fmt.Errorf("bench: cannot read %q: %w", line, err)
		}
		stage := labels["stage"]
		if stage == "" {
			return nil, fmt.Errorf("bench: no stage label in %q", line)
		}
		h := out[stage]
		if h == nil {
			h = newStageHistogram()
			out[stage] = h
		}
		switch suffix {
		case "bucket":
			if err := h.addBucket(labels, uint64(value)); err != nil {
				return nil, fmt.Errorf("bench: %q: %w", line, err)
			}
		case "sum":
			h.sum = value
		case "count":
			h.count = uint64(value)
		}
	}
	return out, sc.Err()
}

// addBucket records one _bucket line: a vmrange or an le bucket, never
// both in one series.
func (h *stageHistogram) addBucket(labels map[string]string, n uint64) error {
	vr, isVM := labels["vmrange"]
	le, isLE := labels["le"]
	switch {
	case isVM && isLE:
		return errors.New("both vmrange and le")
	case isVM:
		if _, _, err := parseVMRange(vr); err != nil {
			return err
		}
		if len(h.le) > 0 {
			return errors.New("vmrange bucket in a series with le buckets")
		}
		h.ranges[vr] += n
	case isLE:
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil || math.IsNaN(bound) {
			return fmt.Errorf("bad le %q", le)
		}
		if len(h.ranges) > 0 {
			return errors.New("le bucket in a series with vmrange buckets")
		}
		h.le[bound] = n
	default:
		return errors.New("bucket without vmrange or le")
	}
	return nil
}

// splitSeries parses `k="v",k2="v2"} value` (the part after the "{").
func splitSeries(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			s = s[1:]
			break
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, 0, errors.New("malformed labels")
		}
		v, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, 0, errors.New("malformed label value")
		}
		labels[name], _ = strconv.Unquote(v)
		s = rest[len(v):]
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, 0, errors.New("no value")
	}
	value, err := strconv.ParseFloat(f[0], 64)
	if err != nil || value < 0 || math.IsNaN(value) {
		return nil, 0, fmt.Errorf("bad value %q", f[0])
	}
	return labels, value, nil
}

// parseVMRange reads "1.000e-04...1.136e-04" (the top bucket's upper
// bound is "+Inf").
func parseVMRange(vr string) (lo, hi float64, err error) {
	a, b, ok := strings.Cut(vr, "...")
	if !ok {
		return 0, 0, fmt.Errorf("bad vmrange %q", vr)
	}
	lo, err1 := strconv.ParseFloat(a, 64)
	hi, err2 := strconv.ParseFloat(b, 64) // "+Inf" parses as +Inf
	if err1 != nil || err2 != nil || hi < lo {
		return 0, 0, fmt.Errorf("bad vmrange %q", vr)
	}
	return lo, hi, nil
}

// diffStages is what happened between two scrapes of the same server, per
// stage, in report order. A stage with no value in between is left out.
func diffStages(before, after stageScrape) []StageStats {
	var out []StageStats
	for stage, a := range after {
		b := before[stage]
		if b == nil {
			b = newStageHistogram()
		}
		d := a.minus(b)
		if d.count == 0 {
			continue
		}
		out = append(out, StageStats{
			Stage:  stage,
			Count:  d.count,
			MeanUs: max(d.sum, 0) / float64(d.count) * 1e6,
			P50Us:  d.quantile(0.50) * 1e6,
			P99Us:  d.quantile(0.99) * 1e6,
		})
	}
	slices.SortFunc(out, func(x, y StageStats) int {
		ix, iy := stageRank(x.Stage), stageRank(y.Stage)
		if ix != iy {
			return ix - iy
		}
		return strings.Compare(x.Stage, y.Stage)
	})
	return out
}

// minus is what h counted since b, an earlier scrape of the same series.
// Its count comes from the buckets (the +Inf one for le buckets), which a
// scrape reads together with them.
func (h *stageHistogram) minus(b *stageHistogram) *stageHistogram {
	d := newStageHistogram()
	d.sum = h.sum - b.sum
	for vr, n := range h.ranges {
		if n > b.ranges[vr] {
			d.ranges[vr] = n - b.ranges[vr]
			d.count += d.ranges[vr]
		}
	}
	for bound, n := range h.le {
		// Every bound stays, empty or not: a bucket's lower bound is the
		// bound below it.
		d.le[bound] = n - min(n, b.le[bound])
	}
	if n, ok := d.le[math.Inf(1)]; ok {
		d.count = n
	}
	return d
}

func stageRank(stage string) int {
	if i := slices.Index(stageOrder, stage); i >= 0 {
		return i
	}
	return len(stageOrder)
}

// quantile is the value below which a share q of the histogram's values
// lie, interpolated linearly inside the bucket that holds it, as
// Prometheus' histogram_quantile does: a VictoriaMetrics bucket is 13.6 %
// wide, onsale's le buckets at most 50 %, so that is the worst error. The
// open top bucket answers its lower bound.
func (h *stageHistogram) quantile(q float64) float64 {
	bs := h.buckets()
	var total uint64
	for _, b := range bs {
		total += b.n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for _, b := range bs {
		if seen+float64(b.n) >= rank {
			if math.IsInf(b.hi, 1) {
				return b.lo
			}
			return b.lo + (b.hi-b.lo)*(rank-seen)/float64(b.n)
		}
		seen += float64(b.n)
	}
	last := bs[len(bs)-1]
	if math.IsInf(last.hi, 1) {
		return last.lo
	}
	return last.hi
}

// bucket is a range of values and how many fell in it.
type bucket struct {
	lo, hi float64
	n      uint64
}

// buckets returns h's non-empty buckets as ranges in ascending order,
// whichever format it came in. The lowest le bucket starts at 0 (at its
// bound if that is negative), as in histogram_quantile.
func (h *stageHistogram) buckets() []bucket {
	var bs []bucket
	for vr, n := range h.ranges {
		lo, hi, err := parseVMRange(vr)
		if err != nil || n == 0 {
			continue
		}
		bs = append(bs, bucket{lo, hi, n})
	}
	bounds := slices.Sorted(maps.Keys(h.le))
	lo, prev := 0.0, uint64(0)
	for i, hi := range bounds {
		if i == 0 && hi < 0 {
			lo = hi
		}
		n := h.le[hi]
		if n > prev { // a cumulative count that went down is skipped
			bs = append(bs, bucket{lo, hi, n - prev})
			prev = n
		}
		lo = hi
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.lo, b.lo) })
	return bs
}
