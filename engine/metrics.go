package engine

import (
	"fmt"
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
//
//	inbox_wait   sent to the shard's inbox → its batch starts (per batch: its oldest request)
//	decide       the loop decides, applies and encodes one batch (per batch)
//	commit_wait  batch decided → the committer starts its Append (per batch)
//	append       Journal.Append: the Pebble batch is built and applied (per Append)
//	sync_wait    Append returned → the log sync covering it returned (per Append)
//	answer       the acker answered → the caller's goroutine runs again (per batch: the
//	             request answered last)
type stageMetrics struct {
	inboxWait, decide, commitWait, append, syncWait, answer *metrics.Histogram
}

type shardMetrics struct {
	overloaded    *metrics.Counter
	shed          *metrics.Counter
	appendSeconds *metrics.Histogram
	appendEntries *metrics.Histogram
	stages        *stageMetrics
}

func newEngineMetrics(set *metrics.Set) *engineMetrics {
	if set == nil {
		set = metrics.NewSet() // never written out
	}
	stage := func(name string) *metrics.Histogram {
		return set.NewHistogram(`onsale_stage_seconds{stage="` + name + `"}`)
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
		appendSeconds: m.set.NewHistogram("onsale_engine_log_append_seconds" + label),
		appendEntries: m.set.NewHistogram("onsale_engine_log_append_batches" + label),
		stages:        m.stages,
	}
	m.set.NewGauge("onsale_engine_inbox_depth"+label, func() float64 { return float64(e.InboxLen(id)) })
	m.set.NewGauge("onsale_engine_holds_outstanding"+label, func() float64 {
		return float64(e.shards[id].pendingOrders.Load())
	})
	return sm
}

func (m *shardMetrics) observeAppend(d time.Duration, entries int) {
	m.appendSeconds.Update(d.Seconds())
	m.appendEntries.Update(float64(entries))
}
