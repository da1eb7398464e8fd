package bench

import (
	"strings"
	"testing"
)

// TestReportTable: purchases and refusals in their own columns, a stage
// section only for a system that has stages, the open-loop section only
// in an open loop, and a skipped system's reason on its own line.
func TestReportTable(t *testing.T) {
	r := &Report{Scenario: ScenarioSustained, LoadModel: "closed loop, 64 clients", Load: LoadJSON{Clients: 64}}
	r.Systems = []SystemResult{
		{Name: SysOnsale, Requests: 1000, ElapsedS: 1, RequestsPerSec: 1000, PurchasesPerSec: 640, RejectionsPerSec: 12, Created: 640,
			SoldOutAfterS: -1, LatencyByOp: map[string]Percentiles{"purchase": {Count: 700, P50Ms: 4.2, P99Ms: 12}},
			PurchaseAnswers: PurchaseAnswers{Sent: 700, Created: 640, Replayed: 10, Other: 50},
			CPU:             &CPUCost{WallS: 1, ServerCPUS: 0.9, ServerCores: 0.9, ServerUsPerRequest: 900, ServerUsPerPurchase: 1406.25, ServerSwitchesPerRequest: 0.4375, GeneratorCores: 0.7, GeneratorUsPerRequest: 700},
			Stages:          []StageStats{{Stage: "inbox_wait", Count: 700, MeanUs: 12.5, P50Us: 9, P99Us: 80}}},
		{Name: SysRedis, Skipped: "skipped: redis-server not found (run bench/install-baselines.sh) and a long tail of words"},
		{Name: SysCeiling, Requests: 3000, ElapsedS: 1, RequestsPerSec: 3000, SoldOutAfterS: -1},
	}
	r.finish()
	var b strings.Builder
	r.Table(&b)
	out := b.String()
	for _, want := range []string{
		"purchases/s  rejected/s",
		"onsale: server-side latency by stage",
		"inbox_wait",
		"1406.2", // µs per purchase
		"server switches/request",
		"0.44", // switches per request
		"redis    skipped: redis-server not found",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"ceiling: server-side", "Open loop"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("table has %q:\n%s", unwanted, out)
		}
	}
	// The skipped system's reason does not widen the req/s column.
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ceiling ") && len(l) > 120 {
			t.Errorf("ceiling's row is %d wide: %q", len(l), l)
		}
	}
	var md strings.Builder
	r.Markdown(&md)
	if !strings.Contains(md.String(), "| inbox_wait | 700 | 12.5 | 9.0 | 80.0 |") {
		t.Errorf("markdown lacks the stage row:\n%s", md.String())
	}
	if strings.Contains(out+md.String(), "onsale ran with") {
		t.Errorf("a run without -onsale-flags names some:\n%s\n%s", out, md.String())
	}

	// onsale's own flags are part of what was measured: both reports say them.
	r.OnsaleFlags = []string{"-gomaxprocs", "1"}
	b.Reset()
	r.Table(&b)
	md.Reset()
	r.Markdown(&md)
	if !strings.Contains(b.String(), "onsale ran with -gomaxprocs 1\n") || !strings.Contains(md.String(), "onsale ran with `-gomaxprocs 1`.") {
		t.Errorf("the reports do not name onsale's flags:\n%s\n%s", b.String(), md.String())
	}
}
