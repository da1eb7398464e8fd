package notify

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// notifyMetrics: the outbox's backlog per endpoint and in total,
// deliveries by outcome, delivery latency, emails by outcome. With a nil
// set they are kept but not exported.
type notifyMetrics struct {
	set        *metrics.Set
	deliveries map[string]*metrics.Counter
	latency    *metrics.PrometheusHistogram
	emails     map[string]*metrics.Counter
	// onSaleEmails: event.on_sale emails to followers (onsale.go)
	onSaleEmails map[string]*metrics.Counter
}

var deliveryOutcomes = []string{"ok", "http_error", "network_error"}
var emailOutcomes = []string{"ok", "error", "no_address"}

func newNotifyMetrics(set *metrics.Set, n *Notifier) *notifyMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	m := &notifyMetrics{set: set, deliveries: make(map[string]*metrics.Counter), emails: make(map[string]*metrics.Counter)}
	for _, o := range deliveryOutcomes {
		m.deliveries[o] = set.NewCounter(`onsale_webhook_deliveries_total{outcome="` + o + `"}`)
	}
	for _, o := range emailOutcomes {
		m.emails[o] = set.NewCounter(`onsale_email_sent_total{outcome="` + o + `"}`)
	}
	m.onSaleEmails = make(map[string]*metrics.Counter)
	for _, o := range emailOutcomes {
		m.onSaleEmails[o] = set.NewCounter(`onsale_follow_emails_total{outcome="` + o + `"}`)
	}
	set.NewGauge("onsale_follows", func() float64 {
		if !n.started.Load() {
			return 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, _ := n.eng.FollowsCount(ctx)
		return float64(c)
	})
	m.latency = set.NewPrometheusHistogram("onsale_webhook_delivery_seconds")
	set.NewGauge("onsale_webhook_backlog", func() float64 {
		n.mu.Lock()
		ids := make([]string, 0, len(n.workers))
		for id := range n.workers {
			ids = append(ids, id)
		}
		n.mu.Unlock()
		var sum int64
		for _, id := range ids {
			if b := n.Backlog(id); b > 0 {
				sum += b
			}
		}
		return float64(sum)
	})
	set.NewGauge("onsale_webhook_paced", func() float64 { // pace.go
		if n.pace.busy.Load() {
			return 1
		}
		return 0
	})
	set.NewGauge("onsale_outbox_lag", func() float64 { return float64(n.Lag()) }) // pace.go
	set.NewGauge("onsale_outbox_records", func() float64 {
		n.mu.Lock()
		defer n.mu.Unlock()
		return float64(n.head - n.tail)
	})
	return m
}

func (m *notifyMetrics) delivered(outcome string, d time.Duration) {
	m.deliveries[outcome].Inc()
	m.latency.Update(d.Seconds())
}

func (m *notifyMetrics) endpointAdded(id string, w *endpointWorker) {
	m.set.GetOrCreateGauge(`onsale_webhook_endpoint_backlog{endpoint="`+id+`"}`, func() float64 {
		return float64(max(0, w.n.Backlog(id)))
	})
}

func (m *notifyMetrics) endpointRemoved(id string) {
	m.set.UnregisterMetric(`onsale_webhook_endpoint_backlog{endpoint="` + id + `"}`)
}
