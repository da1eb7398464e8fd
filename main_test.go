package main

import (
	"bufio"
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

// TestCrashRecovery starts the built binary, runs concurrent purchases,
// cancellations and payments against one sale with more demand than stock,
// kills it with SIGKILL mid-load, restarts it on the same directory, and
// checks that every acknowledged order is there with its status and that
// sold + held never exceeds stock.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "onsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	sec := secrets{AdminToken: "crash-admin", UserSecret: "crash-user-secret", PaymentSecret: "crash-pay", DoorToken: "crash-door"}
	args := []string{"-addr", "127.0.0.1:0", "-data", data, "-admin-token", sec.AdminToken, "-user-secret", sec.UserSecret,
		"-payment-secret", sec.PaymentSecret, "-door-token", sec.DoorToken, "-shards", "2"}
	const stock = 60 // per tier; two tiers

	proc, base := startBinary(t, bin, args)
	c := &client{t: t, base: base, http: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	if st, m := c.do("PUT", "/v1/admin/sales/hot", admin, demoSale(stock)); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}

	ledger := newLedger()
	kill := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	const workers = 16
	deadline := time.Now().Add(60 * time.Second)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ledger.work(c, w, []byte(sec.UserSecret), []byte(sec.PaymentSecret), deadline, func() {
				killOnce.Do(func() { close(kill) })
			})
		}()
	}
	select {
	case <-kill:
	case <-time.After(time.Until(deadline)):
		t.Log("kill condition not reached before the deadline; killing anyway")
	}
	if err := proc.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	proc.Wait()
	wg.Wait()
	acked, soldOut := ledger.counts()
	t.Logf("before the kill: %d orders acknowledged, %d sold_out answers", acked, soldOut)
	if acked == 0 || soldOut == 0 {
		t.Fatalf("the load did not exercise the sale: %d orders, %d sold_out", acked, soldOut)
	}

	proc, base = startBinary(t, bin, args)
	defer func() {
		proc.Process.Signal(os.Interrupt)
		proc.Wait()
	}()
	c.base = base
	ledger.verify(t, c, admin, stock)
}

// startBinary starts the binary and waits until /readyz is green; the
// address comes from its "listening" log line.
func startBinary(t *testing.T, bin string, args []string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && !sent {
				addr <- line.Addr
				sent = true
			}
		}
		if !sent {
			close(addr)
		}
	}()
	a, ok := <-addr
	if !ok {
		cmd.Wait()
		t.Fatalf("the binary did not start listening")
	}
	base := "http://" + a
	c := &http.Client{Timeout: time.Second}
	for i := 0; ; i++ {
		res, err := c.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if i == 100 {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // bounded poll of an observable state
	}
	return cmd, base
}

// ledger records what the server acknowledged.
type ledger struct {
	mu      sync.Mutex
	orders  map[string]*ackedOrder
	soldOut int
	answers int
}

type ackedOrder struct {
	tier     string
	qty      int
	statuses map[string]bool // what the server may hold: the acknowledged status, plus any unacknowledged change
}

func newLedger() *ledger { return &ledger{orders: map[string]*ackedOrder{}} }

func (l *ledger) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.orders), l.soldOut
}

// work buys as user w_i until the server dies: each acknowledged order is
// then cancelled, paid, or kept pending. kill is called once the sale has
// been sold out and some more answers came.
func (l *ledger) work(c *client, w int, userSecret, paySecret []byte, deadline time.Time, kill func()) {
	for i := 0; time.Now().Before(deadline); i++ {
		user := fmt.Sprintf("w%d-u%d", w, i/3)
		tok, _ := httpapi.MintUserToken(userSecret, user, time.Now(), time.Hour)
		tier := []string{"floor", "seat"}[(w+i)%2]
		qty := 1 + (w+i)%2
		st, raw, err := c.try("POST", "/v1/sales/hot/purchase",
			map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": fmt.Sprintf("k%d", i)},
			fmt.Sprintf(`{"tier":%q,"quantity":%d}`, tier, qty))
		if err != nil {
			return // the server is gone
		}
		var o map[string]any
		json.Unmarshal(raw, &o)
		l.mu.Lock()
		l.answers++
		if st == 409 && o["code"] == "sold_out" {
			l.soldOut++
		}
		if l.soldOut > 0 && l.answers > 400 {
			kill()
		}
		var id string
		if st == 200 || st == 201 {
			id = o["order_id"].(string)
			l.orders[id] = &ackedOrder{tier: tier, qty: qty, statuses: map[string]bool{"pending": true}}
		}
		l.mu.Unlock()
		if id == "" {
			continue
		}
		switch i % 4 {
		case 0: // cancel
			l.change(id, "cancelled", func() (int, error) {
				st, _, err := c.try("POST", "/v1/orders/"+id+"/cancel", map[string]string{"Authorization": "Bearer " + tok}, "")
				return st, err
			})
		case 1: // pay
			amount := map[string]int{"floor": 5000, "seat": 8000}[tier] * qty
			body := fmt.Sprintf(`{"id":"evt-%s","type":"payment.succeeded","order_id":%q,"amount_cents":%d,"currency":"EUR"}`, id, id, amount)
			l.change(id, "paid", func() (int, error) {
				st, _, err := c.try("POST", "/v1/payments/webhook",
					map[string]string{"Onsale-Signature": httpapi.SignWebhook(paySecret, []byte(body), time.Now())}, body)
				return st, err
			})
		}
	}
}

// change records a status change: possible while in flight, the only one
// once acknowledged.
func (l *ledger) change(id, status string, send func() (int, error)) {
	l.mu.Lock()
	l.orders[id].statuses[status] = true
	l.mu.Unlock()
	st, err := send()
	if err == nil && st == 200 {
		l.mu.Lock()
		l.orders[id].statuses = map[string]bool{status: true}
		l.mu.Unlock()
	}
}

func (l *ledger) verify(t *testing.T, c *client, admin map[string]string, stock int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, want := range l.orders {
		st, o := c.do("GET", "/v1/orders/"+id, admin, "")
		if st != 200 {
			t.Errorf("acknowledged order %s lost: %d %v", id, st, o)
			continue
		}
		if o["tier"] != want.tier || o["quantity"] != float64(want.qty) || !want.statuses[o["status"].(string)] {
			t.Errorf("order %s: got %v %v %v, acknowledged %s %d %v", id, o["tier"], o["quantity"], o["status"], want.tier, want.qty, want.statuses)
		}
	}
	// The counts agree with the orders (all of them, acknowledged or not),
	// and never exceed stock.
	held := map[string]int{}
	sold := map[string]int{}
	cursor := ""
	for page := 0; page < 100; page++ {
		st, m := c.do("GET", "/v1/admin/sales/hot/orders?limit=500&cursor="+cursor, admin, "")
		if st != 200 {
			t.Fatalf("export: %d %v", st, m)
		}
		for _, x := range m["orders"].([]any) {
			o := x.(map[string]any)
			q := int(o["quantity"].(float64))
			switch {
			case o["status"] == "pending":
				held[o["tier"].(string)] += q
			case o["status"] == "paid" && o["needs_refund"] == false:
				sold[o["tier"].(string)] += q
			}
		}
		if cursor, _ = m["next_cursor"].(string); cursor == "" {
			break
		}
	}
	st, sale := c.do("GET", "/v1/sales/hot", nil, "")
	if st != 200 {
		t.Fatalf("sale: %d", st)
	}
	for _, x := range sale["tiers"].([]any) {
		tier := x.(map[string]any)
		id := tier["id"].(string)
		h, s := int(tier["held"].(float64)), int(tier["sold"].(float64))
		if h+s > stock || int(tier["stock"].(float64)) != stock {
			t.Errorf("tier %s oversold: held %d + sold %d > stock %d", id, h, s, stock)
		}
		if h != held[id] || s != sold[id] {
			t.Errorf("tier %s: counts held %d sold %d, orders say held %d sold %d", id, h, s, held[id], sold[id])
		}
		t.Logf("tier %s after recovery: held %d sold %d available %v", id, h, s, tier["available"])
	}
}
