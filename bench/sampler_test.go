package bench

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// TestSamplerTicks: ticks fall every interval of the warm-up, then exactly
// at the measurement start, then every interval after it, so that no
// interval mixes warm-up and measurement.
func TestSamplerTicks(t *testing.T) {
	clock := newFakeClock()
	l := NewLoad(LoadConfig{Clients: 1, Warmup: 2500 * time.Millisecond, Duration: 3 * time.Second, MaxRequests: 10}, clock)
	s := &sampler{load: l, interval: time.Second}
	var got []time.Duration
	for at := l.Start; len(got) < 5; {
		at = s.nextTick(at)
		got = append(got, at.Sub(l.Start))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 2500 * time.Millisecond, 3500 * time.Millisecond, 4500 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ticks at %v, want %v", got, want)
		}
	}
}

// TestSamplerProgressLines: one line per tick, in the warm-up from the
// warm-up counts and in the measurement from the measured ones, with the
// CPU both sides used; a Sample per measured tick only.
func TestSamplerProgressLines(t *testing.T) {
	clock := newFakeClock()
	l := NewLoad(LoadConfig{Clients: 1, Warmup: time.Second, Duration: 2 * time.Second, MaxRequests: 1_000}, clock)
	var out bytes.Buffer
	serverCPU, genCPU := time.Duration(0), time.Duration(0)
	s := &sampler{load: l, name: "onsale", interval: time.Second, out: &out,
		usage:  func() treeUsage { return treeUsage{cpu: serverCPU, memBytes: 64 << 20} },
		genCPU: func() time.Duration { return genCPU }}
	s.last = s.read(l.Start)

	created := api.Result{Status: 201}
	soldOut := api.Result{Status: 409, Code: api.CodeSoldOut}
	failed := api.Result{Status: 503, Code: "unavailable"}
	// Warm-up: 30 purchases in its one second, half a core each side.
	for range 30 {
		l.Rec.RecordWarm(0, OpPurchase, &created)
	}
	serverCPU, genCPU = 500*time.Millisecond, 500*time.Millisecond
	s.tick(l.MeasureStart)
	// First measured second: 100 new orders, 40 refusals, 2 errors.
	for i := range 142 {
		res := &created
		switch {
		case i >= 140:
			res = &failed
		case i >= 100:
			res = &soldOut
		}
		l.Rec.Record(0, OpPurchase, l.MeasureStart, 4*time.Millisecond, 0, res)
	}
	serverCPU, genCPU = 1400*time.Millisecond, 800*time.Millisecond
	s.tick(l.MeasureStart.Add(time.Second))
	// Second measured second: nothing at all.
	s.tick(l.MeasureStart.Add(2 * time.Second))

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per tick:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{"onsale", "warm-up", "1s/1s", "30 req/s", "purchases      30/s", "server 0.50 cores", "generator 0.50 cores"},
		{"measure", "1s/2s", "142 req/s", "purchases     100/s", "rejected      40/s", "errors      2/s", "p50   4.00 ms", "server 0.90 cores", "generator 0.30 cores"},
		{"measure", "2s/2s", "0 req/s", "server 0.00 cores"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if len(s.samples) != 2 {
		t.Fatalf("%d samples, want one per measured tick", len(s.samples))
	}
	got := s.samples[0]
	if got.AtS != 1 || got.RequestsPerSec != 142 || got.PurchasesPerSec != 100 || got.RejectionsPerSec != 40 ||
		got.ErrorsPerSec != 2 || !within(got.ServerCores, 0.9) || !within(got.GeneratorCores, 0.3) || got.RSSBytes != 64<<20 {
		t.Errorf("first sample %+v", got)
	}
}

// TestSamplerWithoutServerProcesses: a target the harness did not start
// has no processes to read; its lines say nothing of the server's CPU.
func TestSamplerWithoutServerProcesses(t *testing.T) {
	clock := newFakeClock()
	l := NewLoad(LoadConfig{Clients: 1, Duration: time.Second, MaxRequests: 10}, clock)
	var out bytes.Buffer
	s := &sampler{load: l, name: "x", interval: time.Second, out: &out, genCPU: func() time.Duration { return 0 }}
	s.last = s.read(l.Start)
	s.tick(l.Start.Add(time.Second))
	if strings.Contains(out.String(), "server") || len(s.samples) != 1 {
		t.Fatalf("%q, %d samples", out.String(), len(s.samples))
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a parenthesis; utime 250 and stime
	// 50 ticks are fields 14 and 15.
	line := "4242 (on sale) x) S 17 4242 17 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615\n"
	st, ok := parseProcStat(line)
	if !ok || st.ppid != 17 || st.cpu != 3*time.Second {
		t.Fatalf("%+v %v", st, ok)
	}
	if _, ok := parseProcStat("4242 (short) S 1 2"); ok {
		t.Fatal("short line accepted")
	}
	// This process reads itself: its tree holds at least its own memory.
	u := processTreeUsage([]int{os.Getpid()})
	if u.memBytes <= 0 {
		t.Fatalf("own usage %+v", u)
	}
}

func TestProcessTreeSwitches(t *testing.T) {
	status := "Name:\tonsale\nThreads:\t12\nvoluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n"
	if n := parseSwitches(status); n != 157 {
		t.Fatalf("parseSwitches: %d, want 157", n)
	}
	if n := parseSwitches("Name:\tx\n"); n != 0 {
		t.Fatalf("no counts: %d", n)
	}
	// A shell that has waited for 50 sleeps has left its core at least 50
	// times; its tree's count says so while it runs.
	cmd := exec.Command("sh", "-c", "for i in $(seq 50); do sleep 0.001; done; sleep 30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n := processTreeSwitches([]int{cmd.Process.Pid}); n >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sleeping child's tree counts %d switches, want at least 50", processTreeSwitches([]int{cmd.Process.Pid}))
		}
	}
	if processTreeSwitches(nil) != 0 {
		t.Fatal("no pids, some switches")
	}
}
