package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/onsale/onsale/bench/api"
)

// A fleet run (Config.Fleet > 0, README "Running a fleet") starts three
// JetStream servers, each a process of its own (the harness re-runs
// itself as one, see MaybeRunShim), N onsale fleet nodes owning one
// partition each plus a standby, and HAProxy in front with the shipped
// deploy/haproxy/haproxy.cfg when it is installed (else a round-robin TCP
// proxy inside the harness; a node forwards a sale it does not own).

// jetStreamEnv carries a jetStreamConfig to a re-run of the harness.
const jetStreamEnv = "ONSALE_BENCH_JETSTREAM"

// jetStreamConfig is one JetStream server of a cluster on loopback.
type jetStreamConfig struct {
	Name       string   `json:"name"`
	Port       int      `json:"port"`
	RoutePort  int      `json:"route_port"`
	Routes     []string `json:"routes"`
	StoreDir   string   `json:"store_dir"`
	SyncAlways bool     `json:"sync_always"`
}

// runJetStream serves one JetStream server until SIGTERM or SIGINT.
func runJetStream(raw string) error {
	var c jetStreamConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return fmt.Errorf("bad config: %w", err)
	}
	o := &server.Options{
		ServerName: c.Name, Host: "127.0.0.1", Port: c.Port,
		JetStream: true, StoreDir: c.StoreDir, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 8 << 30,
		SyncAlways: c.SyncAlways, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "onsale-bench", Host: "127.0.0.1", Port: c.RoutePort},
		Routes:  server.RoutesFromStr(strings.Join(c.Routes, ",")),
	}
	s, err := server.NewServer(o)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		return errors.New("not ready within 30s")
	}
	fmt.Fprintf(os.Stderr, "jetstream %s ready on 127.0.0.1:%d\n", c.Name, c.Port)
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// jsCluster is three JetStream server processes.
type jsCluster struct {
	procs []*proc
	dirs  []string
	urls  []string
}

// startJetStream starts n servers routed to each other and waits until
// their meta leader answers.
func startJetStream(env *Env, n int) (*jsCluster, error) {
	if env.ShimExe == "" {
		return nil, errors.New("bench: no executable to re-run as a JetStream server (Env.ShimExe)")
	}
	ports := make([]int, 2*n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	c := &jsCluster{}
	for i := range n {
		cfg := jetStreamConfig{Name: fmt.Sprintf("js%d", i), Port: ports[i], RoutePort: ports[n+i], Routes: routes,
			StoreDir: filepath.Join(env.WorkDir, fmt.Sprintf("jetstream%d", i))}
		raw, _ := json.Marshal(cfg)
		p, err := startProc(cfg.Name, filepath.Join(env.LogDir, cfg.Name+".log"), []string{jetStreamEnv + "=" + string(raw)}, nil, env.ShimExe)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.dirs = append(c.dirs, cfg.StoreDir)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", cfg.Port))
	}
	for i, p := range c.procs {
		addr := strings.TrimPrefix(c.urls[i], "nats://")
		if err := waitFor(p, readyTimeout, func() bool { return dialable(addr) }); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitMeta(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// URL is every server's client URL, comma-separated.
func (c *jsCluster) URL() string { return strings.Join(c.urls, ",") }

// waitMeta waits until JetStream answers account requests (a meta leader
// is elected) and an R3 stream can be placed.
func (c *jsCluster) waitMeta() error {
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("bench: cannot connect to the JetStream cluster: %w", err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{Name: "bench_probe", Subjects: []string{"bench.probe"},
			Replicas: len(c.procs), Storage: natsjs.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "bench_probe")
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the JetStream cluster was not ready within %s: %w", readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *jsCluster) pids() []int { return pidsOf(c.procs...) }

func (c *jsCluster) stop() error {
	if c == nil {
		return nil
	}
	return stopProcs(c.procs...)
}

func dialable(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// fleetNode is one onsale process of a fleet.
type fleetNode struct {
	name      string
	addr, dir string
	partition int // the partition it is started to own first; -1 the standby
	p         *proc
}

// fleetSystem is onsale as a fleet of Nodes partitions plus a standby.
type fleetSystem struct {
	partitions int
	lease      time.Duration
	js         *jsCluster
	nodes      []*fleetNode
	haproxy    *proc
	rr         *rrProxy
	Front      string // "haproxy" or "round-robin"
}

func newFleetSystem(partitions int) *fleetSystem {
	return &fleetSystem{partitions: partitions, lease: 3 * time.Second}
}

func (s *fleetSystem) Name() string  { return SysOnsale }
func (s *fleetSystem) Audited() bool { return true }

func (s *fleetSystem) Pids() []int {
	var pids []int
	if s.js != nil {
		pids = s.js.pids()
	}
	for _, n := range s.nodes {
		pids = append(pids, pidsOf(n.p)...)
	}
	return append(pids, pidsOf(s.haproxy)...)
}

func (s *fleetSystem) DataDirs() []string {
	var dirs []string
	if s.js != nil {
		dirs = append(dirs, s.js.dirs...)
	}
	for _, n := range s.nodes {
		dirs = append(dirs, n.dir)
	}
	return dirs
}

func (s *fleetSystem) Start(ctx context.Context, env *Env) (string, error) {
	if env.OnsaleBinary == "" {
		bin, err := BuildOnsale(ctx, env.RepoRoot, env.WorkDir, false)
		if err != nil {
			return "", err
		}
		env.OnsaleBinary = bin
	}
	var err error
	if s.js, err = startJetStream(env, 3); err != nil {
		return "", err
	}
	for i := range s.partitions + 1 {
		n := &fleetNode{name: fmt.Sprintf("onsale-node%d", i+1), partition: i}
		if i == s.partitions {
			n.partition = -1
		}
		port, err := freePort()
		if err != nil {
			return "", err
		}
		n.addr = "127.0.0.1:" + strconv.Itoa(port)
		if n.dir, err = os.MkdirTemp(env.WorkDir, "onsale-node-"); err != nil {
			return "", err
		}
		if err := writeFleetSecrets(n.dir, env); err != nil {
			return "", err
		}
		s.nodes = append(s.nodes, n)
	}
	for _, n := range s.nodes {
		if err := s.startNode(env, n, fleetNodeFlags(env, s.js.URL(), s.partitions, s.lease)); err != nil {
			return "", err
		}
		if n.partition >= 0 {
			err = waitReady(n.p, n.addr)
		} else {
			err = waitPath(n.p, n.addr, "/healthz")
		}
		if err != nil {
			return "", err
		}
	}
	return s.startFront(env)
}

// fleetNodeFlags are the flags every node of a fleet shares; -shards is
// pinned (a partition's log records its shard count) unless the run's
// onsale flags set it.
func fleetNodeFlags(env *Env, natsURL string, partitions int, lease time.Duration) []string {
	flags := []string{"-nats", natsURL, "-fleet-partitions", strconv.Itoa(partitions), "-fleet-lease", lease.String(),
		"-admin-token", env.AdminToken, "-user-secret", env.UserSecret, "-payment-secret", env.PaymentSecret}
	hasShards := false
	for _, f := range env.OnsaleFlags {
		hasShards = hasShards || f == "-shards" || strings.HasPrefix(f, "-shards=")
	}
	if !hasShards {
		flags = append(flags, "-shards", "2")
	}
	return append(flags, env.OnsaleFlags...)
}

func (s *fleetSystem) startNode(env *Env, n *fleetNode, shared []string) error {
	prefer := max(n.partition, 0)
	args := append([]string{"-addr", n.addr, "-data", n.dir, "-fleet-partition", strconv.Itoa(prefer)}, shared...)
	var err error
	n.p, err = startProc(n.name, filepath.Join(env.LogDir, n.name+".log"), nil, nil, env.OnsaleBinary, args...)
	return err
}

// writeFleetSecrets gives every node the same secrets.json: its data_key
// signs tickets and seeds draws, so it must be the fleet's, not a node's.
func writeFleetSecrets(dir string, env *Env) error {
	raw, _ := json.Marshal(map[string]string{
		"admin_token": env.AdminToken, "user_secret": env.UserSecret, "payment_secret": env.PaymentSecret,
		"door_token": "bench-door-" + env.AdminToken, "data_key": "bench-fleet-" + env.UserSecret,
	})
	return os.WriteFile(filepath.Join(dir, "secrets.json"), raw, 0o600)
}

// waitPath waits for GET path to answer 200.
func waitPath(p *proc, addr, path string) error {
	c, err := api.NewClient(api.ClientConfig{Addr: addr, MaxConns: 1, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	return waitFor(p, readyTimeout, func() bool { return c.Status(path) == 200 })
}

// startFront starts HAProxy with the shipped configuration, its server
// list rewritten for this fleet's nodes, or the round-robin proxy.
func (s *fleetSystem) startFront(env *Env) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		s.Front = "round-robin"
		s.rr, err = startRoundRobin(addr, s.nodeAddrs())
		return addr, err
	}
	shipped, err := os.ReadFile(filepath.Join(env.RepoRoot, "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		return "", err
	}
	cfg := haproxyConfig(shipped, len(s.nodes))
	path := filepath.Join(env.WorkDir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return "", err
	}
	procEnv := []string{"ONSALE_PROXY_ADDR=" + addr}
	for i, n := range s.nodes {
		procEnv = append(procEnv, fmt.Sprintf("ONSALE_NODE%d=%s", i+1, n.addr))
	}
	s.Front = "haproxy"
	if s.haproxy, err = startProc("haproxy", filepath.Join(env.LogDir, "haproxy.log"), procEnv, nil, bin, "-db", "-f", path); err != nil {
		return "", err
	}
	return addr, waitPath(s.haproxy, addr, "/healthz")
}

// haproxyConfig is the shipped configuration with its three server lines
// replaced by one per node (ONSALE_NODE1, ONSALE_NODE2, ...).
func haproxyConfig(shipped []byte, nodes int) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(shipped))
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "server node") {
			continue
		}
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	for i := range nodes {
		fmt.Fprintf(&b, "    server node%d \"${ONSALE_NODE%d}\"\n", i+1, i+1)
	}
	return b.Bytes()
}

func (s *fleetSystem) nodeAddrs() []string {
	var addrs []string
	for _, n := range s.nodes {
		addrs = append(addrs, n.addr)
	}
	return addrs
}

func (s *fleetSystem) Stop() error {
	var err error
	if s.haproxy != nil {
		// SIGUSR1 is HAProxy's soft stop (exit 0); SIGTERM's hard stop
		// ends it by the signal.
		err = s.haproxy.stop(syscall.SIGUSR1, 5*time.Second)
	}
	if s.rr != nil {
		s.rr.close()
	}
	var ps []*proc
	for _, n := range s.nodes {
		if n.p != nil {
			ps = append(ps, n.p)
		}
	}
	if nerr := stopProcs(ps...); err == nil {
		err = nerr
	}
	if jerr := s.js.stop(); err == nil {
		err = jerr
	}
	return err
}

// createdByNode reads each node's count of purchases it created
// (onsale_purchases_total{outcome="created"}: counted where the purchase
// was decided, so a forwarded one counts at its owner); -1 for a node that
// did not answer.
func (s *fleetSystem) createdByNode() []float64 {
	out := make([]float64, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = -1
		c, err := api.NewClient(api.ClientConfig{Addr: n.addr, MaxConns: 1, Timeout: 2 * time.Second})
		if err != nil {
			continue
		}
		body, status, err := c.Get("/metrics")
		c.Close()
		if err != nil || status != 200 {
			continue
		}
		out[i] = metricValue(body, `onsale_purchases_total{outcome="created"}`)
	}
	return out
}

// metricValue is the value of one exposition line's series; 0 if absent.
func metricValue(body []byte, series string) float64 {
	for line := range bytes.Lines(body) {
		rest, ok := bytes.CutPrefix(line, []byte(series+" "))
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
		if err == nil {
			return v
		}
	}
	return 0
}

// FleetNodeResult is one node's share of a fleet run's measured phase.
type FleetNodeResult struct {
	Node            string  `json:"node"`
	Addr            string  `json:"addr"`
	Partition       int     `json:"partition"` // -1: the standby
	PurchasesPerSec float64 `json:"purchases_per_sec"`
}

// fleetMeter reads createdByNode at the measured phase's start and end.
type fleetMeter struct {
	s       *fleetSystem
	started chan struct{}
	quit    chan struct{}
	before  []float64
	at      time.Time
}

func newFleetMeter(s *fleetSystem, measureStart time.Time) *fleetMeter {
	m := &fleetMeter{s: s, started: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(m.started)
		t := time.NewTimer(time.Until(measureStart))
		defer t.Stop()
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		m.before, m.at = s.createdByNode(), time.Now()
	}()
	return m
}

func (m *fleetMeter) finish() []FleetNodeResult {
	close(m.quit)
	<-m.started
	if m.before == nil {
		return nil
	}
	after := m.s.createdByNode()
	secs := time.Since(m.at).Seconds()
	var out []FleetNodeResult
	for i, n := range m.s.nodes {
		r := FleetNodeResult{Node: n.name, Addr: n.addr, Partition: n.partition, PurchasesPerSec: -1}
		if m.before[i] >= 0 && after[i] >= 0 && secs > 0 {
			r.PurchasesPerSec = (after[i] - m.before[i]) / secs
		}
		out = append(out, r)
	}
	return out
}

// rrProxy spreads connections over the nodes in turn, when HAProxy is not
// installed; a node forwards requests for sales it does not own.
type rrProxy struct {
	ln    net.Listener
	addrs []string
	wg    sync.WaitGroup
	mu    sync.Mutex
	next  int
	conns map[net.Conn]struct{}
}

func startRoundRobin(addr string, nodes []string) (*rrProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &rrProxy{ln: ln, addrs: nodes, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *rrProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.addrs[p.next%len(p.addrs)]
		p.next++
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, target) })
	}
}

func (p *rrProxy) pipe(c net.Conn, target string) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	c.Close() // ends the other direction's copy
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *rrProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
