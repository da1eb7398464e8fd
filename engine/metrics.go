package engine

import (
	"fmt"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// engineMetrics are created once at Open and kept in fields; with no
// metrics.Set they still exist, unregistered, so the hot path never checks.
type engineMetrics struct {
	set    *metrics.Set
	stages *stageMetrics
}

// stageMetrics split a request's time in the engine into the stages it
// waits in, one histogram each, shared by the shards. Each is observed once
// per batch (or per Append), never per request: a histogram takes a lock.
// They are Prometheus histograms (cumulative le buckets, stageSecondsBounds),
// which histogram_quantile reads; the bench harness reads them too.
//
//	inbox_wait   sent to the shard's inbox → its batch starts (per batch: its oldest request)
//	decide       the loop decides, applies and encodes one batch (per batch)
//	commit_wait  batch decided → the committer starts its Append (per batch)
//	append       Journal.Append: the Pebble batch is built and applied (per Append)
//	sync_wait    Append returned → the log sync covering it returned (per Append)
//	answer       the acker answered → the caller's goroutine runs again (per batch: the
//	             request answered last)
type stageMetrics struct {
	inboxWait, decide, commitWait, append, syncWait, answer *metrics.PrometheusHistogram
}

type shardMetrics struct {
	overloaded    *metrics.Counter
	shed          *metrics.Counter
	appendSeconds *metrics.PrometheusHistogram
	appendEntries *metrics.PrometheusHistogram
	stages        *stageMetrics
}

// stageSecondsBounds are the stage histograms' bucket upper bounds: 1, 1.5,
// 2, 3, 4, 6 and 8 per decade from 1 µs to 10 s. Stages span that whole
// range (decide is microseconds, sync_wait is a fsync, inbox_wait grows to
// seconds under overload); a bucket is at most 1.5 times as wide as its
// lower bound, so a quantile interpolated inside it stays within that, and
// the le labels read as round numbers. 50 buckets, 6 series.
var stageSecondsBounds = decadeBounds(-6, 1, 1, 1.5, 2, 3, 4, 6, 8)

// shardSecondsBounds are coarser (1, 2.5 and 5 per decade, 10 µs to 10 s):
// the per-shard log append histogram has one series per shard, and the
// stages already give the fine picture.
var shardSecondsBounds = decadeBounds(-5, 1, 1, 2.5, 5)

// appendBatchesBounds: an Append carries 1 to batchesInFlight batches.
var appendBatchesBounds = []float64{1, 2, 4, 8, 16}

// decadeBounds returns steps×10^e for e from expFirst to expLast-1, then
// 10^expLast. The bounds are parsed from their decimal form, so that the le
// labels print as written ("1.5e-06", not "1.5000000000000002e-06").
func decadeBounds(expFirst, expLast int, steps ...float64) []float64 {
	var out []float64
	for e := expFirst; e < expLast; e++ {
		for _, s := range steps {
			out = append(out, decimal(s, e))
		}
	}
	return append(out, decimal(1, expLast))
}

func decimal(mantissa float64, exp int) float64 {
	f, err := strconv.ParseFloat(strconv.FormatFloat(mantissa, 'g', -1, 64)+"e"+strconv.Itoa(exp), 64)
	if err != nil {
		panic(err) // a bug: the text is built above
	}
	return f
}

func newEngineMetrics(set *metrics.Set) *engineMetrics {
	if set == nil {
		set = metrics.NewSet() // never written out
	}
	stage := func(name string) *metrics.PrometheusHistogram {
		return set.NewPrometheusHistogramExt(`onsale_stage_seconds{stage="`+name+`"}`, stageSecondsBounds)
	}
	return &engineMetrics{set: set, stages: &stageMetrics{
		inboxWait: stage("inbox_wait"), decide: stage("decide"), commitWait: stage("commit_wait"),
		append: stage("append"), syncWait: stage("sync_wait"), answer: stage("answer"),
	}}
}

func (m *engineMetrics) shard(id int, e *Engine) *shardMetrics {
	label := fmt.Sprintf(`{shard="%d"}`, id)
	sm := &shardMetrics{
		overloaded:    m.set.NewCounter("onsale_engine_overloaded_total" + label),
		shed:          m.set.NewCounter("onsale_engine_shed_total" + label),
		appendSeconds: m.set.NewPrometheusHistogramExt("onsale_engine_log_append_seconds"+label, shardSecondsBounds),
		appendEntries: m.set.NewPrometheusHistogramExt("onsale_engine_log_append_batches"+label, appendBatchesBounds),
		stages:        m.stages,
	}
	m.set.NewGauge("onsale_engine_inbox_depth"+label, func() float64 { return float64(e.InboxLen(id)) })
	// The capacity beside the depth, so that an alert on a full inbox reads
	// their ratio whatever -inbox-max is.
	inboxMax := float64(e.cfg.InboxMax)
	m.set.NewGauge("onsale_engine_inbox_capacity"+label, func() float64 { return inboxMax })
	m.set.NewGauge("onsale_engine_holds_outstanding"+label, func() float64 {
		return float64(e.shards[id].pendingOrders.Load())
	})
	return sm
}

func (m *shardMetrics) observeAppend(d time.Duration, entries int) {
	m.appendSeconds.Update(d.Seconds())
	m.appendEntries.Update(float64(entries))
}
