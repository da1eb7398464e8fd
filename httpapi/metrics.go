package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/onsale/onsale/engine"
)

// httpMetrics are created once, in New, and kept in arrays indexed by route
// and status, so a request never looks a metric up by name. Request counters
// are registered on first use (names precomputed), so /metrics lists only
// the (route, status) pairs that happened.
type httpMetrics struct {
	set       *metrics.Set
	requests  [routeCount][len(countedStatuses) + 1]atomic.Pointer[metrics.Counter]
	reqNames  [routeCount][len(countedStatuses) + 1]string
	latency   [routeCount]latencyHistogram
	purchases map[string]*metrics.Counter // the usual outcomes; read-only after New
	// otherPurchases are the rare outcomes' counters (string →
	// *metrics.Counter), registered at their first use.
	otherPurchases sync.Map
	panics         *metrics.Counter
	// duplicateCharges counts successful payments recorded on an order they
	// did not pay for (money to give back), once per event id.
	duplicateCharges *metrics.Counter
	// rateLimited counts 429 rate_limited by route (purchase and cancel
	// only; the others stay nil).
	rateLimited [routeCount]*metrics.Counter
	// boxOfficeSales counts orders sellers made at a box office.
	boxOfficeSales *metrics.Counter
}

// countedStatuses are the statuses counted by their number; any other is
// counted as "other".
var countedStatuses = [...]int{200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 431, 500, 503}

// Purchase outcomes besides the engine's codes.
const (
	outcomeCreated  = "created"
	outcomeReplayed = "replayed"
)

// usualPurchaseOutcomes are registered at start, so that a rate over them
// sees their first increment: what a flash sale answers, in the dashboard
// and the alerts. Any other outcome a purchase can end in (a malformed
// body, an unknown tier, ...) is registered when it first happens; codes a
// purchase cannot produce (ticket_used, username_taken, ...) never appear.
var usualPurchaseOutcomes = []string{
	outcomeCreated, outcomeReplayed,
	string(engine.CodeSoldOut), string(engine.CodeLimitExceeded),
	string(engine.CodeSaleNotOpen), string(engine.CodeSaleClosed),
	codeOverloaded, codeRateLimited, codeUnavailable, codeInternal,
}

func newHTTPMetrics(set *metrics.Set) *httpMetrics {
	// /metrics writes "# HELP" and "# TYPE" before each family
	// (metrics_help.go). The library has only a process-wide switch for
	// that; this package writes the process's only metrics page.
	metrics.ExposeMetadata(true)
	m := &httpMetrics{set: set, purchases: make(map[string]*metrics.Counter)}
	for r := range routeCount {
		for i, st := range countedStatuses {
			m.reqNames[r][i] = fmt.Sprintf(`onsale_http_requests_total{route=%q,status="%d"}`, routes[r].name, st)
		}
		m.reqNames[r][len(countedStatuses)] = fmt.Sprintf(`onsale_http_requests_total{route=%q,status="other"}`, routes[r].name)
	}
	set.RegisterMetricsWriter(m.writeLatency)
	for _, o := range usualPurchaseOutcomes {
		m.purchases[o] = set.NewCounter(purchaseSeries(o))
	}
	m.panics = set.NewCounter("onsale_http_panics_total")
	m.duplicateCharges = set.NewCounter("onsale_duplicate_charges_total")
	for _, r := range []route{routePurchase, routeCancelOrder, routeQueueJoin} {
		m.rateLimited[r] = set.NewCounter(fmt.Sprintf(`onsale_http_rate_limited_total{route=%q}`, routes[r].name))
	}
	return m
}

// observe counts one answered request.
func (m *httpMetrics) observe(r route, status int, d time.Duration) {
	i := len(countedStatuses)
	for j, st := range countedStatuses {
		if st == status {
			i = j
			break
		}
	}
	p := &m.requests[r][i]
	c := p.Load()
	if c == nil {
		c = m.set.GetOrCreateCounter(m.reqNames[r][i])
		p.Store(c)
	}
	c.Inc()
	if d > 0 {
		m.latency[r].observe(d)
	}
}

// purchase counts a purchase's outcome: created, replayed or the code of
// the problem it was answered with.
func (m *httpMetrics) purchase(outcome string) {
	if c := m.purchases[outcome]; c != nil {
		c.Inc()
		return
	}
	c, ok := m.otherPurchases.Load(outcome)
	if !ok {
		c, _ = m.otherPurchases.LoadOrStore(outcome, m.set.GetOrCreateCounter(purchaseSeries(outcome)))
	}
	c.(*metrics.Counter).Inc()
}

func purchaseSeries(outcome string) string {
	return fmt.Sprintf(`onsale_purchases_total{outcome=%q}`, outcome)
}

// latencyBounds are the upper bounds (seconds) of the latency buckets. The
// histogram is written in Prometheus' own format (le buckets), which
// histogram_quantile reads. It is ours rather than a
// metrics.PrometheusHistogram because it is observed on every request, by
// every fasthttp worker at once: atomic adds, where the library's takes a
// mutex.
var latencyBounds = [...]float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

type latencyHistogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64 // not cumulative; the last is +Inf
	sumNs   atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(latencyBounds) && sec > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(uint64(d))
}

func (m *httpMetrics) writeLatency(w io.Writer) {
	const name = "onsale_http_request_duration_seconds"
	var b []byte
	for r := range routeCount {
		h := &m.latency[r]
		var counts [len(latencyBounds) + 1]uint64
		var total uint64
		for i := range counts {
			counts[i] = h.buckets[i].Load()
			total += counts[i]
		}
		if total == 0 {
			continue
		}
		if len(b) == 0 {
			// The library's way, whose text describeMetrics fills in.
			var meta bytes.Buffer
			metrics.WriteMetadataIfNeeded(&meta, name, "histogram")
			b = append(b, meta.Bytes()...)
		}
		label := routes[r].name
		var cum uint64
		for i, bound := range latencyBounds {
			cum += counts[i]
			b = fmt.Appendf(b, "%s_bucket{route=%q,le=%q} %d\n", name, label, strconv.FormatFloat(bound, 'g', -1, 64), cum)
		}
		b = fmt.Appendf(b, "%s_bucket{route=%q,le=\"+Inf\"} %d\n", name, label, total)
		b = fmt.Appendf(b, "%s_sum{route=%q} %g\n", name, label, float64(h.sumNs.Load())/1e9)
		b = fmt.Appendf(b, "%s_count{route=%q} %d\n", name, label, total)
	}
	w.Write(b)
}
