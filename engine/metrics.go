package engine

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// engineMetrics are created once at Open and kept in fields; with no
// metrics.Set they still exist, unregistered, so the hot path never checks.
type engineMetrics struct {
	set *metrics.Set
}

type shardMetrics struct {
	overloaded    *metrics.Counter
	shed          *metrics.Counter
	appendSeconds *metrics.Histogram
	appendEntries *metrics.Histogram
}

func newEngineMetrics(set *metrics.Set) *engineMetrics {
	if set == nil {
		set = metrics.NewSet() // never written out
	}
	return &engineMetrics{set: set}
}

func (m *engineMetrics) shard(id int, e *Engine) *shardMetrics {
	label := fmt.Sprintf(`{shard="%d"}`, id)
	sm := &shardMetrics{
		overloaded:    m.set.NewCounter("onsale_engine_overloaded_total" + label),
		shed:          m.set.NewCounter("onsale_engine_shed_total" + label),
		appendSeconds: m.set.NewHistogram("onsale_engine_log_append_seconds" + label),
		appendEntries: m.set.NewHistogram("onsale_engine_log_append_batches" + label),
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
