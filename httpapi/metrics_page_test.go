package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/onsale/onsale/wal"
)

// TestMetricsPageIsPrometheusText reads /metrics of a server that sold,
// refused, was paid and was read, as Prometheus would: the page parses,
// every family has a HELP text (metricHelp) and a TYPE, every histogram
// has cumulative le buckets up to +Inf with _sum and _count, and no
// VictoriaMetrics vmrange bucket is left. A family added without a line in
// metricHelp fails here.
func TestMetricsPageIsPrometheusText(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.UserRatePerSec, c.UserBurst = 1000, 1000 }})
	// The test journal registers no metrics; a log of its own on the same
	// set brings the wal's families onto the page.
	l, err := wal.Open("wal", wal.Options{FS: vfs.NewMem(), Metrics: e.set, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if wait, err := l.Append(0, 1, [][]byte{[]byte("entry")}); err != nil || wait() != nil {
		t.Fatalf("append: %v", err)
	}
	e.putSale("s1", 2, 2)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 1), 201, "").str("order_id")
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 200, "")
	e.want(e.buy("s1", "u2", "k2", "floor", 5), 409, "limit_exceeded")
	e.want(e.buy("s1", "u2", "k3", "nope", 1), 422, "unknown_tier")
	e.want(e.pay("evt_1", "payment.succeeded", id, 5000, "EUR"), 200, "")
	e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "")
	e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "")
	page := e.want(e.do("GET", "/metrics", nil, ""), 200, "").body

	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, want := range []string{
		"onsale_stage_seconds", "onsale_engine_log_append_seconds", "onsale_wal_sync_seconds",
		"onsale_http_request_duration_seconds", "onsale_purchases_total", "onsale_engine_holds_outstanding",
		"process_cpu_seconds_total",
	} {
		if families[want] == nil {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for name, mf := range families {
		if mf.GetHelp() == "" {
			t.Errorf("%s has no HELP text: add it to metricHelp", name)
		}
		if !bytes.Contains(page, []byte("\n# TYPE "+name+" ")) {
			t.Errorf("%s has no TYPE", name)
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			checkHistogram(t, name, mf)
		}
	}
	for name := range metricHelp {
		if strings.HasPrefix(name, "onsale_") && !slices.Contains(metricFamiliesElsewhere, name) && families[name] == nil {
			t.Errorf("metricHelp describes %s, which /metrics does not have", name)
		}
	}
	if bytes.Contains(page, []byte("vmrange")) {
		t.Errorf("/metrics has vmrange buckets:\n%s", grepLines(string(page), "vmrange"))
	}

	// Purchase outcomes: the usual ones from the start, the rare ones once
	// they happened, the impossible ones never.
	for _, want := range []string{
		`onsale_purchases_total{outcome="created"} 1`,
		`onsale_purchases_total{outcome="sold_out"} 0`,
		`onsale_purchases_total{outcome="limit_exceeded"} 1`,
		`onsale_purchases_total{outcome="unknown_tier"} 1`,
	} {
		if !bytes.Contains(page, []byte(want+"\n")) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, never := range []string{"ticket_used", "username_taken", "header_too_large", "unknown_credential", "forbidden"} {
		if bytes.Contains(page, []byte(`onsale_purchases_total{outcome="`+never+`"}`)) {
			t.Errorf("/metrics counts purchases answered %s, which a purchase cannot be", never)
		}
	}
}

// metricFamiliesElsewhere are described in metricHelp but registered
// outside this package's test server (by main); the test in package main
// checks the whole binary's page. onsale_webhook_endpoint_backlog has a
// series per registered endpoint only (webhooks_test.go reads it).
var metricFamiliesElsewhere = []string{"onsale_disk_free_bytes", "onsale_disk_free_min_bytes", "onsale_webhook_endpoint_backlog"}

// checkHistogram asserts one histogram family's series have cumulative
// buckets ending at +Inf, whose count is the series' _count, and a _sum.
// The Go runtime's histograms (go_*) come from runtime/metrics, which has
// no sum; the library writes only their buckets.
func checkHistogram(t *testing.T, name string, mf *dto.MetricFamily) {
	t.Helper()
	runtime := strings.HasPrefix(name, "go_")
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		bs := h.GetBucket()
		if len(bs) < 2 {
			t.Errorf("%s %v: %d buckets", name, m.GetLabel(), len(bs))
			continue
		}
		for i := 1; i < len(bs); i++ {
			if bs[i].GetUpperBound() <= bs[i-1].GetUpperBound() || bs[i].GetCumulativeCount() < bs[i-1].GetCumulativeCount() {
				t.Errorf("%s %v: bucket le=%g (%d) after le=%g (%d) is not cumulative", name, m.GetLabel(),
					bs[i].GetUpperBound(), bs[i].GetCumulativeCount(), bs[i-1].GetUpperBound(), bs[i-1].GetCumulativeCount())
			}
		}
		last := bs[len(bs)-1]
		if !math.IsInf(last.GetUpperBound(), 1) {
			t.Errorf("%s %v: the last bucket is le=%g, not +Inf", name, m.GetLabel(), last.GetUpperBound())
		}
		if runtime {
			continue
		}
		if h.SampleCount == nil || h.SampleSum == nil {
			t.Errorf("%s %v: no _count or _sum", name, m.GetLabel())
		} else if last.GetCumulativeCount() != h.GetSampleCount() {
			t.Errorf("%s %v: +Inf bucket %d, _count %d", name, m.GetLabel(), last.GetCumulativeCount(), h.GetSampleCount())
		}
	}
}
