package reliability

import (
	"flag"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

var (
	killRounds = flag.Int("kill-rounds", 3, "rounds of TestKillRounds")
	killSeed   = flag.Uint64("kill-seed", 0, "seed of TestKillRounds; 0 takes one from the clock")
)

// binary builds the onsale binary once for the tests of this package.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "reliability-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	return BuildBinary(dir)
})

var binDir string // removed by TestMain

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// testSeed is the seed a flag gives, or one from the clock when it is 0.
func testSeed(flagged uint64) uint64 {
	if flagged != 0 {
		return flagged
	}
	return uint64(time.Now().UnixNano())
}

func testBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestKillRounds runs the kill tool for a few rounds: SIGKILL under load,
// restart, verify. Nothing acknowledged may be lost or changed, nothing
// oversold, no key may make two orders; and the rounds must have done
// something (orders acknowledged, keys retried, restarts measured).
func TestKillRounds(t *testing.T) {
	bin := testBinary(t)
	seed := testSeed(*killSeed)
	var out strings.Builder
	sum, err := Run(Config{Bin: bin, DataDir: t.TempDir(), Rounds: *killRounds, Seed: seed, Out: &out})
	sum.Report(&out)
	t.Logf("seed %d (rerun with -kill-seed %d)\n%s", seed, seed, out.String())
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	v := sum.Violations
	if v.Lost != 0 || v.Changed != 0 || v.Oversold != 0 || v.Miscounted != 0 || v.DuplicateKeys != 0 {
		t.Errorf("seed %d: violations %+v", seed, v)
	}
	if len(sum.Rounds) != *killRounds || sum.Acked == 0 || sum.Retried == 0 {
		t.Errorf("seed %d: the rounds did not exercise the server: %d rounds, %d acked, %d retried",
			seed, len(sum.Rounds), sum.Acked, sum.Retried)
	}
	// The server recovers at least every order acknowledged before the kill
	// (it may hold more: done, but unanswered).
	for _, r := range sum.Rounds {
		if r.ReadyIn <= 0 || r.OrdersInLog < r.AckedAtKill {
			t.Errorf("seed %d round %d: ready in %s, %d orders recovered, %d acknowledged before the kill",
				seed, r.N, r.ReadyIn, r.OrdersInLog, r.AckedAtKill)
		}
	}
}

// TestLedgerCatchesViolations shows that verify can fail: a made-up
// acknowledged order is lost, a status nobody acknowledged is a change, a
// retry answered with another order is a duplicate key, and a tier with
// more stock than created counts as oversold.
func TestLedgerCatchesViolations(t *testing.T) {
	d := &driver{cfg: Config{Bin: testBinary(t), DataDir: t.TempDir(), Workers: 1, Shards: 1, StockPerTier: 10}, l: newLedger()}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.srv.kill()
	if err := d.putSale("s"); err != nil {
		t.Fatal(err)
	}
	load := &roundLoad{c: d.c, l: d.l, saleID: "s", userSecret: []byte(userSecret)}
	k := keyID{sale: "s", user: "u", key: "k1"}
	res, _ := load.purchase(k, "floor", 2)
	if res.Status != 201 {
		t.Fatalf("purchase: %+v", res)
	}
	if v, err := d.l.verify(d.c); err != nil || v.Total() != 0 {
		t.Fatalf("an honest ledger fails: %+v %v", v, err)
	}

	d.l.orders["s.made-up"] = &ackedOrder{sale: "s", tier: "floor", user: "u", qty: 1, statuses: statusBits[api.StatusPending]}
	d.l.orders[res.Order.OrderID].statuses = statusBits[api.StatusPaid]
	d.l.sales[0].stock["seat"] = 9
	other := res
	other.Status, other.Order.OrderID = 200, "s.another"
	d.l.purchased(k, &other)

	v, err := d.l.verify(d.c)
	if err != nil {
		t.Fatal(err)
	}
	v.merge(&d.l.v)
	if v.Lost != 1 || v.Changed != 1 || v.DuplicateKeys != 1 || v.Oversold != 1 || v.Miscounted != 0 {
		t.Errorf("violations %+v, want one lost, changed, duplicate key and oversold", v)
	}
}
