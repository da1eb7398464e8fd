package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi"
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
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), stderr, func(a string) { addrs <- a })
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
	c := &client{t: t, base: base, http: &http.Client{Timeout: 10 * time.Second}}
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
		{[]string{"-batch-max", "0"}, "-batch-max ($ONSALE_BATCH_MAX) must be at least 1"},
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
		{[]string{"-log-level", "loud"}, "-log-level ($ONSALE_LOG_LEVEL)"},
		{[]string{"-tick", "0", "-shards", "-1"}, "not -1; -tick ($ONSALE_TICK) must be a duration above 0 such as 100ms, not 0s"},
	} {
		if _, err := parseFlags(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
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
