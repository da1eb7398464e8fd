package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// stageMetric is the histogram family in onsale's /metrics that breaks a
// request's latency into stages, one series per stage label, written by
// VictoriaMetrics/metrics:
//
//	onsale_stage_seconds_bucket{stage="decide",vmrange="1.000e-04...1.136e-04"} 12
//	onsale_stage_seconds_sum{stage="decide"} 0.0123
//	onsale_stage_seconds_count{stage="decide"} 100
//
// Buckets are not cumulative: each counts the values in its range. The
// harness scrapes at the start and the end of the measured phase and
// reports what happened in between; the set of stages is the server's.
const stageMetric = "onsale_stage_seconds"

// stageOrder lists the stages the server is known to time, in the order a
// request meets them, so that the report reads like the request's path.
// Stages not listed follow in alphabetical order.
var stageOrder = []string{"inbox_wait", "decide", "commit_wait", "append", "sync_wait", "answer"}

// vmHistogram is one series of a VictoriaMetrics histogram.
type vmHistogram struct {
	buckets map[string]uint64 // count by vmrange
	sum     float64
	count   uint64
}

// stageScrape is the stage histograms of one scrape, by stage name.
type stageScrape map[string]*vmHistogram

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
			h = &vmHistogram{buckets: map[string]uint64{}}
			out[stage] = h
		}
		switch suffix {
		case "bucket":
			vr := labels["vmrange"]
			if _, _, err := parseVMRange(vr); err != nil {
				return nil, fmt.Errorf("bench: %q: %w", line, err)
			}
			h.buckets[vr] += uint64(value)
		case "sum":
			h.sum = value
		case "count":
			h.count = uint64(value)
		}
	}
	return out, sc.Err()
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
			b = &vmHistogram{}
		}
		d := vmHistogram{buckets: map[string]uint64{}, sum: a.sum - b.sum}
		for vr, n := range a.buckets {
			if n > b.buckets[vr] {
				d.buckets[vr] = n - b.buckets[vr]
				d.count += d.buckets[vr]
			}
		}
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

func stageRank(stage string) int {
	if i := slices.Index(stageOrder, stage); i >= 0 {
		return i
	}
	return len(stageOrder)
}

// quantile is the value below which a share q of the histogram's values
// lie, interpolated linearly inside the bucket that holds it (buckets are
// 13.6 % wide, so that is the worst error). The open top bucket answers
// its lower bound.
func (h *vmHistogram) quantile(q float64) float64 {
	type bucket struct {
		lo, hi float64
		n      uint64
	}
	bs := make([]bucket, 0, len(h.buckets))
	var total uint64
	for vr, n := range h.buckets {
		lo, hi, err := parseVMRange(vr)
		if err != nil || n == 0 {
			continue
		}
		bs = append(bs, bucket{lo, hi, n})
		total += n
	}
	if total == 0 {
		return 0
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.lo, b.lo) })
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
