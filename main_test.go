package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi"
	"github.com/onsale/onsale/wal"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs the program in-process on port 0 and returns its base URL
// and a stop function that cancels it and returns run's error.
func startRun(t *testing.T, args ...string) (base string, stderr *syncBuffer, stop func() error) {
	t.Helper()
	return startRunWith(t, seams{}, args...)
}

// startRunWith is startRun with test seams.
func startRunWith(t *testing.T, sm seams, args ...string) (base string, stderr *syncBuffer, stop func() error) {
	t.Helper()
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runWith(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), stderr, func(a string) { addrs <- a }, sm)
	}()
	select {
	case a := <-addrs:
		base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return base, stderr, stop
}

// clientTimeout bounds one request of a test: generous, because bcrypt
// (login, registration) is slow under -race on a loaded machine.
const clientTimeout = 2 * time.Minute

type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func (c *client) do(method, path string, h map[string]string, body string) (int, map[string]any) {
	c.t.Helper()
	status, raw, err := c.try(method, path, h, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return status, m
}

func (c *client) try(method, path string, h map[string]string, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

func readSecrets(t *testing.T, dir string) secrets {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s secrets
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func demoSale(stock int) string {
	now := time.Now().UTC()
	return fmt.Sprintf(`{"name":"Demo","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":3,
		"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":%d},{"id":"seat","name":"Seat","price_cents":8000,"stock":%d}]}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, stock)
}

// TestRunStartsStopsAndRestarts: first start makes secrets and prints the
// welcome; a stop is graceful; a restart on the same directory reuses the
// secrets and has the data.
func TestRunStartsStopsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	base, stderr, stop := startRun(t, "-data", dir, "-shards", "2")
	info, err := os.Stat(filepath.Join(dir, "secrets.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.json: %v %v", info, err)
	}
	sec := readSecrets(t, dir)
	if !strings.Contains(stderr.String(), "admin token: "+sec.AdminToken) {
		t.Errorf("the welcome does not show the admin token:\n%s", stderr)
	}
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	if st, _ := c.do("GET", "/readyz", nil, ""); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	if st, m := c.do("PUT", "/v1/admin/sales/s1", admin, demoSale(10)); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}
	tok, _ := httpapi.MintUserToken([]byte(sec.UserSecret), "u1", time.Now(), time.Hour)
	st, order := c.do("POST", "/v1/sales/s1/purchase", map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "k"},
		`{"tier":"floor","quantity":2}`)
	if st != 201 {
		t.Fatalf("purchase %d %v", st, order)
	}
	if st, m := c.do("POST", "/v1/users", nil, `{"username":"alice","password":"correct horse"}`); st != 201 {
		t.Fatalf("register %d %v", st, m)
	}
	if err := stop(); err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	for _, step := range []string{`"msg":"stopping"`, `"msg":"http server stopped"`, `"msg":"engine stopped"`, `"msg":"log closed"`} {
		if !strings.Contains(stderr.String(), step) {
			t.Errorf("no %s in the log", step)
		}
	}

	base, stderr, stop = startRun(t, "-data", dir, "-shards", "3")
	c.base = base
	if strings.Contains(stderr.String(), "admin token:") {
		t.Errorf("the welcome is printed again on a later start")
	}
	if readSecrets(t, dir) != sec {
		t.Errorf("secrets changed on restart")
	}
	st, got := c.do("GET", "/v1/orders/"+order["order_id"].(string), admin, "")
	if st != 200 || got["status"] != "pending" || got["quantity"] != float64(2) {
		t.Errorf("order after restart: %d %v", st, got)
	}
	if st, m := c.do("POST", "/v1/sessions", nil, `{"username":"alice","password":"correct horse"}`); st != 200 {
		t.Errorf("login after restart: %d %v", st, m)
	}
	// Flags override the stored secrets.
	stop()
	base, _, _ = startRun(t, "-data", dir, "-admin-token", "from-flag")
	c.base = base
	if st, _ := c.do("GET", "/v1/admin/sales", map[string]string{"Authorization": "Bearer from-flag"}, ""); st != 200 {
		t.Errorf("-admin-token not used: %d", st)
	}
	if st, _ := c.do("GET", "/v1/admin/sales", admin, ""); st != 401 {
		t.Errorf("stored admin token still accepted: %d", st)
	}
}

// TestWelcomeLinesWork pastes the first start's example into bash.
func TestWelcomeLinesWork(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	_, stderr, _ := startRun(t, "-data", t.TempDir())
	out := stderr.String()
	start := strings.Index(out, "\nURL=")
	end := strings.LastIndex(out, "curl -s $URL/v1/sales/demo")
	if start < 0 || end < 0 {
		t.Fatalf("no example in:\n%s", out)
	}
	script := out[start:end] + "curl -s $URL/v1/sales/demo\n"
	cmd := exec.Command("bash", "-eu", "-o", "pipefail", "-c", script)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example failed: %v\n%s\nscript:\n%s", err, res, script)
	}
	if !bytes.Contains(res, []byte(`"status":"paid"`)) || !bytes.Contains(res, []byte(`"tickets":[`)) ||
		!bytes.Contains(res, []byte(`"available":98`)) {
		t.Errorf("example output:\n%s", res)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("ONSALE_ADDR", "127.0.0.1:9999")
	t.Setenv("ONSALE_SHARDS", "3")
	t.Setenv("ONSALE_TICK", "250ms")
	o, err := parseFlags([]string{"-shards", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:9999" || o.shards != 5 || o.tick != 250*time.Millisecond || o.maxBody != 64<<10 {
		t.Errorf("options %+v", o)
	}
	t.Setenv("ONSALE_INBOX_MAX", "many")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "ONSALE_INBOX_MAX") {
		t.Errorf("bad env: %v", err)
	}
	if _, err := parseFlags([]string{"extra"}, io.Discard); err == nil {
		t.Errorf("a stray argument was accepted")
	}
}

// TestGomaxprocsFlag: -gomaxprocs sets the Ps once the log is recovered
// (startRunWith returns when onsale is ready), recovery and the shard
// count keep the runtime's, and the process's own setting is back once run
// returns.
func TestGomaxprocsFlag(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	want := 1
	if before == 1 {
		want = 2
	}
	_, stderr, stop := startRunWith(t, seams{}, "-data", t.TempDir(), "-gomaxprocs", strconv.Itoa(want))
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS %d while serving with -gomaxprocs %d", got, want)
	}
	for _, line := range []string{
		fmt.Sprintf(`"gomaxprocs":%d}`, before), // the starting line
		`"msg":"recovered","ms":`,
		fmt.Sprintf(`"shards":%d,`, before),
		fmt.Sprintf(`"msg":"threads set for serving","gomaxprocs":%d,"during_recovery":%d}`, want, before),
	} {
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("no %s in the log:\n%s", line, stderr)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after run returned, want %d back", got, before)
	}
}

// TestUserRateFlags: the per-buyer limit is on by default, takes its
// environment variables, and refuses settings that make no sense.
func TestUserRateFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.userRate != 5 || o.userBurst != 20 {
		t.Fatalf("defaults: rate %v burst %d, %v", o.userRate, o.userBurst, err)
	}
	t.Setenv("ONSALE_USER_RATE", "2.5")
	t.Setenv("ONSALE_USER_BURST", "8")
	if o, err = parseFlags(nil, io.Discard); err != nil || o.userRate != 2.5 || o.userBurst != 8 {
		t.Errorf("from the environment: rate %v burst %d, %v", o.userRate, o.userBurst, err)
	}
	if o, err = parseFlags([]string{"-user-rate", "0", "-user-burst", "0"}, io.Discard); err != nil || o.userRate != 0 {
		t.Errorf("-user-rate 0 (off): %v", err)
	}
	for _, args := range [][]string{{"-user-rate", "-1"}, {"-user-rate", "NaN"}, {"-user-rate", "+Inf"}, {"-user-burst", "0"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("ONSALE_USER_RATE", "fast")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "ONSALE_USER_RATE") {
		t.Errorf("bad env: %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	stdout = &out
	defer func() { stdout = os.Stdout }()
	if err := run(context.Background(), []string{"-version"}, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "onsale ") {
		t.Errorf("-version printed %q", out.String())
	}
}

// TestBadFlagsAreRefused: a setting that makes no sense is refused at
// start with an error naming the flag and its variable, before anything is
// created, rather than quietly replaced by a default.
func TestBadFlagsAreRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-tick", "0"}, "-tick ($ONSALE_TICK) must be a duration above 0"},
		{[]string{"-tick", "-1s"}, "-tick ($ONSALE_TICK)"},
		{[]string{"-shards", "-1"}, "-shards ($ONSALE_SHARDS) must be 0 (= GOMAXPROCS) to 1024, not -1"},
		{[]string{"-shards", "5000"}, "-shards ($ONSALE_SHARDS)"},
		{[]string{"-gomaxprocs", "-1"}, "-gomaxprocs ($ONSALE_GOMAXPROCS) must be 0 (the runtime's choice) to 1024, not -1"},
		{[]string{"-gomaxprocs", "5000"}, "-gomaxprocs ($ONSALE_GOMAXPROCS)"},
		{[]string{"-batch-max", "0"}, "-batch-max ($ONSALE_BATCH_MAX) must be at least 1"},
		{[]string{"-notify-busy-above", "-1"}, "-notify-busy-above ($ONSALE_NOTIFY_BUSY_ABOVE) must be >= 0"},
		{[]string{"-notify-busy-rate", "0"}, "-notify-busy-rate ($ONSALE_NOTIFY_BUSY_RATE) must be a number > 0"},
		{[]string{"-inbox-max", "-5"}, "-inbox-max ($ONSALE_INBOX_MAX)"},
		{[]string{"-max-body", "0"}, "-max-body ($ONSALE_MAX_BODY)"},
		{[]string{"-max-load-body", "0"}, "-max-load-body ($ONSALE_MAX_LOAD_BODY)"},
		{[]string{"-read-timeout", "0s"}, "-read-timeout ($ONSALE_READ_TIMEOUT)"},
		{[]string{"-write-timeout", "0s"}, "-write-timeout ($ONSALE_WRITE_TIMEOUT)"},
		{[]string{"-idle-timeout", "0s"}, "-idle-timeout ($ONSALE_IDLE_TIMEOUT)"},
		{[]string{"-request-timeout", "-5s"}, "-request-timeout ($ONSALE_REQUEST_TIMEOUT)"},
		{[]string{"-shutdown-timeout", "0s"}, "-shutdown-timeout ($ONSALE_SHUTDOWN_TIMEOUT)"},
		{[]string{"-addr", "8080"}, "-addr ($ONSALE_ADDR) must be host:port"},
		{[]string{"-data", ""}, "-data ($ONSALE_DATA) must name a directory"},
		{[]string{"-min-free-disk", "-1"}, `"-1" is not a size such as 256MiB`},
		{[]string{"-min-free-disk", "lots"}, `"lots" is not a size`},
		{[]string{"-log-level", "loud"}, "-log-level ($ONSALE_LOG_LEVEL)"},
		{[]string{"-log-min-sync-interval", "-1ms"}, "-log-min-sync-interval ($ONSALE_LOG_MIN_SYNC_INTERVAL) must be 0 to 1s"},
		{[]string{"-log-min-sync-interval", "2s"}, "-log-min-sync-interval ($ONSALE_LOG_MIN_SYNC_INTERVAL)"},
		{[]string{"-cors-origins", "not a url"}, "-cors-origins ($ONSALE_CORS_ORIGINS)"},
		{[]string{"-log-min-sync-waiting", "0"}, "-log-min-sync-waiting ($ONSALE_LOG_MIN_SYNC_WAITING) must be at least 1"},
		{[]string{"-tick", "0", "-shards", "-1"}, "not -1; -tick ($ONSALE_TICK) must be a duration above 0 such as 100ms, not 0s"},
		{[]string{"-smtp-addr", "mailhost"}, "-smtp-addr ($ONSALE_SMTP_ADDR) must be host:port"},
		{[]string{"-smtp-addr", "127.0.0.1:25"}, "-smtp-from ($ONSALE_SMTP_FROM) must be an email address"},
		{[]string{"-smtp-addr", "127.0.0.1:25", "-smtp-from", "x@y\r\nBcc: z@w"}, "-smtp-from ($ONSALE_SMTP_FROM)"},
		{[]string{"-smtp-starttls", "maybe"}, "-smtp-starttls ($ONSALE_SMTP_STARTTLS) must be true or false"},
		{[]string{"-nats", "nats://127.0.0.1:4222", "-fleet-follow", "some"}, "-fleet-follow ($ONSALE_FLEET_FOLLOW) must be all, prefer or off"},
		{[]string{"-smtp-addr", "127.0.0.1:25", "-smtp-from", "t@example.com", "-smtp-password-file", "/nonexistent/pw"}, "-smtp-password-file ($ONSALE_SMTP_PASSWORD_FILE) cannot be read"},
	} {
		if _, err := parseFlags(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	// Sizes, and the values that mean something.
	for _, c := range []struct {
		arg  string
		want byteSize
	}{{"0", 0}, {"4096", 4096}, {"256MiB", 256 << 20}, {"1.5GiB", 3 << 29}, {"2 GB", 2e9}, {"64KiB", 64 << 10}} {
		o, err := parseFlags([]string{"-min-free-disk", c.arg, "-shards", "0"}, io.Discard)
		if err != nil || o.minFreeDisk != c.want {
			t.Errorf("-min-free-disk %s = %d, %v; want %d", c.arg, o.minFreeDisk, err, c.want)
		}
	}
	if o, err := parseFlags(nil, io.Discard); err != nil || o.minFreeDisk != 256<<20 || o.minFreeDisk.String() != "256MiB" {
		t.Errorf("default -min-free-disk %v, %v", o.minFreeDisk, err)
	}
	t.Setenv("ONSALE_TICK", "0s")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "$ONSALE_TICK") {
		t.Errorf("ONSALE_TICK=0s: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := run(context.Background(), []string{"-data", dir}, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "-tick") {
		t.Errorf("run with ONSALE_TICK=0s: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused start created %s (%v)", dir, err)
	}
}

// memDisk is an in-memory filesystem for the log whose free space the
// test sets.
func memDisk(freeBytes uint64) *vfs.MemFS {
	mem := vfs.NewMem()
	setFree(mem, freeBytes)
	return mem
}

func setFree(mem *vfs.MemFS, freeBytes uint64) {
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: freeBytes, TotalBytes: 1 << 40, UsedBytes: 1<<40 - freeBytes})
}

// stall makes the filesystem operations it matches block, once switched
// on, until released: a hung disk.
type stall struct {
	match   func(errorfs.Op) bool
	on      atomic.Bool
	once    sync.Once
	blocked chan struct{} // closed when the first operation blocks
	release chan struct{}
	freed   sync.Once
}

func newStall(t *testing.T, match func(errorfs.Op) bool) *stall {
	s := &stall{match: match, blocked: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(s.unblock)
	return s
}

func (s *stall) MaybeError(op errorfs.Op) error {
	if s.on.Load() && s.match(op) {
		s.once.Do(func() { close(s.blocked) })
		<-s.release
	}
	return nil
}

func (s *stall) String() string { return "stall" }

func (s *stall) unblock() {
	s.on.Store(false)
	s.freed.Do(func() { close(s.release) })
}

// eventually polls cond, an observable state, until it holds (10 s at most).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// returnsWithin calls stop and fails the test if it does not return: a
// process that never ends, not a speed measurement.
func returnsWithin(t *testing.T, stop func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- stop() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return 30 s after its stop")
		return nil
	}
}

// TestListensWhileRecovering: the port is open while the log is being
// opened: /healthz 200, /readyz 503, every API route 503 unavailable with
// Retry-After; then ready, and the API serves.
func TestListensWhileRecovering(t *testing.T) {
	hold := newStall(t, func(op errorfs.Op) bool { return op.Kind == errorfs.OpLock })
	hold.on.Store(true)
	listening := make(chan string, 1)
	readyAddr := make(chan string, 1)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- runWith(ctx, []string{"-addr", "127.0.0.1:0", "-data", dir}, stderr, func(a string) { readyAddr <- a },
			seams{fs: errorfs.Wrap(memDisk(1<<30), hold), listening: func(a string) { listening <- a }})
	}()
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	<-hold.blocked // the log is being opened, and held there
	c := &client{t: t, base: "http://" + addr, http: &http.Client{Timeout: clientTimeout}}
	if st, _ := c.do("GET", "/healthz", nil, ""); st != 200 {
		t.Errorf("healthz while recovering: %d", st)
	}
	sec := readSecrets(t, dir)
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	for _, r := range []struct{ method, path string }{
		{"GET", "/readyz"}, {"GET", "/v1/sales/s1"}, {"POST", "/v1/sales/s1/purchase"}, {"POST", "/v1/payments/webhook"},
		{"GET", "/v1/admin/sales"}, {"POST", "/v1/users"},
	} {
		req, _ := http.NewRequest(r.method, c.base+r.path, strings.NewReader("{}"))
		req.Header.Set("Authorization", admin["Authorization"])
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 503 || !strings.Contains(string(raw), `"code":"unavailable"`) || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s while recovering: %d %s, Retry-After %q", r.method, r.path, res.StatusCode, raw, res.Header.Get("Retry-After"))
		}
	}
	hold.unblock()
	select {
	case <-readyAddr:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if st, _ := c.do("GET", "/readyz", nil, ""); st != 200 {
		t.Errorf("readyz once recovered: %d", st)
	}
	if st, m := c.do("PUT", "/v1/admin/sales/s1", admin, demoSale(10)); st != 201 {
		t.Errorf("put sale once recovered: %d %v", st, m)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestReadyLineAtEveryStart: a first start that fails after writing
// secrets.json (here: a full disk) prints no welcome; every start that gets
// ready prints one plain line with the URL, the data directory and where
// the tokens are, never the secrets themselves.
func TestReadyLineAtEveryStart(t *testing.T) {
	dir := t.TempDir()
	mem := memDisk(1 << 20)
	var stderr syncBuffer
	err := runWith(context.Background(), []string{"-addr", "127.0.0.1:0", "-data", dir}, &stderr, nil, seams{fs: mem})
	if err == nil || !strings.Contains(err.Error(), "not enough free disk space to open the log in "+filepath.Join(dir, "wal")+": 1.0 MiB free, 8.0 MiB needed") {
		t.Fatalf("start on a full disk: %v\n%s", err, stderr.String())
	}
	if n := strings.Count(stderr.String(), "\n"); n > 5 {
		t.Errorf("a refused start logged %d lines:\n%s", n, stderr.String())
	}
	sec := readSecrets(t, dir) // written before the failure

	setFree(mem, 1<<30)
	base, out, stop := startRunWith(t, seams{fs: mem}, "-data", dir)
	line := "onsale is ready at " + base + "; data in " + dir + ", tokens in " + filepath.Join(dir, "secrets.json") +
		"; Ctrl-C or SIGTERM stops it\n"
	if !strings.Contains(out.String(), line) {
		t.Errorf("no ready line %q in:\n%s", line, out)
	}
	for _, secret := range []string{sec.AdminToken, sec.DoorToken, sec.UserSecret, sec.PaymentSecret} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("a later start printed a secret:\n%s", out)
		}
	}
	stop()
	base, out, _ = startRunWith(t, seams{fs: mem}, "-data", dir, "-admin-token", "admin-from-flag")
	line = "onsale is ready at " + base + "; data in " + dir + ", tokens in " + filepath.Join(dir, "secrets.json") +
		" (-admin-token from the command line or environment); Ctrl-C or SIGTERM stops it\n"
	if !strings.Contains(out.String(), line) || strings.Contains(out.String(), "admin-from-flag") {
		t.Errorf("no ready line %q, or the flag's token, in:\n%s", line, out)
	}
}

// TestDiskLowRefusesWrites: below -min-free-disk, /readyz turns red and
// writes (purchases, the payment webhook) answer 503 unavailable with
// Retry-After while reads are served; with space back, all is green. A
// start below the minimum (but with room to open the log) comes up the
// same way and says so.
func TestDiskLowRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	mem := memDisk(1 << 30)
	base, stderr, stop := startRunWith(t, seams{fs: mem, diskEvery: time.Millisecond}, "-data", dir, "-min-free-disk", "256MiB")
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	sec := readSecrets(t, dir)
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	if st, m := c.do("PUT", "/v1/admin/sales/s1", admin, demoSale(10)); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}
	tok, _ := httpapi.MintUserToken([]byte(sec.UserSecret), "u1", time.Now(), time.Hour)
	buy := func(key string) (int, map[string]any) {
		return c.do("POST", "/v1/sales/s1/purchase", map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": key},
			`{"tier":"floor","quantity":1}`)
	}
	if st, m := buy("k1"); st != 201 {
		t.Fatalf("purchase: %d %v", st, m)
	}

	setFree(mem, 100<<20)
	eventually(t, "readyz red on a low disk", func() bool { st, _ := c.do("GET", "/readyz", nil, ""); return st == 503 })
	st, m := buy("k2")
	if st != 503 || m["code"] != "unavailable" || !strings.Contains(m["detail"].(string), "100.0 MiB free, under the 256.0 MiB minimum") {
		t.Errorf("purchase on a low disk: %d %v", st, m)
	}
	if st, m := c.do("POST", "/v1/payments/webhook", nil, `{}`); st != 503 {
		t.Errorf("webhook on a low disk: %d %v", st, m)
	}
	if st, m := c.do("GET", "/v1/sales/s1", nil, ""); st != 200 {
		t.Errorf("read on a low disk: %d %v", st, m)
	}
	if !strings.Contains(stderr.String(), `"msg":"disk nearly full: writes refused, /readyz red"`) {
		t.Errorf("no warning in the log:\n%s", stderr)
	}

	setFree(mem, 1<<30)
	eventually(t, "readyz green with space back", func() bool { st, _ := c.do("GET", "/readyz", nil, ""); return st == 200 })
	if st, m := buy("k2"); st != 201 {
		t.Errorf("purchase with space back: %d %v", st, m)
	}
	stop()

	setFree(mem, 100<<20)
	base, stderr, _ = startRunWith(t, seams{fs: mem, diskEvery: time.Millisecond}, "-data", dir)
	c.base = base
	if !strings.Contains(stderr.String(), "onsale is up but refusing writes (the disk is nearly full, see -min-free-disk) at "+base) {
		t.Errorf("start on a low disk:\n%s", stderr)
	}
	if st, _ := c.do("GET", "/readyz", nil, ""); st != 503 {
		t.Errorf("readyz after a start on a low disk: %d", st)
	}
	if st, m := c.do("GET", "/v1/orders/s1.x", admin, ""); st != 404 {
		t.Errorf("read after a start on a low disk: %d %v", st, m)
	}
}

// TestStopWithinShutdownTimeoutOnAHungDisk: SIGTERM ends run within
// -shutdown-timeout whatever the log is doing: here its fsync, then its
// opening, never return.
func TestStopWithinShutdownTimeoutOnAHungDisk(t *testing.T) {
	t.Run("sync hangs while serving", func(t *testing.T) {
		hang := newStall(t, func(op errorfs.Op) bool {
			return op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
		})
		dir := t.TempDir()
		base, stderr, stop := startRunWith(t, seams{fs: errorfs.Wrap(memDisk(1<<30), hang)},
			"-data", dir, "-shutdown-timeout", "200ms", "-request-timeout", "100ms")
		c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
		admin := map[string]string{"Authorization": "Bearer " + readSecrets(t, dir).AdminToken}
		if st, m := c.do("PUT", "/v1/admin/sales/s1", admin, demoSale(10)); st != 201 {
			t.Fatalf("put sale: %d %v", st, m)
		}
		hang.on.Store(true)
		if st, m := c.do("POST", "/v1/admin/sales/s1:close", admin, ""); st != 503 {
			t.Errorf("a write on a hung disk: %d %v", st, m)
		}
		<-hang.blocked
		err := returnsWithin(t, stop)
		if err == nil || !strings.Contains(err.Error(), "did not stop within -shutdown-timeout (200ms)") {
			t.Errorf("run: %v\n%s", err, stderr)
		}
	})
	t.Run("open hangs while recovering", func(t *testing.T) {
		hang := newStall(t, func(op errorfs.Op) bool { return op.Kind == errorfs.OpLock })
		hang.on.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		stderr := &syncBuffer{}
		go func() {
			done <- runWith(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-shutdown-timeout", "200ms"},
				stderr, nil, seams{fs: errorfs.Wrap(memDisk(1<<30), hang)})
		}()
		<-hang.blocked
		err := returnsWithin(t, func() error { cancel(); return <-done })
		if err == nil || !strings.Contains(err.Error(), "did not stop within -shutdown-timeout (200ms)") {
			t.Errorf("run: %v\n%s", err, stderr)
		}
		if !strings.Contains(stderr.String(), `"msg":"stopping while recovering"`) {
			t.Errorf("log:\n%s", stderr)
		}
	})
}

// TestReadmeScriptLines pastes the README's lines for scripts (build,
// start in the background, wait for /readyz, SIGTERM, wait) into bash, on
// a free port and a fresh data directory: the server gets ready, stops on
// SIGTERM with exit status 0, and frees the port and the data directory.
func TestReadmeScriptLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "In scripts\nand services, build the binary and signal it:\n\n```sh\n")
	script, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 || !strings.Contains(script, "go build -o onsale .") || !strings.Contains(script, "kill $PID") {
		t.Fatalf("no script block in README.md:\n%s", script)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "onsale")
	pasted := strings.NewReplacer("-o onsale", "-o "+bin, "./onsale", bin, "127.0.0.1:8080", addr).Replace(script)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-c", pasted)
	cmd.Env = append(os.Environ(), "ONSALE_ADDR="+addr, "ONSALE_DATA="+filepath.Join(tmp, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's lines failed: %v\n%s\nscript:\n%s", err, out, pasted)
	}
	for _, want := range []string{"onsale is ready at http://" + addr, `"msg":"log closed"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// The port and the data directory are free again.
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("the port is still held: %v", err)
	} else {
		ln.Close()
	}
	startRun(t, "-data", filepath.Join(tmp, "data"))
}

// TestMinSyncIntervalOnlyUnderLoad: the log waits between syncs only once
// the engine runs and enough requests wait for a sync.
func TestMinSyncIntervalOnlyUnderLoad(t *testing.T) {
	a := &app{o: options{logMinSync: 300 * time.Microsecond, logMinSyncWaiting: 1}}
	if d := a.minSyncInterval(); d != 0 {
		t.Fatalf("before recovery: %v", d)
	}
	dir := t.TempDir()
	log, err := wal.Open(dir, wal.Options{Logger: slog.New(slog.DiscardHandler), MinSyncInterval: a.minSyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	eng, err := engine.Open(engine.Config{Journal: log, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	a.running.Store(eng)
	if d := a.minSyncInterval(); d != 0 {
		t.Fatalf("idle engine: %v", d)
	}
	// Pebble's flush loop calls a.minSyncInterval from its own goroutine,
	// so a's options stay as they are; a second app asks with a threshold
	// any load at all meets, even none.
	b := &app{o: options{logMinSync: 300 * time.Microsecond, logMinSyncWaiting: 0}}
	b.running.Store(eng)
	if d := b.minSyncInterval(); d != 300*time.Microsecond {
		t.Fatalf("under load: %v", d)
	}
}

func TestSMTPFlags(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-smtp-addr", "mail.example:587", "-smtp-from", "tickets@example.com", "-smtp-user", "onsale",
		"-smtp-password-file", pw, "-public-url", "https://tickets.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.smtp.Addr != "mail.example:587" || o.smtp.From != "tickets@example.com" || o.smtp.User != "onsale" ||
		o.smtp.Password != "s3cret" || !o.smtp.StartTLS || o.smtp.PublicURL != "https://tickets.example" {
		t.Fatalf("smtp settings %+v", o.smtp)
	}
	if o, err := parseFlags([]string{"-smtp-starttls", "false"}, io.Discard); err != nil || o.smtp.StartTLS {
		t.Fatalf("-smtp-starttls false: %v %v", o.smtp.StartTLS, err)
	}
}
