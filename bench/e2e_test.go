package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a shim: the harness re-runs its
// own executable for each baseline.
func TestMain(m *testing.M) {
	MaybeRunShim()
	os.Exit(m.Run())
}

// smallFlash is a flash sale small enough for a test: 2,000 users after
// 300 tickets, holds of 2 s so that some expire during the run.
func smallFlash(t *testing.T, systems ...string) Config {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	f := DefaultFlash()
	f.Users, f.Stock, f.HoldSeconds = 2_000, 300, 2
	f.FollowUp = FollowUpConfig{PayShare: 0.5, CancelShare: 0.2, RetryShare: 0.05}
	return Config{
		Scenario: ScenarioFlash, Systems: systems, Flash: f,
		Load:    LoadConfig{Clients: 16, Warmup: 300 * time.Millisecond, Duration: 3 * time.Second, MaxRequests: 200_000},
		Timeout: 5 * time.Second, SampleInterval: 250 * time.Millisecond, AuditWorkers: 8,
		RepoRoot: root, RedisConns: 16, PostgresConns: 8,
		OutDir: filepath.Join(t.TempDir(), "report"),
	}
}

// checkMeasured fails unless the system ran, answered, sold out its
// stock and passed its audit.
func checkMeasured(t *testing.T, s *SystemResult, stock int) {
	t.Helper()
	if s.Error != "" {
		t.Fatalf("%s: %s", s.Name, s.Error)
	}
	if s.Requests == 0 || s.Purchases == 0 {
		t.Fatalf("%s: %d requests, %d purchases", s.Name, s.Requests, s.Purchases)
	}
	if s.Audit == nil {
		t.Fatalf("%s: not audited", s.Name)
	}
	if !s.Audit.Passed {
		t.Fatalf("%s: audit failed: %v\n%v", s.Name, s.Audit.ByRule, s.Audit.Violations)
	}
	if s.Audit.Orders == 0 || s.Audit.Tiers != 2 {
		t.Fatalf("%s: audit checked %d orders, %d tiers", s.Name, s.Audit.Orders, s.Audit.Tiers)
	}
	if s.SoldOutAfterS < 0 {
		t.Errorf("%s: never sold out %d tickets in %.1fs", s.Name, stock, s.ElapsedS)
	}
	if s.StopError != "" {
		t.Errorf("%s: %s", s.Name, s.StopError)
	}
}

// TestFlashOnsale is the harness against onsale alone: build the binary,
// run a short flash sale, and require the audit to pass. It checks
// correctness, not speed.
func TestFlashOnsale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onsale server")
	}
	cfg := smallFlash(t, SysOnsale)
	rep := runBuiltOnsale(t, cfg)
	checkMeasured(t, &rep.Systems[0], cfg.Flash.Stock)
	if rep.AuditFailed {
		t.Fatal("report says the audit failed")
	}
	// Some holds of 2 s expired during the 3 s run, and the audit saw it.
	if st := rep.Systems[0].Audit.Statuses; st["paid"] == 0 || st["cancelled"] == 0 {
		t.Errorf("statuses %v: want paid and cancelled orders", st)
	}
	for _, f := range []string{"results.json", "summary.md", "throughput.png", "purchases.png", "latency.png", "cpu.png"} {
		if _, err := os.Stat(filepath.Join(cfg.OutDir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestSustainedOnsale runs onsale and the ceiling through a short
// sustained sale: stock that does not run out, so every purchase answer is
// a new order and none a refusal; the audit passes; the report has the CPU
// per purchase and a sample per interval.
func TestSustainedOnsale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onsale server")
	}
	flash := smallFlash(t, SysOnsale, SysCeiling)
	s := DefaultSustained()
	s.Users, s.Stock = 5_000, 1_000_000
	cfg := flash
	cfg.Scenario, cfg.Sustained = ScenarioSustained, s
	cfg.Load.Duration = 2 * time.Second
	rep := runBuiltOnsale(t, cfg)
	on, ceiling := &rep.Systems[0], &rep.Systems[1]
	if on.Error != "" || ceiling.Error != "" {
		t.Fatalf("errors: %q, %q", on.Error, ceiling.Error)
	}
	if on.Audit == nil || !on.Audit.Passed || on.Audit.Orders == 0 {
		t.Fatalf("audit %+v", on.Audit)
	}
	for _, sys := range []*SystemResult{on, ceiling} {
		if sys.Created == 0 || sys.Rejected != 0 || sys.SoldOutAfterS >= 0 || sys.PurchaseAnswers.Created != sys.Created {
			t.Errorf("%s: %d new orders, %d refusals, sold out after %v, answers %+v", sys.Name, sys.Created, sys.Rejected, sys.SoldOutAfterS, sys.PurchaseAnswers)
		}
		if sys.CPU == nil || sys.CPU.ServerUsPerPurchase <= 0 || sys.CPU.GeneratorCPUS <= 0 {
			t.Errorf("%s: cpu %+v", sys.Name, sys.CPU)
		}
		if len(sys.Samples) < 4 {
			t.Errorf("%s: %d samples in 2 s at 250 ms", sys.Name, len(sys.Samples))
		}
	}
	if _, ok := on.LatencyByOp["pay"]; !ok {
		t.Errorf("no payments: %v", on.LatencyByOp)
	}
	if on.StagesNote != "" {
		t.Errorf("stages: %s", on.StagesNote)
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Purchases <= 0 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
	var table strings.Builder
	rep.Table(&table)
	for _, want := range []string{"purchases/s", "rejected/s", "server µs/purchase", "generator cores"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// baselinesRequired is true under CI (CI=true, which .ci/run sets after
// installing Redis and PostgreSQL): there a missing baseline fails
// TestFlashBaselines, so CI cannot pass without exercising them.
func baselinesRequired() bool { return os.Getenv("CI") == "true" }

// TestFlashBaselines runs the same short flash sale against the ceiling
// and the Redis and PostgreSQL shims: it proves the harness, the shims and
// the audit end to end without onsale. A baseline whose binaries are not
// installed is logged as skipped on a developer's machine, and fails the
// test under CI.
func TestFlashBaselines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis and PostgreSQL")
	}
	cfg := smallFlash(t, SysCeiling, SysRedis, SysRedisDurable, SysPostgres)
	cfg.Load.Duration = 2 * time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Systems) != 4 {
		t.Fatalf("%d systems", len(rep.Systems))
	}
	ceiling := rep.Systems[0]
	if ceiling.Error != "" || ceiling.Requests == 0 || ceiling.Audit != nil || ceiling.SoldOutAfterS < 0 || ceiling.SoldOutAfterS > 0.5 {
		t.Fatalf("ceiling: error %q, %d requests, audit %v, sold out after %.3fs", ceiling.Error, ceiling.Requests, ceiling.Audit, ceiling.SoldOutAfterS)
	}
	for i := 1; i < len(rep.Systems); i++ {
		s := &rep.Systems[i]
		if s.Skipped != "" {
			if baselinesRequired() {
				t.Errorf("%s: %s; CI=true requires every baseline (.ci/run installs them)", s.Name, s.Skipped)
				continue
			}
			if !strings.Contains(s.Skipped, "not found") && !strings.Contains(s.Skipped, "postgres user") {
				t.Errorf("%s: skipped for an unclear reason: %s", s.Name, s.Skipped)
			}
			t.Logf("%s: %s (CI=true would fail here)", s.Name, s.Skipped)
			continue
		}
		// A baseline may not sell 300 tickets in 2 s on a loaded machine
		// (PostgreSQL on one hot row; Redis too, once, in a CI run beside
		// other load): selling out in time is speed, which a test does not
		// assert. What this test proves is the harness, the shim and the
		// audit end to end; the audit must pass regardless.
		stock := cfg.Flash.Stock
		if s.SoldOutAfterS < 0 {
			t.Logf("%s: did not sell out %d tickets in %.1fs (a loaded machine); audited anyway", s.Name, stock, s.ElapsedS)
			s.SoldOutAfterS = 0
		}
		checkMeasured(t, s, stock)
	}
	if rep.AuditFailed || len(rep.Failed) > 0 {
		t.Fatalf("audit failed %v, failed systems %v", rep.AuditFailed, rep.Failed)
	}
}

// runBuiltOnsale builds onsale from this tree and runs cfg against it.
func runBuiltOnsale(t *testing.T, cfg Config) *Report {
	t.Helper()
	bin, err := BuildOnsale(context.Background(), cfg.RepoRoot, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnsaleBinary = bin
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
