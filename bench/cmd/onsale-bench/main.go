// Command onsale-bench runs onsale's load harness: it builds and starts
// onsale, the baselines (a bare fasthttp ceiling, Redis+Lua with and
// without fsync, PostgreSQL), drives each with the same scenario on
// loopback, audits what onsale sold, and writes a report.
//
//	go run ./bench/cmd/onsale-bench                      # flash then sustained, every system
//	go run ./bench/cmd/onsale-bench -scenario sustained -clients 16
//	go run ./bench/cmd/onsale-bench -scenario sustained -rate 10000 -duration 10s
//	go run ./bench/cmd/onsale-bench -scenario steady -rate 5000
//	go run ./bench/cmd/onsale-bench -scenario soak -systems onsale
//	go run ./bench/cmd/onsale-bench -scenario door                  # check-ins/s, onsale only
//
// Exit status: 0 done, 1 the harness or a system failed, 2 an audit
// failed, 3 bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onsale/onsale/bench"
	"github.com/onsale/onsale/bench/api"
)

func main() {
	bench.MaybeRunShim() // the harness re-runs itself as each shim
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if fo, ok, err := parseFailover(args, stderr); ok || err != nil {
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "onsale-bench:", err)
			return 3
		}
		return runFailover(fo, stdout, stderr)
	}
	cfgs, harnessProfile, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "onsale-bench:", err)
		return 3
	}
	if harnessProfile != "" {
		f, err := os.Create(harnessProfile)
		if err != nil {
			fmt.Fprintln(stderr, "onsale-bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "onsale-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	auditFailed, failed := false, false
	for _, cfg := range cfgs {
		if ctx.Err() != nil {
			break
		}
		cfg.Log = stderr
		rep, err := bench.Run(ctx, *cfg)
		if rep != nil {
			rep.Table(stdout)
			if cfg.OutDir != "" {
				fmt.Fprintf(stdout, "\nreport: %s (results.json, summary.md, *.png, logs/)\n", cfg.OutDir)
			}
		}
		switch {
		case err != nil:
			fmt.Fprintln(stderr, "onsale-bench:", err)
			failed = true
		case rep.AuditFailed:
			fmt.Fprintf(stderr, "\nonsale-bench: AUDIT FAILED in %s: the server's answers break an invariant (see above and summary.md)\n", cfg.Scenario)
			auditFailed = true
		case len(rep.Failed) > 0:
			fmt.Fprintf(stderr, "onsale-bench: %s: systems failed: %s\n", cfg.Scenario, strings.Join(rep.Failed, ", "))
			failed = true
		}
	}
	switch {
	case auditFailed:
		return 2
	case failed || ctx.Err() != nil:
		return 1
	}
	return 0
}

// parseFlags makes one run configuration per scenario named by -scenario,
// each with that scenario's defaults for the flags left unset.
func parseFlags(args []string, stderr io.Writer) ([]*bench.Config, string, error) {
	fs := flag.NewFlagSet("onsale-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	steady, door := bench.DefaultSteady(), bench.DefaultDoor()
	var (
		scenarios   = fs.String("scenario", bench.ScenarioFlash+","+bench.ScenarioSustained, "comma-separated scenarios, run in turn: "+strings.Join(bench.Scenarios, ", "))
		systems     = fs.String("systems", strings.Join(bench.AllSystems, ","), "comma-separated systems: "+strings.Join(bench.AllSystems, ", "))
		clients     = fs.Int("clients", 64, "closed loop: concurrent clients")
		rate        = fs.Float64("rate", 0, "open loop: arrivals per second (0: closed loop; soak defaults to 2000)")
		inflight    = fs.Int("max-inflight", 1024, "open loop: requests in flight at most")
		warmup      = fs.Duration("warmup", 3*time.Second, "warm-up per system, not measured")
		duration    = fs.Duration("duration", 20*time.Second, "measured time per system (soak defaults to 10m)")
		requests    = fs.Int64("requests", 50_000_000, "measured requests per system at most")
		timeout     = fs.Duration("timeout", 5*time.Second, "per-request timeout")
		interval    = fs.Duration("interval", time.Second, "sample interval for the time series and the progress lines")
		out         = fs.String("out", "", "report directory (default bench-results/<scenario>-<time>; with several scenarios, one sub-directory each; \"-\" writes no files)")
		repo        = fs.String("repo", "", "onsale module root to build (default: found from the working directory)")
		onsaleBin   = fs.String("onsale-bin", "", "use this onsale binary instead of building one")
		redisConns  = fs.Int("redis-conns", 64, "connections of the Redis shim to Redis")
		pgConns     = fs.Int("pg-conns", 16, "connections of the PostgreSQL shim to PostgreSQL (a hot row serialises them anyway)")
		auditN      = fs.Int("audit-workers", 16, "concurrent order fetches during the audit")
		noAudit     = fs.Bool("no-audit", false, "skip the audit (not recommended)")
		payVia      = fs.String("pay-via", api.PayViaGeneric, "how orders are paid: "+strings.Join(api.PayVias, "|")+" (a provider's notification route, signed with keys the harness makes; onsale only)")
		cpuprofile  = fs.Bool("cpuprofile", false, "build onsale with pprof on a side port (go build -overlay; the tree is untouched) and write onsale.cpu.pprof of the measured phase")
		onsaleFlags = fs.String("onsale-flags", "", "more flags for onsale, space-separated (e.g. \"-shards 2 -batch-max 2048\")")
		target      = fs.String("target", "", "drive an onsale already running at this loopback host:port instead (needs -admin-token, -user-secret, -payment-secret)")
		adminToken  = fs.String("admin-token", os.Getenv("ONSALE_ADMIN_TOKEN"), "with -target: admin token")
		userSecret  = fs.String("user-secret", os.Getenv("ONSALE_USER_SECRET"), "with -target: user-token signing secret")
		paySecret   = fs.String("payment-secret", os.Getenv("ONSALE_PAYMENT_SECRET"), "with -target: payment webhook secret")
		targetData  = fs.String("target-data", "", "with -target: its data directory, for the disk figures")
		seed        = fs.Uint64("seed", 1, "random seed of the crowd")
		users       = fs.Int("users", 0, "distinct users (default flash/steady 100000, sustained 200000, door 5000 buyers)")
		stock       = fs.Int("stock", 0, "flash and sustained: tickets on sale (default flash 10000, sustained 10000000)")
		quantity    = fs.Int("quantity", 1, "flash: tickets per purchase")
		buyerRange  = fs.String("buyer-purchases", "2-4", "sustained: purchases one buyer makes before the next takes over (N or MIN-MAX)")
		limit       = fs.Int("per-user-limit", 0, "tickets per user per sale (default flash 2, sustained 100, steady 4, soak 1000)")
		hold        = fs.Int("hold", 0, "hold seconds before a pending order expires (default flash/sustained 300, steady 120, soak 30)")
		pay         = fs.Float64("pay", -1, "share of new orders paid through the webhook (default flash/steady/sustained 0.6, soak 0.4)")
		cancel      = fs.Float64("cancel", -1, "share of new orders cancelled (default flash/steady 0.2, sustained 0.1, soak 0.3)")
		retry       = fs.Float64("retry", -1, "share of purchases that resend the previous idempotency key (default 0.01, sustained 0.02)")
		sales       = fs.Int("sales", 0, "steady/soak/browse/sustained: number of sales (default steady 1000, soak 100, browse 500, sustained 1, or 4 per partition with -fleet)")
		tiers       = fs.Int("tiers", steady.TiersPerSale, "steady/soak: tiers per sale")
		tierStock   = fs.Int("tier-stock", 0, "steady/soak: stock per tier (default steady 2000, soak 1000000)")
		zipf        = fs.Float64("zipf", steady.ZipfS, "steady/soak: Zipf exponent of sale popularity (> 1)")
		readShare   = fs.Float64("read-share", steady.ReadShare, "steady/soak: share of requests that read availability")
		tickets     = fs.Int("tickets", door.Tickets, "door: tickets scanned in the measured phase")
		warmTickets = fs.Int("warmup-tickets", door.WarmupTickets, "door: tickets the warm-up scans")
		perOrder    = fs.Int("per-order", door.PerOrder, "door: tickets per order")
		repeat      = fs.Float64("repeat", door.RepeatShare, "door: share of the scans that repeat a ticket (answered 409 already_checked_in)")
		gates       = fs.Int("gates", door.Gates, "door: gates the scans name, by client")
		fleetN      = fs.Int("fleet", 0, "run onsale as a fleet of N partitions: 3 JetStream servers, N nodes and a standby, HAProxy in front when installed (onsale only)")
		harnessProf = fs.String("harness-cpuprofile", "", "write the harness's own CPU profile to this file")
		setExplicit = map[string]bool{}
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: onsale-bench [flags]\n\nRuns scenarios against onsale and the baselines on loopback and reports.\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { setExplicit[f.Name] = true })
	if *cpuprofile && *onsaleBin != "" {
		return nil, "", errors.New("-cpuprofile builds its own onsale: drop -onsale-bin")
	}
	buyerMin, buyerMax, err := parseRange(*buyerRange)
	if err != nil {
		return nil, "", fmt.Errorf("-buyer-purchases: %w", err)
	}
	var sysList []string
	for s := range strings.SplitSeq(*systems, ",") {
		if s = strings.TrimSpace(s); s == "all" {
			sysList = append(sysList, bench.AllSystems...)
		} else if s != "" {
			sysList = append(sysList, s)
		}
	}
	if *fleetN > 0 && !setExplicit["systems"] {
		sysList = []string{bench.SysOnsale}
	}
	var external bench.ExternalTarget
	if *target != "" {
		if setExplicit["systems"] {
			return nil, "", errors.New("-target and -systems exclude each other")
		}
		sysList = []string{bench.SysExternal}
		external = bench.ExternalTarget{Addr: *target, AdminToken: *adminToken, UserSecret: *userSecret,
			PaymentSecret: *paySecret, DataDir: *targetData}
		if *adminToken == "" || *userSecret == "" || *paySecret == "" {
			return nil, "", errors.New("-target needs -admin-token, -user-secret and -payment-secret")
		}
	}
	var repoRoot string
	if needsRepo(sysList, *onsaleBin) || *fleetN > 0 { // a fleet reads deploy/haproxy/haproxy.cfg
		repoRoot = *repo
		if repoRoot == "" {
			if repoRoot, err = findRepo(); err != nil {
				return nil, "", err
			}
		}
	}
	var names []string
	for s := range strings.SplitSeq(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return nil, "", errors.New("-scenario names no scenario")
	}
	stamp := time.Now().Format("20060102-150405")

	followUp := func(fu *bench.FollowUpConfig) {
		if *pay >= 0 {
			fu.PayShare = *pay
		}
		if *cancel >= 0 {
			fu.CancelShare = *cancel
		}
		if *retry >= 0 {
			fu.RetryShare = *retry
		}
	}
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	var cfgs []*bench.Config
	for _, scenario := range names {
		cfg := &bench.Config{
			Scenario: scenario, Systems: sysList, External: external, RepoRoot: repoRoot,
			Timeout: *timeout, SampleInterval: *interval, AuditWorkers: *auditN, NoAudit: *noAudit,
			OnsaleBinary: *onsaleBin, RedisConns: *redisConns, PostgresConns: *pgConns, CPUProfile: *cpuprofile,
			OnsaleFlags: strings.Fields(*onsaleFlags), PayVia: *payVia, Fleet: *fleetN,
		}
		cfg.Load = bench.LoadConfig{Clients: *clients, RatePerSec: *rate, MaxInFlight: *inflight,
			Warmup: *warmup, Duration: *duration, MaxRequests: *requests}
		flash, sustained, steady, door := bench.DefaultFlash(), bench.DefaultSustained(), bench.DefaultSteady(), bench.DefaultDoor()
		if *payVia != api.PayViaGeneric && !setExplicit["systems"] && *target == "" {
			cfg.Systems = []string{bench.SysOnsale} // only onsale trusts the harness's provider keys
		}
		switch scenario {
		case bench.ScenarioDoor:
			setInt(&door.Buyers, *users)
			door.Tickets, door.WarmupTickets, door.PerOrder = *tickets, *warmTickets, *perOrder
			door.RepeatShare, door.Gates, door.Seed = *repeat, *gates, *seed
			if !setExplicit["systems"] && *target == "" {
				cfg.Systems = []string{bench.SysOnsale} // only onsale issues tickets
			}
		case bench.ScenarioFlash:
			setInt(&flash.Users, *users)
			setInt(&flash.Stock, *stock)
			setInt(&flash.PerUserLimit, *limit)
			setInt(&flash.HoldSeconds, *hold)
			flash.Quantity, flash.Seed = *quantity, *seed
			followUp(&flash.FollowUp)
		case bench.ScenarioSustained:
			setInt(&sustained.Users, *users)
			setInt(&sustained.Stock, *stock)
			setInt(&sustained.PerUserLimit, *limit)
			setInt(&sustained.HoldSeconds, *hold)
			setInt(&sustained.Sales, *sales)
			sustained.BuyerPurchasesMin, sustained.BuyerPurchasesMax, sustained.Seed = buyerMin, buyerMax, *seed
			followUp(&sustained.FollowUp)
		case bench.ScenarioQueue:
			cfg.Queue = bench.DefaultQueue()
			setInt(&cfg.Queue.Buyers, *users)
			setInt(&cfg.Queue.Stock, *stock)
			cfg.Queue.Seed = *seed
			if !setExplicit["systems"] && *target == "" {
				cfg.Systems = []string{bench.SysOnsale} // only onsale has a waiting room
			}
		case bench.ScenarioBrowse:
			cfg.Browse = bench.DefaultBrowse()
			setInt(&cfg.Browse.Sales, *sales)
			cfg.Browse.Seed = *seed
		default:
			if scenario == bench.ScenarioSoak {
				if !setExplicit["rate"] && !setExplicit["clients"] {
					cfg.Load.RatePerSec = 2000
				}
				if !setExplicit["duration"] {
					cfg.Load.Duration = 10 * time.Minute
				}
				steady = bench.DefaultSoak()
			}
			setInt(&steady.Users, *users)
			setInt(&steady.Sales, *sales)
			setInt(&steady.StockPerTier, *tierStock)
			setInt(&steady.PerUserLimit, *limit)
			setInt(&steady.HoldSeconds, *hold)
			steady.TiersPerSale, steady.ZipfS, steady.ReadShare, steady.Seed = *tiers, *zipf, *readShare, *seed
			followUp(&steady.FollowUp)
		}
		cfg.Flash, cfg.Sustained, cfg.Steady, cfg.Door = flash, sustained, steady, door
		switch {
		case *out == "-":
		case *out == "":
			cfg.OutDir = filepath.Join("bench-results", fmt.Sprintf("%s-%s", scenario, stamp))
		case len(names) > 1:
			cfg.OutDir = filepath.Join(*out, scenario)
		default:
			cfg.OutDir = *out
		}
		if err := cfg.Validate(); err != nil {
			return nil, "", err
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs, *harnessProf, nil
}

// parseRange reads "N" or "MIN-MAX".
func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("%q is not N or MIN-MAX", s)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("%q is not N or MIN-MAX", s)
		}
	}
	return lo, hi, nil
}

func needsRepo(systems []string, bin string) bool {
	for _, s := range systems {
		if s == bench.SysOnsale && bin == "" {
			return true
		}
	}
	return false
}

// findRepo is the directory of the go.mod that `go env GOMOD` reports for
// the working directory: the onsale module when run from inside it.
func findRepo() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cannot run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the onsale module: run from the repository or pass -repo")
	}
	return filepath.Dir(gomod), nil
}

// parseFailover reads the flags of a failover measurement (-failover N);
// ok is false when args do not ask for one.
func parseFailover(args []string, stderr io.Writer) (cfg bench.FailoverConfig, ok bool, err error) {
	if !slices.ContainsFunc(args, func(a string) bool { return a == "-failover" || strings.HasPrefix(a, "-failover=") }) {
		return cfg, false, nil
	}
	fs := flag.NewFlagSet("onsale-bench -failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		orders      = fs.Int("failover", 0, "measure a fleet failover instead of a load scenario: one partition holding one sale of N paid orders, its owner killed with kill -9")
		runs        = fs.Int("failover-runs", 3, "kills, each measured; the median is reported")
		lease       = fs.Duration("fleet-lease", 3*time.Second, "the nodes' -fleet-lease")
		shards      = fs.Int("shards", 2, "the nodes' -shards (and the preload's)")
		repo        = fs.String("repo", "", "onsale module root to build (default: found from the working directory)")
		onsaleBin   = fs.String("onsale-bin", "", "use this onsale binary instead of building one")
		onsaleFlags = fs.String("onsale-flags", "", "more flags for both nodes, space-separated")
		out         = fs.String("out", "", "write failover.json and the logs here")
		load        = fs.Int("failover-load", 0, "clients buying from the owner for a second before each kill and through it (0: a quiet sale)")
	)
	if err := fs.Parse(args); err != nil {
		return cfg, true, err
	}
	if fs.NArg() > 0 {
		return cfg, true, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	cfg = bench.FailoverConfig{Orders: *orders, Runs: *runs, Lease: *lease, Shards: *shards, RepoRoot: *repo,
		OnsaleBinary: *onsaleBin, OnsaleFlags: strings.Fields(*onsaleFlags), LogDir: *out, LoadClients: *load}
	if *load < 0 || *load > 256 {
		return cfg, true, fmt.Errorf("-failover-load must be 0 to 256, not %d", *load)
	}
	if *out != "" {
		cfg.LogDir = filepath.Join(*out, "logs")
	}
	if cfg.RepoRoot == "" && cfg.OnsaleBinary == "" {
		if cfg.RepoRoot, err = findRepo(); err != nil {
			return cfg, true, err
		}
	}
	return cfg, true, nil
}

func runFailover(cfg bench.FailoverConfig, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg.Log = stderr
	rep, err := bench.RunFailover(ctx, cfg)
	if rep != nil {
		rep.Text(stdout)
		if cfg.LogDir != "" {
			raw, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(filepath.Join(filepath.Dir(cfg.LogDir), "failover.json"), raw, 0o644); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "onsale-bench:", err)
		return 1
	}
	return 0
}
