package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/fleet"
	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// fleetNodeProc is one onsale process of the fleet test.
type fleetNodeProc struct {
	addr, dir string
	prefer    int
	cmd       *exec.Cmd
	exited    chan struct{}
}

const fleetTestAdmin = "fleet-admin-token"

// TestFleetFailover runs a 3-node JetStream cluster and three onsale
// processes (two partitions, the third node a standby) under purchase load
// sent to every node, and in turn: kills the owner of partition 0 (kill -9)
// and restarts it; pauses the owner of partition 1 past its lease (SIGSTOP)
// and resumes it; stops a JetStream server and starts it again. It checks
// that every acknowledged purchase is in the final state, that no tier is
// oversold, and that the paused owner answered nothing for its sales after
// it resumed; it logs the failover time after the kill.
func TestFleetFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream cluster")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	js := jstest.Start(t, 3, false)
	dir := t.TempDir()
	bin := filepath.Join(dir, "onsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const lease = 2 * time.Second
	secrets := fmt.Sprintf(`{"admin_token":%q,"user_secret":"fleet-user-secret","payment_secret":"fleet-pay","door_token":"fleet-door","data_key":"fleet-data-key-0123456789abcdef0123456789abcdef"}`, fleetTestAdmin)
	var nodes []*fleetNodeProc
	for i, prefer := range []int{0, 1, 0} {
		n := &fleetNodeProc{addr: freeAddr(t), dir: filepath.Join(dir, fmt.Sprintf("node%d", i)), prefer: prefer}
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "secrets.json"), []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	start := func(n *fleetNodeProc) {
		n.cmd = exec.Command(bin, "-addr", n.addr, "-data", n.dir, "-nats", js.URL(), "-fleet-partitions", "2",
			"-fleet-partition", fmt.Sprint(n.prefer), "-fleet-lease", lease.String(), "-shards", "2",
			"-user-rate", "0", "-min-free-disk", "0", "-log-level", "info")
		n.cmd.Stderr = &prefixWriter{prefix: fmt.Sprintf("node%d: ", n.prefer)}
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n.exited = make(chan struct{})
		cmd, exited := n.cmd, n.exited
		go func() { cmd.Wait(); close(exited) }()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil {
				n.cmd.Process.Signal(syscall.SIGCONT)
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
	})
	for _, n := range nodes[:2] {
		start(n)
		waitReady(t, n.addr, 30*time.Second)
	}
	start(nodes[2]) // the standby
	waitPath(t, nodes[2].addr, "/healthz", 30*time.Second)

	// HAProxy in front (deploy/haproxy/haproxy.cfg), when installed: the
	// load goes to it as well as to every node.
	targets := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}
	if proxy := startHAProxy(t, nodes); proxy != "" {
		targets = append(targets, proxy)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	const sales, stock = 8, 5000
	saleIDs := make([]string, sales)
	for i := range saleIDs {
		saleIDs[i] = fmt.Sprintf("fleet%d", i)
		now := time.Now().UTC()
		body := fmt.Sprintf(`{"name":"Fleet %d","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":%d,`+
			`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":%d}]}`, i,
			now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, stock)
		// One buyer makes every purchase, so the per-user limit is the
		// stock: at 100, as it was, a fast run bought each partition-1
		// sale's 100 before the pause, and every later answer there was
		// limit_exceeded, which read as "no node serves partition 1".
		// Through the standby: it forwards to the owner.
		status, raw := call(client, "PUT", "http://"+nodes[2].addr+"/v1/admin/sales/"+saleIDs[i], fleetTestAdmin, "", body)
		if status != 200 && status != 201 {
			t.Fatalf("PUT sale %s: %d %s", saleIDs[i], status, raw)
		}
	}
	token := buyerToken(t, client, nodes[1].addr)

	// Load: purchases to random nodes until stopped; 2xx answers are
	// acknowledged, and remembered with who answered and when.
	type ack struct {
		order, sale string
		node        int
		at          time.Time
	}
	var (
		mu    sync.Mutex
		acks  []ack
		stop  atomic.Bool
		wg    sync.WaitGroup
		seq   atomic.Int64
		first = map[int]time.Time{} // partition -> first ack after a point
	)
	for w := range 12 {
		wrng := rand.New(rand.NewPCG(uint64(seed), uint64(w+1)))
		wg.Go(func() {
			for i := 0; i < 100_000 && !stop.Load(); i++ {
				ni := wrng.IntN(len(targets))
				sale := saleIDs[wrng.IntN(sales)]
				key := fmt.Sprintf("k%d", seq.Add(1))
				status, raw := call(client, "POST", "http://"+targets[ni]+"/v1/sales/"+sale+"/purchase", token, key,
					`{"tier":"ga","quantity":1}`)
				if status == 200 || status == 201 {
					var o struct {
						OrderID string `json:"order_id"`
					}
					if err := json.Unmarshal(raw, &o); err != nil || o.OrderID == "" {
						t.Errorf("purchase answer %d %s", status, raw)
						return
					}
					mu.Lock()
					acks = append(acks, ack{o.OrderID, sale, ni, time.Now()})
					mu.Unlock()
				} else if status == 0 || status == 503 || status == 409 || status == 429 {
					time.Sleep(20 * time.Millisecond) // node down, moving, sold out: try again elsewhere
				}
			}
		})
	}
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	waitAcks := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			got := len(acks)
			mu.Unlock()
			if got >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("fewer than %d purchases acknowledged within 20s", n)
	}
	ackedSince := func(since time.Time, p int) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range acks {
			if a.at.After(since) && fleet.PartitionOf([]byte(a.sale), 2) == p {
				if _, ok := first[p]; !ok {
					first[p] = a.at
				}
				return true
			}
		}
		return false
	}
	waitAcks(40)

	// 1. kill -9 the owner of partition 0; the standby takes it over.
	nodes[0].cmd.Process.Kill()
	<-nodes[0].exited
	killed := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for !ackedSince(killed, 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !ackedSince(killed, 0) {
		t.Fatal("partition 0 served nothing within 30s of its owner's kill -9")
	}
	t.Logf("failover after kill -9 (lease %s): first acknowledged purchase of partition 0 after %s", lease, first[0].Sub(killed))
	start(nodes[0]) // comes back as the standby

	// 2. SIGSTOP the owner of partition 1 past its lease, then SIGCONT.
	stopped := time.Now()
	nodes[1].cmd.Process.Signal(syscall.SIGSTOP)
	deadline = time.Now().Add(30 * time.Second)
	for !ackedSince(stopped.Add(lease), 1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !ackedSince(stopped.Add(lease), 1) {
		t.Error("partition 1 served by no other node within 30s of its owner's SIGSTOP")
	} else {
		t.Logf("takeover after SIGSTOP: first acknowledged purchase of partition 1 %s after the pause, %s after its lease", first[1].Sub(stopped), first[1].Sub(stopped.Add(lease)))
	}
	resumed := time.Now()
	nodes[1].cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-nodes[1].exited: // it found its lease gone and exited
	case <-time.After(10 * time.Second):
		t.Error("the paused owner did not exit within 10s of resuming")
	}
	exitedAt := time.Now() // later answers from its address come from its successor
	start(nodes[1])

	// 3. Stop a JetStream server under load, then start it again.
	waitAcks(ackCount() + 20)
	js.StopServer(rng.IntN(3))
	waitAcks(ackCount() + 40)
	for i := range 3 {
		js.StartServer(i)
	}
	waitAcks(ackCount() + 20)
	stop.Store(true)
	wg.Wait()

	// Every acknowledged purchase is there; nothing is oversold; the
	// paused owner acknowledged nothing of partition 1 after resuming.
	// First wait (bounded) until every sale is served again: a node may
	// have just lost its lease to the JetStream stop.
	for _, id := range saleIDs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			status, _ := call(client, "GET", "http://"+nodes[2].addr+"/v1/sales/"+id, "", "", "")
			if status == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	perSale := map[string]int{}
	for _, a := range acks {
		perSale[a.sale]++
		if a.node == 1 && a.at.After(resumed) && a.at.Before(exitedAt) &&
			fleet.PartitionOf([]byte(a.sale), 2) == 1 {
			t.Errorf("order %s acknowledged by the deposed owner after it resumed", a.order)
		}
		status, raw := call(client, "GET", "http://"+nodes[2].addr+"/v1/orders/"+a.order, token, "", "")
		if status != 200 {
			t.Errorf("acknowledged order %s: %d %s", a.order, status, raw)
		}
	}
	for _, id := range saleIDs {
		status, raw := call(client, "GET", "http://"+nodes[2].addr+"/v1/sales/"+id, "", "", "")
		var s struct {
			Tiers []struct{ Stock, Sold, Held, Available int } `json:"tiers"`
		}
		if status != 200 || json.Unmarshal(raw, &s) != nil || len(s.Tiers) != 1 {
			t.Fatalf("GET sale %s: %d %s", id, status, raw)
		}
		tier := s.Tiers[0]
		if tier.Sold+tier.Held > stock {
			t.Errorf("sale %s oversold: sold %d + held %d > %d", id, tier.Sold, tier.Held, stock)
		}
		if perSale[id] > tier.Sold+tier.Held {
			t.Errorf("sale %s: %d purchases acknowledged, %d held or sold", id, perSale[id], tier.Sold+tier.Held)
		}
	}
	t.Logf("%d purchases acknowledged across %d sales; paused %s past a %s lease", len(acks), sales, resumed.Sub(stopped), lease)
	if len(targets) > len(nodes) {
		viaProxy := 0
		for _, a := range acks {
			if a.node == len(nodes) {
				viaProxy++
			}
		}
		if viaProxy == 0 {
			t.Error("no purchase acknowledged through HAProxy")
		}
		t.Logf("%d of them through HAProxy", viaProxy)
	}
}

// startHAProxy runs haproxy with deploy/haproxy/haproxy.cfg in front of the
// nodes and returns its address; "" when haproxy is not installed (a
// failure when CI=true).
func startHAProxy(t *testing.T, nodes []*fleetNodeProc) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy is not installed (.ci/run installs it)")
		}
		t.Log("haproxy not installed: the load goes to the nodes only")
		return ""
	}
	addr := freeAddr(t)
	cfg, err := filepath.Abs("deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Env = append(os.Environ(), "ONSALE_PROXY_ADDR="+addr,
		"ONSALE_NODE1="+nodes[0].addr, "ONSALE_NODE2="+nodes[1].addr, "ONSALE_NODE3="+nodes[2].addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPath(t, addr, "/healthz", 10*time.Second)
	return addr
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, addr string, within time.Duration) { waitPath(t, addr, "/readyz", within) }

func waitPath(t *testing.T, addr, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + addr + path)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s%s not 200 within %s", addr, path, within)
}

// call sends one request; status 0 means no answer.
func call(c *http.Client, method, url, token, idemKey, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, bytes.TrimSpace(raw)
}

func buyerToken(t *testing.T, c *http.Client, addr string) string {
	t.Helper()
	cred := `{"username":"fleetbuyer","password":"correct horse battery"}`
	if status, raw := call(c, "POST", "http://"+addr+"/v1/users", "", "", cred); status != 201 && status != 200 {
		t.Fatalf("register: %d %s", status, raw)
	}
	status, raw := call(c, "POST", "http://"+addr+"/v1/sessions", "", "", cred)
	var s struct {
		Token string `json:"token"`
	}
	if status != 200 && status != 201 || json.Unmarshal(raw, &s) != nil || s.Token == "" {
		t.Fatalf("login: %d %s", status, raw)
	}
	return s.Token
}

type prefixWriter struct{ prefix string }

func (w *prefixWriter) Write(b []byte) (int, error) {
	if os.Getenv("FLEET_LOG") != "" {
		os.Stderr.Write(append([]byte(w.prefix), b...))
	}
	return len(b), nil
}
