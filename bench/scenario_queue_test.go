package bench

import (
	"testing"
	"time"
)

// TestQueueOnsale runs the queue scenario briefly against onsale: joins
// are answered 2xx (no error, no 429 from the per-address limit, which the
// harness turns off), the latency table has the queue_join row, and the
// audit passes.
func TestQueueOnsale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onsale server")
	}
	cfg := smallFlash(t, SysOnsale)
	cfg.Scenario, cfg.Queue = ScenarioQueue, QueueConfig{Buyers: 3_000, Stock: 100, AdmitRate: 1_000, Seed: 1}
	cfg.Load.Duration = 2 * time.Second
	rep := runBuiltOnsale(t, cfg)
	on := &rep.Systems[0]
	if on.Error != "" || on.Requests == 0 || on.Errors != 0 {
		t.Fatalf("queue run: error %q, %d requests, %d errors", on.Error, on.Requests, on.Errors)
	}
	if _, ok := on.LatencyByOp["queue_join"]; !ok {
		t.Errorf("no joins: %v", on.LatencyByOp)
	}
	if on.Audit == nil || !on.Audit.Passed {
		t.Errorf("audit %+v", on.Audit)
	}
}
