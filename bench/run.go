package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/bench/api"
	"github.com/onsale/onsale/bench/shim"
)

// Scenario names.
const (
	ScenarioFlash     = "flash"
	ScenarioSustained = "sustained"
	ScenarioSteady    = "steady"
	ScenarioSoak      = "soak"
	ScenarioDoor      = "door"
	ScenarioBrowse    = "browse"
	ScenarioQueue     = "queue"
)

// Scenarios lists every scenario.
var Scenarios = []string{ScenarioFlash, ScenarioSustained, ScenarioSteady, ScenarioSoak, ScenarioDoor, ScenarioBrowse, ScenarioQueue}

// Config is one harness run: a scenario, a load model, the systems.
type Config struct {
	Scenario       string
	Systems        []string
	Load           LoadConfig
	Flash          FlashConfig
	Sustained      SustainedConfig
	Steady         SteadyConfig // steady and soak
	Door           DoorConfig
	Browse         BrowseConfig
	Queue          QueueConfig
	Timeout        time.Duration
	SampleInterval time.Duration
	AuditWorkers   int
	NoAudit        bool
	OutDir         string // "" writes no files
	RepoRoot       string
	OnsaleBinary   string         // prebuilt onsale; "" builds it from RepoRoot
	ShimExe        string         // "" means this executable
	RedisConns     int            // Redis shim's connections to Redis
	PostgresConns  int            // PostgreSQL shim's connections to PostgreSQL
	External       ExternalTarget // used by the system "onsale-external"
	OnsaleFlags    []string       // more flags for onsale
	// Fleet > 0 runs onsale as a fleet of Fleet partitions (fleet.go):
	// three JetStream servers, Fleet nodes and a standby, HAProxy in front.
	Fleet int
	// PayVia is how orders are paid (api.PayVias): the generic webhook
	// ("" or "generic"), or a provider's notification route, signed with
	// keys the harness makes and configures onsale with (onsale only).
	PayVia         string
	CPUProfile     bool      // build onsale with pprof and profile the measured phase
	HarnessProfile string    // CPU profile of the harness itself (the CLI writes it)
	Log            io.Writer // one line per step and per interval of a phase; nil discards
}

// Validate checks the run is bounded and well-formed.
func (c *Config) Validate() error {
	if err := c.Load.Validate(); err != nil {
		return err
	}
	switch c.Scenario {
	case ScenarioFlash:
		if err := c.Flash.Validate(); err != nil {
			return err
		}
	case ScenarioSustained:
		if err := c.Sustained.Validate(); err != nil {
			return err
		}
	case ScenarioSteady, ScenarioSoak:
		if err := c.Steady.Validate(); err != nil {
			return err
		}
	case ScenarioDoor:
		if err := c.Door.Validate(); err != nil {
			return err
		}
		for _, s := range c.Systems {
			if s != SysOnsale && s != SysExternal {
				return fmt.Errorf("bench: the door scenario runs on onsale only, not %s: it checks in tickets that only onsale issues", s)
			}
		}
	case ScenarioBrowse:
		if err := c.Browse.Validate(); err != nil {
			return err
		}
	case ScenarioQueue:
		if err := c.Queue.Validate(); err != nil {
			return err
		}
		for _, s := range c.Systems {
			// The ceiling answers a join as it answers anything: the most
			// joins per second this client and machine can see at all.
			if s != SysOnsale && s != SysExternal && s != SysCeiling {
				return fmt.Errorf("bench: the queue scenario runs on onsale (and the ceiling) only, not %s: only onsale has a waiting room", s)
			}
		}
	default:
		return fmt.Errorf("bench: unknown scenario %q (%s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if len(c.Systems) == 0 {
		return errors.New("bench: no systems to run")
	}
	if err := c.validatePayVia(); err != nil {
		return err
	}
	for _, s := range c.Systems {
		if _, err := NewSystem(s); err != nil {
			return err
		}
	}
	if c.Fleet < 0 || c.Fleet > 8 {
		return fmt.Errorf("bench: -fleet must be 0 (one node) to 8 partitions, not %d", c.Fleet)
	}
	if c.Fleet > 0 && (len(c.Systems) != 1 || c.Systems[0] != SysOnsale || c.PayVia != "" && c.PayVia != api.PayViaGeneric) {
		return errors.New("bench: -fleet runs onsale alone (-systems onsale), paid through the generic webhook")
	}
	if c.Timeout <= 0 || c.SampleInterval <= 0 {
		return errors.New("bench: timeout and sample interval must be > 0")
	}
	return nil
}

// validatePayVia refuses a provider the run cannot pay through: only the
// onsale the harness starts is configured with the harness's keys, and
// Alipay pays in CNY, which only the flash scenario's sale is made in.
func (c *Config) validatePayVia() error {
	switch c.PayVia {
	case "", api.PayViaGeneric:
		return nil
	case api.PayViaStripe, api.PayViaWeChatPay, api.PayViaUnionPay, api.PayViaAlipay:
	default:
		return fmt.Errorf("bench: -pay-via must be one of %s, not %q", strings.Join(api.PayVias, ", "), c.PayVia)
	}
	for _, s := range c.Systems {
		if s != SysOnsale {
			return fmt.Errorf("bench: -pay-via %s runs on onsale only, not %s: only the onsale the harness starts trusts its provider keys", c.PayVia, s)
		}
	}
	if c.PayVia == api.PayViaAlipay && c.Scenario != ScenarioFlash {
		return fmt.Errorf("bench: -pay-via alipay runs the flash scenario only (its sale is made in CNY, Alipay's currency)")
	}
	return nil
}

func (c *Config) users() int {
	switch c.Scenario {
	case ScenarioFlash:
		return c.Flash.Users
	case ScenarioSustained:
		return c.Sustained.Users
	case ScenarioDoor:
		return c.Door.Buyers
	case ScenarioBrowse:
		return 1 // browsing needs no account
	case ScenarioQueue:
		return c.Queue.Buyers
	}
	return c.Steady.Users
}

func (c *Config) newScenario(users *Users, now time.Time) Scenario {
	switch c.Scenario {
	case ScenarioFlash:
		return NewFlash(c.Flash, users, now)
	case ScenarioSustained:
		sc := c.Sustained
		if c.Fleet > 0 { // spread the load over every partition
			sc.Partitions = c.Fleet
			if sc.Sales <= 1 {
				sc.Sales = 4 * c.Fleet
			}
		}
		return NewSustained(sc, users, now)
	case ScenarioDoor:
		return NewDoor(c.Door, users, now, c.Log)
	case ScenarioBrowse:
		return NewBrowse(c.Browse, now)
	case ScenarioQueue:
		return NewQueue(c.Queue, users, now)
	default:
		return NewSteady(c.Scenario, c.Steady, users, now)
	}
}

// Run measures every system of cfg in turn and returns the report. An
// error means the harness itself could not run; a failed audit is in the
// report (Report.AuditFailed).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := logOut(&cfg)
	logf := func(format string, args ...any) { fmt.Fprintf(logw, format+"\n", args...) }

	workDir, err := os.MkdirTemp("", "onsale-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)
	if err := os.Chmod(workDir, 0o711); err != nil { // the postgres user must reach its directory
		return nil, err
	}
	logDir := filepath.Join(workDir, "logs")
	if cfg.OutDir != "" {
		logDir = filepath.Join(cfg.OutDir, "logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	env := &Env{
		WorkDir: workDir, LogDir: logDir, RepoRoot: cfg.RepoRoot, OnsaleBinary: cfg.OnsaleBinary,
		AdminToken: randomHex(16), UserSecret: randomHex(32), PaymentSecret: randomHex(32),
		OnsaleFlags: cfg.OnsaleFlags, OnsalePprof: cfg.CPUProfile && cfg.OnsaleBinary == "",
		ShimExe: cfg.ShimExe, RedisConns: cfg.RedisConns, PostgresConns: cfg.PostgresConns,
		CeilingPurchase: ceilingPurchaseAnswer(cfg.Scenario),
	}
	if cfg.Scenario == ScenarioQueue { // every join comes from 127.0.0.1: no per-address limit
		env.OnsaleFlags = append(slices.Clone(env.OnsaleFlags), "-queue-join-addr-rate", "0")
	}
	if slices.Contains(cfg.Systems, SysExternal) {
		if len(cfg.Systems) != 1 {
			return nil, errors.New("bench: an external target runs alone (its secrets are not the harness's)")
		}
		env.AdminToken, env.UserSecret, env.PaymentSecret = cfg.External.AdminToken, cfg.External.UserSecret, cfg.External.PaymentSecret
	}
	payer, err := api.NewPayer(cfg.PayVia)
	if err != nil {
		return nil, err
	}
	if payer != nil {
		logf("paying through %s: keys made, onsale configured with their public halves", payer.Via())
		flags, err := payer.Flags(workDir)
		if err != nil {
			return nil, err
		}
		env.OnsaleFlags = append(slices.Clone(env.OnsaleFlags), flags...)
		env.Payer = payer
		cfg.Flash.Currency = payer.Currency()
	}
	if env.ShimExe == "" {
		if env.ShimExe, err = os.Executable(); err != nil {
			return nil, err
		}
	}

	started := time.Now()
	logf("minting %d user tokens", cfg.users())
	users, err := MintUsers([]byte(env.UserSecret), cfg.users(), started.Add(cfg.Load.Warmup+cfg.Load.Duration+2*time.Hour))
	if err != nil {
		return nil, err
	}
	rep := newReport(&cfg, started)
	for _, name := range cfg.Systems {
		if ctx.Err() != nil {
			break
		}
		res := runSystem(ctx, &cfg, env, users, name, logf)
		rep.Systems = append(rep.Systems, res)
	}
	rep.finish()
	if cfg.OutDir != "" {
		if err := rep.WriteFiles(cfg.OutDir); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

// runSystem starts, loads, audits and stops one system. Failures land in
// the result, never abort the other systems.
func runSystem(ctx context.Context, cfg *Config, env *Env, users *Users, name string, logf func(string, ...any)) SystemResult {
	res := SystemResult{Name: name, SoldOutAfterS: -1}
	sys, _ := NewSystem(name) // validated
	if cfg.Fleet > 0 {
		sys = newFleetSystem(cfg.Fleet)
	}
	if ext, ok := sys.(*externalSystem); ok {
		ext.t = cfg.External
	}
	logf("%s: starting", name)
	addr, err := sys.Start(ctx, env)
	defer func() {
		if err := sys.Stop(); err != nil {
			res.StopError = err.Error()
			logf("%s: stop: %v", name, err)
		}
	}()
	if err != nil {
		if errors.Is(err, ErrSkipped) {
			res.Skipped = err.Error()
			logf("%s: SKIPPED: %v", name, err)
		} else {
			res.Error = "cannot start: " + err.Error()
			logf("%s: ERROR: %s", name, res.Error)
		}
		return res
	}
	c, err := api.NewClient(api.ClientConfig{
		Addr: addr, AdminToken: env.AdminToken, PaymentSecret: []byte(env.PaymentSecret), Payer: env.Payer,
		MaxConns: cfg.Load.Workers() + 8, Timeout: cfg.Timeout,
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	scen := cfg.newScenario(users, time.Now())
	if err := scen.Setup(c); err != nil {
		res.Error = "setup: " + err.Error()
		logf("%s: ERROR: %s", name, res.Error)
		return res
	}
	loadCfg := cfg.Load
	if b, ok := scen.(interface{ MaxRequests() int64 }); ok {
		// A scenario with a fixed plan (door: each ticket once) ends with it.
		loadCfg.MaxRequests = min(loadCfg.MaxRequests, b.MaxRequests())
	}
	logf("%s: running %s on %s (%s)", name, scen.Name(), addr, describeLoad(&loadCfg))

	load := NewLoad(loadCfg, realClock{})
	var profileDone chan struct{}
	if on, ok := sys.(*onsaleSystem); ok && on.pprofAddr != "" && cfg.OutDir != "" {
		profileDone = make(chan struct{})
		go func() {
			defer close(profileDone)
			time.Sleep(time.Until(load.MeasureStart))
			res.ProfileNote = fetchProfile(on.pprofAddr, cfg.Load.Duration, filepath.Join(cfg.OutDir, "onsale.cpu.pprof"))
			logf("%s: %s", name, res.ProfileNote)
		}()
	}
	var usage func() treeUsage
	var switches func() int64
	if pids := sys.Pids(); len(pids) > 0 {
		usage = func() treeUsage { return processTreeUsage(pids) }
		switches = func() int64 { return processTreeSwitches(pids) }
	}
	smp := newSampler(load, name, cfg.SampleInterval, logOut(cfg), usage, sys.DataDirs)
	smp.checkIns = cfg.Scenario == ScenarioDoor
	go smp.run()
	meter := newPhaseMeter(load.MeasureStart, usage, switches, scraperOf(sys, c))
	var perNode *fleetMeter
	if fs, ok := sys.(*fleetSystem); ok {
		perNode = newFleetMeter(fs, load.MeasureStart)
		res.FleetFront = fs.Front
	}
	stats := load.Run(ctx, func(w int) Op { return scen.NewOp(c, w) })
	phase := meter.finish()
	if perNode != nil {
		res.Fleet = perNode.finish()
	}
	res.Samples = smp.stop()
	if profileDone != nil {
		<-profileDone
	}
	res.fill(load.Rec.Totals(), stats)
	res.measuredPhase(phase, cfg.Load.RatePerSec)
	what, made := "purchases", res.PurchasesPerSec
	if cfg.Scenario == ScenarioDoor {
		what, made = "check-ins", res.AdmittedPerSec
	}
	logf("%s: %.0f req/s, %.0f %s/s, %.0f rejected/s, %.0f errors/s, p99 %.2f ms",
		name, res.RequestsPerSec, made, what, res.RejectionsPerSec, res.ErrorsPerSec, res.Latency.P99Ms)

	if sys.Audited() && !cfg.NoAudit {
		logf("%s: auditing %d orders", name, len(scen.Tracker().Orders()))
		var fetched atomic.Int64
		stopProgress := auditProgress(logOut(cfg), name, cfg.SampleInterval, &fetched, len(scen.Tracker().Orders()))
		in, err := CollectAudit(c, scen, cfg.AuditWorkers, &fetched)
		stopProgress()
		if err != nil {
			res.Error = "audit: " + err.Error()
		} else {
			a := Audit(in)
			res.Audit = &a
			if a.Passed {
				logf("%s: audit passed (%d orders, %d tiers, %d users)", name, a.Orders, a.Tiers, a.Users)
			} else {
				logf("%s: AUDIT FAILED: %v", name, a.ByRule)
			}
		}
	}
	res.DiskBytes = dirBytes(sys.DataDirs())
	return res
}

func logOut(cfg *Config) io.Writer {
	if cfg.Log == nil {
		return io.Discard
	}
	return cfg.Log
}

// ceilingPurchaseAnswer is the ceiling's answer to a purchase in a
// scenario: what onsale answers most of the time there, so that the client
// does the same work per answer against both.
func ceilingPurchaseAnswer(scenario string) string {
	if scenario == ScenarioSustained {
		return shim.CeilingCreated
	}
	return shim.CeilingSoldOut
}

// auditProgress writes a line per interval while the audit fetches orders;
// the returned func stops it.
func auditProgress(w io.Writer, name string, interval time.Duration, fetched *atomic.Int64, total int) func() {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fmt.Fprintf(w, "%-14s audit   %d/%d orders fetched\n", name, fetched.Load(), total)
			}
		}
	}()
	return func() { close(quit); <-done }
}

func describeLoad(l *LoadConfig) string {
	model := fmt.Sprintf("closed loop, %d clients", l.Clients)
	if l.OpenLoop() {
		model = fmt.Sprintf("open loop, %.0f req/s, %d in flight max", l.RatePerSec, l.MaxInFlight)
	}
	return fmt.Sprintf("%s, warm-up %s, %s, %d requests max", model, l.Warmup, l.Duration, l.MaxRequests)
}

func fetchProfile(addr string, d time.Duration, path string) string {
	secs := max(int(d.Seconds())-1, 1)
	c, err := api.NewClient(api.ClientConfig{Addr: addr, MaxConns: 1, Timeout: d + 10*time.Second})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	body, status, err := c.Get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
	switch {
	case err != nil:
		return "cpu profile: " + err.Error()
	case status != 200:
		return fmt.Sprintf("cpu profile: GET /debug/pprof/profile answered %d", status)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return "cpu profile: " + err.Error()
	}
	return "cpu profile in " + path
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Machine describes where the run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go_version"`
	Hostname   string `json:"hostname"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

func thisMachine() Machine {
	h, _ := os.Hostname()
	return Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GoVersion: runtime.Version(), Hostname: h, GOMAXPROCS: runtime.GOMAXPROCS(0)}
}
