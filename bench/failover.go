package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"

	"github.com/onsale/onsale/bench/api"
	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal/jetstream"
)

// FailoverConfig is a failover measurement (RunFailover): one partition
// holding one sale of Orders paid orders, two nodes, the owner killed
// with kill -9 Runs times.
type FailoverConfig struct {
	Orders       int
	Runs         int
	Shards       int           // -shards of the nodes and of the preload [2]
	Lease        time.Duration // -fleet-lease [3s]
	RepoRoot     string
	OnsaleBinary string   // prebuilt onsale; "" builds it
	ShimExe      string   // re-run as a JetStream server; "" means this executable
	OnsaleFlags  []string // more flags for both nodes
	// LoadClients, if above 0, buy from the owner for a second before each
	// kill and through it, so that the standby takes over a log that was
	// being written (entries it had not read yet, a recount).
	LoadClients int
	LogDir      string // "" keeps the logs in a temporary directory
	Log         io.Writer

	// beforeKill, in tests, runs just before each kill, with the standby's
	// log file.
	beforeKill func(owner, standby *fleetNode, standbyLog string) error
}

// FailoverRun is one kill -9 and its takeover, from the kill.
type FailoverRun struct {
	TotalMs      float64 `json:"total_ms"`   // to the first purchase the standby acknowledged
	LeaseMs      float64 `json:"lease_ms"`   // to the standby's "lease taken" log line
	RecoverMs    float64 `json:"recover_ms"` // the standby's engine recovery (its "state recovered" duration)
	AfterMs      float64 `json:"after_ms"`   // the rest: opening the log, the first purchase's round trip, polling
	RecoveredOrd int     `json:"orders"`     // orders the standby recovered
	Replayed     int     `json:"events_replayed"`
	// Hot: the standby followed the log (-fleet-follow) and caught up
	// before the kill, HotAfterMs after its start; StandbyRSSMB is its
	// resident memory then, just before the kill.
	Hot          bool    `json:"hot"`
	HotAfterMs   float64 `json:"hot_after_ms,omitempty"`
	StandbyRSSMB float64 `json:"standby_rss_mb,omitempty"`
	OwnerRSSMB   float64 `json:"owner_rss_mb,omitempty"` // the owner's, at the same moment
	// SlowRenewals are the renewals of the new owner's lease, from its
	// takeover to the end of the next run, that took over a twelfth of the
	// lease ("fleet: lease renewal slow"); LeaseLost whether it lost it.
	SlowRenewals int  `json:"slow_renewals"`
	LeaseLost    bool `json:"lease_lost,omitempty"`
	// LoadAcked: purchases the owner acknowledged under load (LoadClients)
	// in the second before the kill.
	LoadAcked int `json:"load_acked,omitempty"`
}

// FailoverBreakdown splits one recovery of the partition's log, measured
// in the harness's process through the same journal the nodes use.
type FailoverBreakdown struct {
	DownloadMs    float64 `json:"snapshot_download_ms"` // until its first chunk reached the restorer
	SnapshotBytes int64   `json:"snapshot_bytes"`
	LoadMs        float64 `json:"snapshot_load_ms"`    // download and restore, which overlap: until the replay starts
	RestoreMs     float64 `json:"snapshot_restore_ms"` // of LoadMs, restoring (in the restorer, and its finish)
	ReplayMs      float64 `json:"replay_ms"`
	Entries       int     `json:"entries_replayed"`
	CheckMs       float64 `json:"check_and_indexes_ms"` // after the replay: recount, indexes, the other shards
	TotalMs       float64 `json:"total_ms"`
}

// FailoverReport is what RunFailover measured.
type FailoverReport struct {
	Orders        int                `json:"orders"`
	PreloadS      float64            `json:"preload_s"`
	LeaseMs       float64            `json:"lease_ms_setting"`
	FirstStartMs  float64            `json:"first_start_ms"` // the first owner's start on the preloaded log
	Runs          []FailoverRun      `json:"runs"`
	MedianTotalMs float64            `json:"median_total_ms"`
	Failed        string             `json:"failed,omitempty"` // why the runs ended early
	Breakdown     *FailoverBreakdown `json:"breakdown,omitempty"`
	Machine       Machine            `json:"machine"`
}

const (
	failoverSale = "bigsale"
	failoverTier = "ga"
)

// RunFailover starts three JetStream servers, preloads partition 0 with
// one sale of cfg.Orders paid orders through the engine on the JetStream
// journal (its snapshots written as a node writes them), starts an owner
// and a standby, and cfg.Runs times kills the owner with kill -9 and
// measures until the standby acknowledges a purchase; the killed node
// comes back as the next standby. Last, it recovers the log once more in
// this process, timing each step.
func RunFailover(ctx context.Context, cfg FailoverConfig) (*FailoverReport, error) {
	if cfg.Orders < 1 || cfg.Orders > engine.StockPerTierMax/2 {
		return nil, fmt.Errorf("bench: failover orders must be 1..%d, not %d", engine.StockPerTierMax/2, cfg.Orders)
	}
	if cfg.Runs < 1 || cfg.Runs > 20 {
		return nil, fmt.Errorf("bench: failover runs must be 1..20, not %d", cfg.Runs)
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 2
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 3 * time.Second
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "failover: "+format+"\n", args...) }
	workDir, err := os.MkdirTemp("", "onsale-failover-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)
	logDir := cfg.LogDir
	if logDir == "" {
		logDir = filepath.Join(workDir, "logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	env := &Env{WorkDir: workDir, LogDir: logDir, RepoRoot: cfg.RepoRoot, OnsaleBinary: cfg.OnsaleBinary, ShimExe: cfg.ShimExe,
		AdminToken: randomHex(16), UserSecret: randomHex(32), PaymentSecret: randomHex(32),
		OnsaleFlags: append(slices.Clone(cfg.OnsaleFlags), "-shards", strconv.Itoa(cfg.Shards))}
	if env.ShimExe == "" {
		if env.ShimExe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if env.OnsaleBinary == "" {
		logf("building onsale")
		if env.OnsaleBinary, err = BuildOnsale(ctx, env.RepoRoot, workDir, false); err != nil {
			return nil, err
		}
	}
	rep := &FailoverReport{Orders: cfg.Orders, LeaseMs: ms(cfg.Lease), Machine: thisMachine()}
	logf("starting 3 JetStream servers")
	js, err := startJetStream(env, 3)
	if err != nil {
		return nil, err
	}
	defer js.stop()

	logf("preloading %d paid orders of one sale into partition 0 (%d shards)", cfg.Orders, cfg.Shards)
	began := time.Now()
	if err := preloadPartition(ctx, js.URL(), cfg.Shards, cfg.Orders, logw); err != nil {
		return nil, fmt.Errorf("bench: preload: %w", err)
	}
	rep.PreloadS = time.Since(began).Seconds()
	logf("preloaded in %.1fs", rep.PreloadS)

	shared := fleetNodeFlags(env, js.URL(), 1, cfg.Lease)
	var nodes [2]*fleetNode
	for i := range nodes {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		n := &fleetNode{name: fmt.Sprintf("onsale-node%d", i+1), addr: "127.0.0.1:" + strconv.Itoa(port)}
		if n.dir, err = os.MkdirTemp(workDir, "onsale-node-"); err != nil {
			return nil, err
		}
		if err := writeFleetSecrets(n.dir, env); err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	sys := &fleetSystem{} // for startNode
	defer func() {
		for _, n := range nodes {
			if n.p != nil {
				_ = n.p.stop(syscall.SIGKILL, time.Second)
			}
		}
	}()
	began = time.Now()
	if err := sys.startNode(env, nodes[0], shared); err != nil {
		return nil, err
	}
	if err := waitReady(nodes[0].p, nodes[0].addr); err != nil {
		return nil, err
	}
	rep.FirstStartMs = ms(time.Since(began))
	logf("owner %s ready %.0f ms after its start", nodes[0].name, rep.FirstStartMs)
	if err := sys.startNode(env, nodes[1], shared); err != nil {
		return nil, err
	}
	if err := waitPath(nodes[1].p, nodes[1].addr, "/healthz"); err != nil {
		return nil, err
	}
	owner, standby := nodes[0], nodes[1]
	runErr := takeovers(ctx, cfg, env, sys, shared, rep, owner, standby, logf)
	if len(rep.Runs) > 0 {
		totals := make([]float64, len(rep.Runs))
		for i, r := range rep.Runs {
			totals[i] = r.TotalMs
		}
		sort.Float64s(totals)
		rep.MedianTotalMs = totals[len(totals)/2]
	}
	if runErr != nil {
		rep.Failed = runErr.Error()
	}

	// Stop both nodes, then recover the partition once more here, timed.
	for _, n := range nodes {
		_ = n.p.stop(syscall.SIGKILL, time.Second)
	}
	logf("recovering the partition in the harness, timing each step")
	b, err := timedRecovery(js.URL(), cfg.Shards)
	rep.Breakdown = &b
	if err != nil {
		rep.Breakdown = nil
		return rep, errors.Join(runErr, err)
	}
	return rep, runErr
}

// ErrLeaseLostBeforeKill: the owner lost its lease (its renewals came
// later than the lease allows, on a machine too busy for it) and the
// standby took the partition before the harness killed the owner, so the
// run measured no failover. A longer lease (-fleet-lease) makes it rarer.
var ErrLeaseLostBeforeKill = errors.New("the owner lost its lease before the kill")

// takeovers kills the owner cfg.Runs times, each time measuring the
// standby's takeover and starting the killed node again as the standby.
func takeovers(ctx context.Context, cfg FailoverConfig, env *Env, sys *fleetSystem, shared []string, rep *FailoverReport,
	owner, standby *fleetNode, logf func(string, ...any)) error {
	users, err := MintUsers([]byte(env.UserSecret), 1+cfg.LoadClients, time.Now().Add(2*time.Hour))
	if err != nil {
		return err
	}
	auth := users.Auth[0] // "Bearer ..."
	var takenAt int64     // the offset in the owner's log of its takeover
	for run := range cfg.Runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logPath := filepath.Join(env.LogDir, standby.name+".log")
		// A hot standby is killed for once it has caught up (waiting at
		// most a minute: one that does not follow never says so).
		var r FailoverRun
		r.Hot, r.HotAfterMs = waitHot(ctx, standby, logPath, time.Minute)
		r.StandbyRSSMB, r.OwnerRSSMB = rssMB(standby.p.cmd.Process.Pid), rssMB(owner.p.cmd.Process.Pid)
		logOffset := fileSize(logPath)
		if run > 0 { // the renewals of the owner about to be killed, since it took over
			countRenewals(filepath.Join(env.LogDir, owner.name+".log"), takenAt, &rep.Runs[run-1])
		}
		takenAt = logOffset
		var load *failoverLoad
		if cfg.LoadClients > 0 {
			load = startFailoverLoad(owner, users.Auth[1:], run)
			time.Sleep(time.Second) // a second of purchases before the kill
		}
		if cfg.beforeKill != nil {
			if err := cfg.beforeKill(owner, standby, logPath); err != nil {
				load.stop()
				return fmt.Errorf("run %d: %w", run+1, err)
			}
		}
		// An owner whose renewals came too late has lost its lease and
		// exited already, and the standby owns the partition: killing it
		// now would time nothing.
		if done, err := owner.p.exited(); done {
			load.stop()
			return fmt.Errorf("run %d: %w (%s exited before the kill: %v)", run+1, ErrLeaseLostBeforeKill, owner.name, err)
		}
		_ = owner.p.cmd.Process.Kill()
		<-owner.p.done
		killed := time.Now()
		r.LoadAcked = load.stop()
		if err := firstPurchase(ctx, standby, auth, run); err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		r.TotalMs = ms(time.Since(killed))
		parseTakeover(logPath, logOffset, killed, &r)
		if r.LeaseMs == 0 { // taken between the check and the kill
			return fmt.Errorf("run %d: %w (%s logged no \"lease taken\" after the kill)", run+1, ErrLeaseLostBeforeKill, standby.name)
		}
		r.AfterMs = r.TotalMs - r.LeaseMs - r.RecoverMs
		rep.Runs = append(rep.Runs, r)
		logf("run %d: first purchase on the standby %.0f ms after kill -9 (lease taken after %.0f ms, recovery %.0f ms of %d orders, %d events replayed; hot %v, standby RSS %.0f MB)",
			run+1, r.TotalMs, r.LeaseMs, r.RecoverMs, r.RecoveredOrd, r.Replayed, r.Hot, r.StandbyRSSMB)
		// The killed node comes back as the standby.
		if err := sys.startNode(env, owner, shared); err != nil {
			return err
		}
		if err := waitPath(owner.p, owner.addr, "/healthz"); err != nil {
			return err
		}
		owner, standby = standby, owner
	}
	// The last owner's renewals since its takeover.
	if n := len(rep.Runs); n > 0 {
		countRenewals(filepath.Join(env.LogDir, owner.name+".log"), takenAt, &rep.Runs[n-1])
	}
	return nil
}

// waitHot waits until the standby's log says it follows the partition
// and has caught up ("fleet: standby: following"), and returns after how
// long from its start. A standby that does not follow (-fleet-follow=off)
// has not said it starts to within 5 s of waiting.
func waitHot(ctx context.Context, n *fleetNode, logPath string, timeout time.Duration) (bool, float64) {
	began := time.Now()
	deadline := began.Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var started, hot time.Time
		following := false
		scanLog(logPath, 0, func(t time.Time, msg string, _ []byte) {
			switch msg {
			case "starting":
				started, hot, following = t, time.Time{}, false
			case "fleet: standby: starting to follow":
				following = true
			case "fleet: standby: following":
				hot = t
			}
		})
		if !hot.IsZero() {
			return true, ms(hot.Sub(started))
		}
		if !following && time.Since(began) > 5*time.Second {
			return false, 0
		}
		if done, _ := n.p.exited(); done {
			return false, 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false, 0
}

// rssMB is a process's resident memory (VmRSS), in MB; 0 if unknown.
func rssMB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// countRenewals counts the slow renewals and a lost lease in a node's log
// from offset.
func countRenewals(path string, offset int64, r *FailoverRun) {
	scanLog(path, offset, func(_ time.Time, msg string, _ []byte) {
		switch msg {
		case "fleet: lease renewal slow":
			r.SlowRenewals++
		case "fleet: lease lost; this node stops answering for its partition":
			r.LeaseLost = true
		}
	})
}

// scanLog calls fn with each JSON line of a node's log from offset.
func scanLog(path string, offset int64, fn func(t time.Time, msg string, line []byte)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			fn(line.Time, line.Msg, sc.Bytes())
		}
	}
}

// failoverLoad buys from one node, a client per user, until stopped.
type failoverLoad struct {
	stopped atomic.Bool
	acked   atomic.Int64
	ended   sync.WaitGroup
}

func startFailoverLoad(n *fleetNode, auths []string, run int) *failoverLoad {
	l := &failoverLoad{}
	for i, auth := range auths {
		l.ended.Go(func() {
			c, err := api.NewClient(api.ClientConfig{Addr: n.addr, MaxConns: 1, Timeout: time.Second})
			if err != nil {
				return
			}
			defer c.Close()
			for k := 0; k < 1_000_000 && !l.stopped.Load(); k++ {
				if res := c.Purchase(auth, failoverSale, failoverTier, 1, fmt.Sprintf("load-%d-%d-%d", run, i, k), false); res.OK() {
					l.acked.Add(1)
				} else {
					time.Sleep(time.Millisecond) // the owner is gone: until stopped
				}
			}
		})
	}
	return l
}

// stop stops the load and returns how many purchases were acknowledged.
func (l *failoverLoad) stop() int {
	if l == nil {
		return 0
	}
	l.stopped.Store(true)
	l.ended.Wait()
	return int(l.acked.Load())
}

// firstPurchase sends purchases to n until one is acknowledged (2xx).
func firstPurchase(ctx context.Context, n *fleetNode, auth string, run int) error {
	c, err := api.NewClient(api.ClientConfig{Addr: n.addr, MaxConns: 1, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; ; i++ {
		res := c.Purchase(auth, failoverSale, failoverTier, 1, fmt.Sprintf("failover-%d-%d", run, i), false)
		if res.OK() {
			return nil
		}
		if done, err := n.p.exited(); done {
			return fmt.Errorf("%s exited while taking over (%v); see its log", n.name, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s acknowledged no purchase within 2 minutes of the kill (last answer %d %s)", n.name, res.Status, res.Code)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// parseTakeover reads the standby's log from offset: when it took the
// lease, how long its recovery took.
func parseTakeover(path string, offset int64, killed time.Time, r *FailoverRun) {
	scanLog(path, offset, func(t time.Time, msg string, b []byte) {
		switch msg {
		case "fleet: lease taken":
			r.LeaseMs = ms(t.Sub(killed))
		case "state recovered":
			var line struct {
				Duration int64 `json:"duration"` // nanoseconds
				Orders   int   `json:"orders"`
				Replayed int   `json:"events_replayed"`
			}
			if json.Unmarshal(b, &line) == nil {
				r.RecoverMs, r.RecoveredOrd, r.Replayed = float64(line.Duration)/1e6, line.Orders, line.Replayed
			}
		}
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// preloadPartition opens partition 0's journal (onsale_p0) and an engine
// on it, as a fleet node does, and buys and pays n orders of one sale from
// many goroutines; the engine writes its snapshots as it would on a node.
func preloadPartition(ctx context.Context, natsURL string, shards, n int, logw io.Writer) error {
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	j, err := jetstream.Open(ctx, jetstream.Options{Conn: nc, Name: "onsale_p0", Replicas: 3})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.Open(engine.Config{Journal: j, Shards: shards, Logger: logger, OnFatal: func(error) {}})
	if err != nil {
		return err
	}
	defer eng.Close()
	now := time.Now()
	const perUser = 64
	_, _, err = eng.PutSale(ctx, engine.SaleConfig{
		ID: failoverSale, Name: "A big sale", Currency: "EUR",
		OpensAtMs: now.Add(-time.Minute).UnixMilli(), ClosesAtMs: now.Add(30 * 24 * time.Hour).UnixMilli(),
		HoldMs: engine.HoldMsMax, PerUserLimit: 1000,
		Tiers: []engine.TierConfig{{ID: failoverTier, Name: "General", PriceCents: 1000, Stock: 2 * n}},
	})
	if err != nil {
		return err
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 512)
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Fprintf(logw, "failover: preload %d/%d orders\n", done.Load(), n)
			}
		}
	}()
	for range 512 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := preloadPaid(ctx, eng, i, perUser); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	close(errs)
	return <-errs
}

// preloadPaid buys order i and pays it, retrying while a shard is full.
func preloadPaid(ctx context.Context, eng *engine.Engine, i int64, perUser int) error {
	req := engine.PurchaseRequest{SaleID: failoverSale, TierID: failoverTier, Quantity: 1,
		UserID: fmt.Sprintf("p%d", i/int64(perUser)), IdempotencyKey: fmt.Sprintf("k%d", i)}
	for range 1000 {
		o, _, err := eng.Purchase(ctx, req)
		if errors.Is(err, engine.ErrOverloaded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("order %d: %w", i, err)
		}
		for range 1000 {
			_, _, err = eng.ApplyPayment(ctx, engine.Payment{EventID: "pay-" + o.ID, OrderID: o.ID, Succeeded: true,
				AmountCents: o.AmountCents, Currency: "EUR"})
			if !errors.Is(err, engine.ErrOverloaded) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("paying order %d: %w", i, err)
		}
		return nil
	}
	return fmt.Errorf("order %d: overloaded 1000 times", i)
}

// timedJournal times what recovery asks of a journal.
type timedJournal struct {
	engine.Journal
	mu     sync.Mutex
	shards map[int]*shardTimes
}

type shardTimes struct {
	loadStart, firstChunk, loadEnd, replayStart, replayEnd time.Time
	inRestorer                                             time.Duration
	bytes                                                  int64
	entries                                                int
}

func (t *timedJournal) times(shard int) *shardTimes {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.shards[shard]
	if s == nil {
		s = &shardTimes{}
		t.shards[shard] = s
	}
	return s
}

func (t *timedJournal) LoadSnapshot(shard int, fn func([]byte) error) (uint64, bool, error) {
	s := t.times(shard)
	s.loadStart = time.Now()
	seq, found, err := t.Journal.LoadSnapshot(shard, func(c []byte) error {
		if s.firstChunk.IsZero() {
			s.firstChunk = time.Now()
		}
		s.bytes += int64(len(c))
		start := time.Now()
		defer func() { s.inRestorer += time.Since(start) }()
		return fn(c)
	})
	s.loadEnd = time.Now()
	return seq, found, err
}

func (t *timedJournal) Replay(shard int, after uint64, fn func(uint64, []byte) error) error {
	s := t.times(shard)
	s.replayStart = time.Now()
	err := t.Journal.Replay(shard, after, func(seq uint64, e []byte) error {
		s.entries++
		return fn(seq, e)
	})
	s.replayEnd = time.Now()
	return err
}

// timedRecovery opens partition 0's log as a taking-over node does
// (fencing it) and recovers the engine, timing the slowest shard's steps.
func timedRecovery(natsURL string, shards int) (FailoverBreakdown, error) {
	var b FailoverBreakdown
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		return b, err
	}
	defer nc.Close()
	start := time.Now()
	j, err := jetstream.Open(context.Background(), jetstream.Options{Conn: nc, Name: "onsale_p0", Replicas: 3})
	if err != nil {
		return b, err
	}
	tj := &timedJournal{Journal: j, shards: map[int]*shardTimes{}}
	eng, err := engine.Open(engine.Config{Journal: tj, Shards: shards, Logger: slog.New(slog.DiscardHandler), OnFatal: func(error) {}})
	if err != nil {
		return b, err
	}
	end := time.Now()
	eng.Close()
	// The slowest shard is the one holding the big sale.
	var big *shardTimes
	for _, s := range tj.shards {
		if big == nil || s.replayEnd.Sub(s.loadStart) > big.replayEnd.Sub(big.loadStart) {
			big = s
		}
	}
	if big == nil || big.firstChunk.IsZero() {
		return b, errors.New("bench: the partition has no snapshot")
	}
	b.DownloadMs = ms(big.firstChunk.Sub(big.loadStart))
	b.SnapshotBytes = big.bytes
	b.LoadMs = ms(big.replayStart.Sub(big.loadStart))
	b.RestoreMs = ms(big.inRestorer + big.replayStart.Sub(big.loadEnd))
	b.ReplayMs = ms(big.replayEnd.Sub(big.replayStart))
	b.Entries = big.entries
	b.CheckMs = ms(end.Sub(big.replayEnd))
	b.TotalMs = ms(end.Sub(start))
	return b, nil
}

// Text writes the report.
func (r *FailoverReport) Text(w io.Writer) {
	fmt.Fprintf(w, "\nfailover of a partition holding one sale of %d paid orders (lease %.0f ms; %d CPUs, %s)\n",
		r.Orders, r.LeaseMs, r.Machine.CPUs, r.Machine.GoVersion)
	fmt.Fprintf(w, "preload %.1fs; the first owner was ready %.0f ms after its start\n", r.PreloadS, r.FirstStartMs)
	fmt.Fprintln(w, "run  kill→first ack ms  kill→lease taken ms  recovery ms  rest ms  orders  events replayed  hot  standby RSS MB  owner RSS MB  slow renewals")
	for i, run := range r.Runs {
		lost := ""
		if run.LeaseLost {
			lost = " (lease lost)"
		}
		if run.LoadAcked > 0 {
			lost += fmt.Sprintf(" (%d purchases acknowledged under load before the kill)", run.LoadAcked)
		}
		fmt.Fprintf(w, "%3d  %17.0f  %19.0f  %11.0f  %7.0f  %6d  %15d  %3v  %14.0f  %12.0f  %13d%s\n", i+1, run.TotalMs, run.LeaseMs, run.RecoverMs,
			run.AfterMs, run.RecoveredOrd, run.Replayed, run.Hot, run.StandbyRSSMB, run.OwnerRSSMB, run.SlowRenewals, lost)
	}
	if r.Failed != "" {
		fmt.Fprintf(w, "FAILED after %d runs: %s\n", len(r.Runs), r.Failed)
	}
	if len(r.Runs) > 0 {
		fmt.Fprintf(w, "median kill→first acknowledged purchase: %.0f ms of %d runs\n", r.MedianTotalMs, len(r.Runs))
	}
	b := r.Breakdown
	if b == nil {
		return
	}
	fmt.Fprintf(w, "one recovery of the partition, timed in the harness: snapshot %.0f ms (%.1f MB; first chunk after %.0f ms; restoring %.0f ms of it, overlapping the download), replay %.0f ms (%d entries), recount and indexes %.0f ms; %.0f ms in all\n",
		b.LoadMs, float64(b.SnapshotBytes)/1e6, b.DownloadMs, b.RestoreMs, b.ReplayMs, b.Entries, b.CheckMs, b.TotalMs)
}
