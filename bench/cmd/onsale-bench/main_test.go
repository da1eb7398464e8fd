package main

import (
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/onsale/onsale/bench"
)

// TestFlagsExpressIssueRuns: the runs the performance targets name can be
// written as flags, and the default is the flash and sustained pair.
func TestFlagsExpressIssueRuns(t *testing.T) {
	parse := func(args ...string) []*bench.Config {
		t.Helper()
		cfgs, _, err := parseFlags(append([]string{"-onsale-bin", "/bin/true", "-out", "-"}, args...), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return cfgs
	}
	def := parse()
	if len(def) != 2 || def[0].Scenario != bench.ScenarioFlash || def[1].Scenario != bench.ScenarioSustained {
		t.Fatalf("default scenarios %v", def)
	}
	if f, s := def[0].Flash, def[1].Sustained; f.Stock != 10_000 || f.PerUserLimit != 2 || s.Stock != 10_000_000 ||
		s.PerUserLimit != 100 || s.Users != 200_000 || s.BuyerPurchasesMin != 2 || s.BuyerPurchasesMax != 4 || s.FollowUp.RetryShare != 0.02 {
		t.Errorf("defaults: flash %+v, sustained %+v", f, s)
	}
	for _, n := range []int{16, 64, 256} {
		c := parse("-scenario", "sustained", "-clients", strconv.Itoa(n))
		if len(c) != 1 || c[0].Load.Clients != n || c[0].Load.OpenLoop() {
			t.Errorf("closed loop %d: %+v", n, c[0].Load)
		}
	}
	open := parse("-scenario", "sustained", "-rate", "10000", "-duration", "10s")[0]
	if open.Load.RatePerSec != 10_000 || open.Load.Duration != 10*time.Second || !open.Load.OpenLoop() {
		t.Errorf("open loop %+v", open.Load)
	}
	if c := parse("-scenario", "sustained", "-buyer-purchases", "3", "-stock", "5000")[0].Sustained; c.BuyerPurchasesMin != 3 || c.BuyerPurchasesMax != 3 || c.Stock != 5000 {
		t.Errorf("sustained flags %+v", c)
	}
	two, _, err := parseFlags([]string{"-onsale-bin", "/bin/true", "-out", "dir", "-scenario", "flash,sustained"}, io.Discard)
	if err != nil || two[0].OutDir != filepath.Join("dir", "flash") || two[1].OutDir != filepath.Join("dir", "sustained") {
		t.Errorf("out dirs %v %v", two, err)
	}
	for _, bad := range [][]string{{"-scenario", "nope"}, {"-buyer-purchases", "4-x"}, {"-buyer-purchases", "5-2", "-scenario", "sustained"}} {
		if _, _, err := parseFlags(append([]string{"-onsale-bin", "/bin/true"}, bad...), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestDoorFlags: the door scenario runs on onsale alone unless told
// otherwise, takes its own flags, and refuses a baseline.
func TestDoorFlags(t *testing.T) {
	cfgs, _, err := parseFlags([]string{"-onsale-bin", "/bin/true", "-out", "-", "-scenario", "door",
		"-tickets", "1000", "-repeat", "0.2", "-users", "50", "-per-order", "4", "-gates", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	if len(c.Systems) != 1 || c.Systems[0] != bench.SysOnsale {
		t.Errorf("systems %v, want onsale alone", c.Systems)
	}
	if d := c.Door; d.Tickets != 1000 || d.RepeatShare != 0.2 || d.Buyers != 50 || d.PerOrder != 4 || d.Gates != 3 {
		t.Errorf("door %+v", d)
	}
	if _, _, err := parseFlags([]string{"-onsale-bin", "/bin/true", "-scenario", "door", "-systems", "onsale,ceiling"}, io.Discard); err == nil {
		t.Error("door on the ceiling accepted")
	}
}
