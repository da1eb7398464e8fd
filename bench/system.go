package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/onsale/onsale/bench/api"
	"github.com/onsale/onsale/bench/shim"
)

// System names, in the order a default run measures them.
const (
	SysOnsale       = "onsale"
	SysCeiling      = "ceiling"
	SysRedis        = "redis"
	SysRedisDurable = "redis-durable"
	SysPostgres     = "postgres"
)

// AllSystems is the default comparison.
var AllSystems = []string{SysOnsale, SysCeiling, SysRedis, SysRedisDurable, SysPostgres}

// Env is what systems share within one run.
type Env struct {
	WorkDir       string // temporary; each system makes its data directory in it
	LogDir        string // each system's output goes to <LogDir>/<name>.log
	AdminToken    string
	UserSecret    string
	PaymentSecret string
	RepoRoot      string   // the onsale module, built with go build
	OnsaleBinary  string   // prebuilt onsale, or "" to build it
	OnsaleFlags   []string // more flags for onsale (shards, batch size, ...)
	OnsalePprof   bool     // build onsale with pprof served on a side port
	ShimExe       string   // a binary that calls MaybeRunShim first (the harness itself)
	RedisConns    int      // connections of the Redis shim to Redis
	PostgresConns int      // connections of the PostgreSQL shim to PostgreSQL
	// CeilingPurchase is the ceiling's answer to a purchase
	// (shim.CeilingSoldOut or shim.CeilingCreated).
	CeilingPurchase string
	Payer           *api.Payer // pays through a provider (Config.PayVia); nil: the generic webhook
}

// System is one server under test. Start brings it up on a loopback port
// and returns its address; Stop takes it down.
type System interface {
	Name() string
	Start(ctx context.Context, env *Env) (addr string, err error)
	Pids() []int
	DataDirs() []string
	Stop() error
	// Audited says whether the audit applies: the ceiling answers fixed
	// bodies and has nothing to audit.
	Audited() bool
}

// NewSystem returns the named system.
func NewSystem(name string) (System, error) {
	switch name {
	case SysOnsale:
		return &onsaleSystem{}, nil
	case SysCeiling:
		return &shimSystem{name: name, kind: "ceiling"}, nil
	case SysRedis:
		return &shimSystem{name: name, kind: "redis", backend: &redisBackend{durable: false}}, nil
	case SysRedisDurable:
		return &shimSystem{name: name, kind: "redis", backend: &redisBackend{durable: true}}, nil
	case SysPostgres:
		return &shimSystem{name: name, kind: "postgres", backend: &postgresBackend{}}, nil
	case SysExternal:
		return &externalSystem{}, nil
	}
	return nil, fmt.Errorf("bench: unknown system %q (want one of %v)", name, AllSystems)
}

// readyTimeout bounds a server's start-up.
const readyTimeout = 60 * time.Second

// stopGrace bounds a server's graceful stop.
const stopGrace = 30 * time.Second

// onsaleSystem is onsale built from the tree, on a fresh data directory.
type onsaleSystem struct {
	p         *proc
	data      string
	pprofAddr string // profiling builds only
}

func (s *onsaleSystem) Name() string       { return SysOnsale }
func (s *onsaleSystem) Audited() bool      { return true }
func (s *onsaleSystem) DataDirs() []string { return []string{s.data} }
func (s *onsaleSystem) Pids() []int        { return pidsOf(s.p) }

// BuildOnsale builds the onsale binary from repoRoot into dir. With
// pprof, the build gets one more file through go build -overlay (the tree
// is not touched): it serves net/http/pprof on $ONSALE_BENCH_PPROF, so
// that the harness can take a CPU profile of onsale under load.
func BuildOnsale(ctx context.Context, repoRoot, dir string, pprof bool) (string, error) {
	bin := filepath.Join(dir, "onsale")
	args := []string{"build", "-o", bin}
	if pprof {
		bin += "-pprof"
		src := filepath.Join(dir, "bench_pprof.go")
		overlay := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(src, []byte(pprofOverlaySource), 0o644); err != nil {
			return "", err
		}
		b, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(repoRoot, "zz_bench_pprof.go"): src}})
		if err := os.WriteFile(overlay, b, 0o644); err != nil {
			return "", err
		}
		args = []string{"build", "-overlay", overlay, "-o", bin}
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build onsale in %s: %w\n%s", repoRoot, err, out)
	}
	return bin, nil
}

// pprofOverlaySource is added to package main of profiling builds only.
const pprofOverlaySource = `package main

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("ONSALE_BENCH_PPROF")
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		panic("bench pprof: " + err.Error())
	}
	go http.Serve(l, nil)
}
`

// pprofEnv names the address a profiling build serves pprof on.
const pprofEnv = "ONSALE_BENCH_PPROF"

func (s *onsaleSystem) Start(ctx context.Context, env *Env) (string, error) {
	if env.OnsaleBinary == "" {
		bin, err := BuildOnsale(ctx, env.RepoRoot, env.WorkDir, env.OnsalePprof)
		if err != nil {
			return "", err
		}
		env.OnsaleBinary = bin
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.data, err = os.MkdirTemp(env.WorkDir, "onsale-data-")
	if err != nil {
		return "", err
	}
	var procEnv []string
	if env.OnsalePprof {
		pport, err := freePort()
		if err != nil {
			return "", err
		}
		s.pprofAddr = "127.0.0.1:" + strconv.Itoa(pport)
		procEnv = append(procEnv, pprofEnv+"="+s.pprofAddr)
	}
	args := append([]string{"-addr", addr, "-data", s.data, "-admin-token", env.AdminToken,
		"-user-secret", env.UserSecret, "-payment-secret", env.PaymentSecret}, env.OnsaleFlags...)
	s.p, err = startProc(SysOnsale, filepath.Join(env.LogDir, SysOnsale+".log"), procEnv, nil, env.OnsaleBinary, args...)
	if err != nil {
		return "", err
	}
	return addr, waitReady(s.p, addr)
}

func (s *onsaleSystem) Stop() error { return stopProcs(s.p) }

// waitReady waits for GET /readyz to answer 200.
func waitReady(p *proc, addr string) error {
	c, err := api.NewClient(api.ClientConfig{Addr: addr, MaxConns: 1, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	return waitFor(p, readyTimeout, func() bool { return c.Status("/readyz") == 200 })
}

func pidsOf(ps ...*proc) []int {
	var pids []int
	for _, p := range ps {
		if p != nil {
			pids = append(pids, p.pid())
		}
	}
	return pids
}

// stopProcs stops ps in order with SIGTERM and joins their errors.
func stopProcs(ps ...*proc) error {
	var first error
	for _, p := range ps {
		if p == nil {
			continue
		}
		if err := p.stop(syscall.SIGTERM, stopGrace); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// backend is a database a shim stands in front of.
type backend interface {
	start(ctx context.Context, env *Env, cfg *shim.Config) error
	proc() *proc
	dataDir() string
	stop() error
}

// shimSystem is a shim process (the harness binary re-run as a shim) and
// the database it uses, if any.
type shimSystem struct {
	name    string
	kind    string
	backend backend
	p       *proc
}

func (s *shimSystem) Name() string  { return s.name }
func (s *shimSystem) Audited() bool { return s.kind != "ceiling" }

func (s *shimSystem) Pids() []int {
	if s.backend != nil {
		return pidsOf(s.p, s.backend.proc())
	}
	return pidsOf(s.p)
}

func (s *shimSystem) DataDirs() []string {
	if s.backend != nil {
		return []string{s.backend.dataDir()}
	}
	return nil
}

// shimEnv carries a shim's JSON config to the re-run harness binary.
const shimEnv = "ONSALE_BENCH_SHIM"

func (s *shimSystem) Start(ctx context.Context, env *Env) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cfg := shim.Config{
		Kind: s.kind, Addr: "127.0.0.1:" + strconv.Itoa(port),
		AdminToken: env.AdminToken, UserSecret: env.UserSecret, PaymentSecret: env.PaymentSecret,
		RedisConns: env.RedisConns, PostgresConns: env.PostgresConns,
	}
	if s.kind == "ceiling" {
		cfg.CeilingPurchase = env.CeilingPurchase
	}
	if s.backend != nil {
		if err := s.backend.start(ctx, env, &cfg); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(&cfg)
	if err != nil {
		return "", err
	}
	s.p, err = startProc("shim-"+s.name, filepath.Join(env.LogDir, s.name+"-shim.log"),
		[]string{shimEnv + "=" + string(b)}, nil, env.ShimExe)
	if err != nil {
		return "", err
	}
	return cfg.Addr, waitReady(s.p, cfg.Addr)
}

func (s *shimSystem) Stop() error {
	err := stopProcs(s.p)
	if s.backend != nil {
		if berr := s.backend.stop(); err == nil {
			err = berr
		}
	}
	return err
}

// MaybeRunShim runs a shim and exits when the process was started as one
// by the harness (ONSALE_BENCH_SHIM set); otherwise it returns at once.
// Call it first thing in main, and in TestMain of tests that start shims.
func MaybeRunShim() {
	if v := os.Getenv(jetStreamEnv); v != "" { // a fleet run's JetStream server (fleet.go)
		if err := runJetStream(v); err != nil {
			fmt.Fprintln(os.Stderr, "jetstream:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	v := os.Getenv(shimEnv)
	if v == "" {
		return
	}
	var cfg shim.Config
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shim: bad config:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := shim.Run(ctx, cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shim:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// redisBackend is a redis-server on a loopback port in a temporary
// directory: persistence off, or AOF with appendfsync always.
type redisBackend struct {
	durable bool
	p       *proc
	dir     string
}

func (r *redisBackend) proc() *proc     { return r.p }
func (r *redisBackend) dataDir() string { return r.dir }

func (r *redisBackend) start(ctx context.Context, env *Env, cfg *shim.Config) error {
	bin, err := findBinary("redis-server", "/usr/sbin", "/usr/local/sbin")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	if r.dir, err = os.MkdirTemp(env.WorkDir, "redis-"); err != nil {
		return err
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--daemonize", "no", "--protected-mode", "yes", "--save", ""}
	name := SysRedis
	if r.durable {
		name = SysRedisDurable
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.p, err = startProc(name+"-server", filepath.Join(env.LogDir, name+"-server.log"), nil, nil, bin, args...); err != nil {
		return err
	}
	cfg.RedisAddr = "127.0.0.1:" + strconv.Itoa(port)
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, MaxRetries: -1})
	defer rdb.Close()
	return waitFor(r.p, readyTimeout, func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return rdb.Ping(pctx).Err() == nil
	})
}

func (r *redisBackend) stop() error {
	if r.p == nil {
		return nil
	}
	return r.p.stop(syscall.SIGTERM, stopGrace)
}

// postgresBackend is a PostgreSQL cluster made by initdb in a temporary
// directory, started on a loopback port with its socket in that directory,
// synchronous_commit on. As root it runs as the "postgres" user, since
// PostgreSQL refuses to run as root.
type postgresBackend struct {
	p   *proc
	dir string
}

func (pg *postgresBackend) proc() *proc     { return pg.p }
func (pg *postgresBackend) dataDir() string { return pg.dir }

var postgresBinDirs = []string{"/usr/lib/postgresql/*/bin"}

func (pg *postgresBackend) start(ctx context.Context, env *Env, cfg *shim.Config) error {
	postgres, err := findBinary("postgres", postgresBinDirs...)
	if err != nil {
		return err
	}
	initdb, err := findBinary("initdb", filepath.Dir(postgres))
	if err != nil {
		return err
	}
	cred, err := postgresCredential()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(env.WorkDir, "postgres-")
	if err != nil {
		return err
	}
	pg.dir = filepath.Join(root, "data")
	sock := filepath.Join(root, "sock")
	for _, d := range []string{root, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("cannot hand %s to the postgres user: %w", d, err)
			}
		}
	}
	// The work directory must be traversable by the postgres user.
	if cred != nil {
		for d := filepath.Dir(root); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
					return fmt.Errorf("cannot open %s to the postgres user: %w", d, err)
				}
			}
			if d == filepath.Clean(env.WorkDir) {
				break
			}
		}
	}
	logPath := filepath.Join(env.LogDir, SysPostgres+"-server.log")
	initProc, err := startProc("initdb", logPath, nil, cred, initdb,
		"-D", pg.dir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return err
	}
	<-initProc.done
	if initProc.err != nil {
		return fmt.Errorf("initdb failed (%v); see %s", initProc.err, logPath)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	pg.p, err = startProc(SysPostgres+"-server", logPath, nil, cred, postgres,
		"-D", pg.dir, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "synchronous_commit=on", "-c", "fsync=on",
		"-c", "max_connections=200")
	if err != nil {
		return err
	}
	cfg.PostgresDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return waitFor(pg.p, readyTimeout, func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, cfg.PostgresDSN)
		if err != nil {
			return false
		}
		_ = conn.Close(cctx)
		return true
	})
}

// postgresCredential is nil when not root, else the postgres user's ids.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root and there is no postgres user to run PostgreSQL as (run bench/install-baselines.sh)", ErrSkipped)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (pg *postgresBackend) stop() error {
	if pg.p == nil {
		return nil
	}
	return pg.p.stop(syscall.SIGINT, stopGrace) // SIGINT: fast shutdown
}

// SysExternal is an onsale the operator started (the -target flag).
const SysExternal = "onsale-external"

// ExternalTarget is an already running onsale on a loopback address; the
// harness neither starts nor stops it and needs its secrets.
type ExternalTarget struct {
	Addr          string
	AdminToken    string
	UserSecret    string
	PaymentSecret string
	DataDir       string // optional, for the disk figures
}

type externalSystem struct{ t ExternalTarget }

func (s *externalSystem) Name() string  { return SysExternal }
func (s *externalSystem) Audited() bool { return true }
func (s *externalSystem) Pids() []int   { return nil }
func (s *externalSystem) Stop() error   { return nil }

func (s *externalSystem) DataDirs() []string {
	if s.t.DataDir == "" {
		return nil
	}
	return []string{s.t.DataDir}
}

func (s *externalSystem) Start(context.Context, *Env) (string, error) {
	if err := api.CheckLoopback(s.t.Addr); err != nil {
		return "", err
	}
	c, err := api.NewClient(api.ClientConfig{Addr: s.t.Addr, MaxConns: 1, Timeout: 2 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if st := c.Status("/readyz"); st != 200 {
		return "", fmt.Errorf("%s: GET /readyz answered %d", s.t.Addr, st)
	}
	return s.t.Addr, nil
}
