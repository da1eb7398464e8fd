package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/fleet"
)

// TestHAProxyConfigPerNode: the shipped configuration's three server lines
// become one per node of the fleet, the rest kept.
func TestHAProxyConfigPerNode(t *testing.T) {
	shipped, err := os.ReadFile("../deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	for _, nodes := range []int{2, 5} {
		cfg := string(haproxyConfig(shipped, nodes))
		if got := strings.Count(cfg, "    server node"); got != nodes {
			t.Errorf("%d nodes: %d server lines\n%s", nodes, got, cfg)
		}
		if !strings.Contains(cfg, `server node2 "${ONSALE_NODE2}"`) || strings.Contains(cfg, fmt.Sprintf("server node%d ", nodes+1)) {
			t.Errorf("%d nodes: server lines\n%s", nodes, cfg)
		}
		if !strings.Contains(cfg, "balance hash var(txn.sale)") {
			t.Errorf("the routing rules are gone:\n%s", cfg)
		}
	}
}

// TestSustainedSalesSpreadOverPartitions: a fleet run's sustained sales
// fall in every partition evenly.
func TestSustainedSalesSpreadOverPartitions(t *testing.T) {
	if ids := sustainedSaleIDs(1, 4); len(ids) != 1 || ids[0] != "sustained" {
		t.Errorf("one sale: %v", ids)
	}
	for _, c := range []struct{ sales, partitions int }{{8, 2}, {12, 3}, {7, 4}, {5, 1}} {
		ids := sustainedSaleIDs(c.sales, c.partitions)
		if len(ids) != c.sales {
			t.Fatalf("%+v: %d ids", c, len(ids))
		}
		per := map[int]int{}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%+v: %s twice", c, id)
			}
			seen[id] = true
			per[fleet.PartitionOf([]byte(id), c.partitions)]++
		}
		for p := range c.partitions {
			if want := c.sales / c.partitions; per[p] < want || per[p] > want+1 {
				t.Errorf("%+v: partition %d has %d sales", c, p, per[p])
			}
		}
	}
}

// TestFleetSustained runs the harness's fleet mode end to end: three
// JetStream processes, two partitions' nodes and a standby, the proxy in
// front; a short sustained run whose audit passes, with each owner's
// purchases counted and none at the standby. Correctness, not speed.
func TestFleetSustained(t *testing.T) {
	if testing.Short() {
		t.Skip("builds onsale and starts a JetStream cluster and a fleet")
	}
	cfg := smallFlash(t, SysOnsale)
	s := DefaultSustained()
	s.Users, s.Stock = 2_000, 100_000
	cfg.Scenario, cfg.Sustained, cfg.Fleet = ScenarioSustained, s, 2
	cfg.Load.Duration = 2 * time.Second
	rep := runBuiltOnsale(t, cfg)
	on := &rep.Systems[0]
	if on.Error != "" || on.StopError != "" {
		t.Fatalf("error %q, stop %q", on.Error, on.StopError)
	}
	if on.Audit == nil || !on.Audit.Passed || on.Audit.Orders == 0 || on.Audit.Tiers != 8 {
		t.Fatalf("audit %+v (want 8 sales' tiers)", on.Audit)
	}
	if len(on.Fleet) != 3 {
		t.Fatalf("fleet nodes %+v", on.Fleet)
	}
	var sum float64
	for _, n := range on.Fleet {
		switch {
		case n.Partition >= 0 && n.PurchasesPerSec <= 0:
			t.Errorf("%s (partition %d) created nothing: %+v", n.Node, n.Partition, n)
		case n.Partition < 0 && n.PurchasesPerSec != 0:
			t.Errorf("the standby created purchases: %+v", n)
		}
		sum += n.PurchasesPerSec
	}
	t.Logf("front %s; %.0f purchases/s measured by the client, %.0f by the nodes' counters: %+v", on.FleetFront, on.PurchasesPerSec, sum, on.Fleet)
	if _, err := os.Stat(filepath.Join(cfg.OutDir, "logs", "js0.log")); err != nil {
		t.Error(err)
	}
}

// TestFailoverSmall measures one failover of a small partition end to
// end: the preload through the JetStream journal, the kill, the standby's
// first acknowledged purchase, the timed recovery in the harness.
func TestFailoverSmall(t *testing.T) {
	root := failoverTestRoot(t)
	const orders = 2_000
	// The harness's default lease (3 s): a 1 s lease has been lost under
	// CI's load (renewals late by more than its 417 ms margin), and then the
	// owner exits before the kill. The harness says so; such an attempt is
	// made again, at most three in all, and any other error fails.
	var rep *FailoverReport
	var err error
	for attempt := 1; ; attempt++ {
		rep, err = RunFailover(context.Background(), FailoverConfig{Orders: orders, Runs: 1, RepoRoot: root,
			LogDir: filepath.Join(t.TempDir(), "logs")})
		if !errors.Is(err, ErrLeaseLostBeforeKill) || attempt == 3 {
			break
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("runs %+v", rep.Runs)
	}
	for _, r := range rep.Runs {
		if r.TotalMs <= 0 || r.LeaseMs <= 0 || r.RecoveredOrd < orders {
			t.Errorf("run %+v: want a time, a lease taken and at least %d orders recovered", r, orders)
		}
	}
	if b := rep.Breakdown; b == nil || b.TotalMs <= 0 {
		t.Errorf("breakdown %+v", b)
	}
	var out strings.Builder
	rep.Text(&out)
	t.Log(out.String())
}

// TestFailoverOwnerLostLeaseFirst: when the owner has lost its lease
// before the kill (here it is stopped with SIGSTOP until the standby takes
// the partition, then let go, and exits as a node that lost its lease
// must), the harness reports ErrLeaseLostBeforeKill instead of timing a
// takeover that happened before the kill.
func TestFailoverOwnerLostLeaseFirst(t *testing.T) {
	root := failoverTestRoot(t)
	stall := func(owner, _ *fleetNode, standbyLog string) error {
		if err := owner.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		defer owner.p.cmd.Process.Signal(syscall.SIGCONT)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			taken := false
			scanLog(standbyLog, 0, func(_ time.Time, msg string, _ []byte) { taken = taken || msg == "fleet: lease taken" })
			if taken {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("the standby took no lease within a minute of stopping the owner")
			}
		}
		if err := owner.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return err
		}
		select {
		case <-owner.p.done:
			return nil
		case <-time.After(time.Minute):
			return errors.New("the owner did not exit within a minute of losing its lease")
		}
	}
	_, err := RunFailover(context.Background(), FailoverConfig{Orders: 100, Runs: 1, Lease: time.Second, RepoRoot: root,
		LogDir: filepath.Join(t.TempDir(), "logs"), beforeKill: stall})
	if !errors.Is(err, ErrLeaseLostBeforeKill) {
		t.Fatalf("err %v, want %v", err, ErrLeaseLostBeforeKill)
	}
	t.Log(err)
}

// failoverTestRoot skips a failover test under -short (it builds onsale
// and starts a JetStream cluster and two nodes) and returns the
// repository's root.
func failoverTestRoot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds onsale and starts a JetStream cluster and two nodes")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}
