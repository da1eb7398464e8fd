package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// TestFleetHotStandby: a standby follows its partition's log while the
// owner sells (-fleet-follow, all by default), and when the owner is
// killed (kill -9) it takes over with the state it holds: its takeover
// replays only the entries it had not read yet, a small part of the log,
// every acknowledged purchase is there and nothing is oversold.
func TestFleetHotStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream cluster")
	}
	js := jstest.Start(t, 3, false)
	dir := t.TempDir()
	bin := filepath.Join(dir, "onsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secrets := fmt.Sprintf(`{"admin_token":%q,"user_secret":"fleet-user-secret","payment_secret":"fleet-pay","door_token":"fleet-door","data_key":"fleet-data-key-0123456789abcdef0123456789abcdef"}`, fleetTestAdmin)
	type node struct {
		addr, dir string
		cmd       *exec.Cmd
		exited    chan struct{}
		log       *lineLog
	}
	nodes := make([]*node, 2)
	for i := range nodes {
		n := &node{addr: freeAddr(t), dir: filepath.Join(dir, fmt.Sprint("node", i)), log: &lineLog{prefix: fmt.Sprintf("node%d: ", i)}}
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "secrets.json"), []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
		n.cmd = exec.Command(bin, "-addr", n.addr, "-data", n.dir, "-nats", js.URL(), "-fleet-partitions", "1",
			"-fleet-lease", "2s", "-shards", "2", "-user-rate", "0", "-min-free-disk", "0", "-log-level", "info")
		n.cmd.Stderr = n.log
		nodes[i] = n
	}
	start := func(n *node) {
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n.exited = make(chan struct{})
		go func() { n.cmd.Wait(); close(n.exited) }()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.exited != nil {
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
	})
	owner, standby := nodes[0], nodes[1]
	start(owner)
	waitReady(t, owner.addr, 30*time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	const stock = 100_000
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"name":"Hot","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":%d,`+
		`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":%d}]}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, stock)
	if status, raw := call(client, "PUT", "http://"+owner.addr+"/v1/admin/sales/hot", fleetTestAdmin, "", body); status != 201 && status != 200 {
		t.Fatalf("PUT sale: %d %s", status, raw)
	}
	token := buyerToken(t, client, owner.addr)
	var orders []string
	buy := func(addr string, n int) {
		round := len(orders)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					status, raw := call(client, "POST", "http://"+addr+"/v1/sales/hot/purchase", token,
						fmt.Sprintf("k%d-%d", round, i), `{"tier":"ga","quantity":1}`)
					var o struct {
						OrderID string `json:"order_id"`
					}
					if status != 201 && status != 200 || json.Unmarshal(raw, &o) != nil {
						t.Errorf("purchase: %d %s", status, raw)
						return
					}
					mu.Lock()
					orders = append(orders, o.OrderID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	buy(owner.addr, 400)
	start(standby)
	if !standby.log.wait("fleet: standby: following", 30*time.Second) {
		t.Fatal("the standby did not catch up with the log within 30 s")
	}
	buy(owner.addr, 400) // followed as they are written

	owner.cmd.Process.Kill()
	<-owner.exited
	killed := time.Now()
	for i := 0; ; i++ {
		status, raw := call(client, "POST", "http://"+standby.addr+"/v1/sales/hot/purchase", token, fmt.Sprint("after-", i), `{"tier":"ga","quantity":1}`)
		if status == 200 || status == 201 {
			var o struct {
				OrderID string `json:"order_id"`
			}
			if json.Unmarshal(raw, &o) != nil {
				t.Fatalf("purchase: %s", raw)
			}
			orders = append(orders, o.OrderID)
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("the standby acknowledged no purchase within 30 s of the kill (last %d %s)", status, raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("first purchase acknowledged by the standby %s after the owner's kill -9 (lease 2s)", time.Since(killed).Round(time.Millisecond))

	var took struct {
		Standby  bool  `json:"standby"`
		Replayed int   `json:"events_replayed"`
		Orders   int   `json:"orders"`
		Duration int64 `json:"duration"`
	}
	if line := standby.log.find("state recovered"); line == nil || json.Unmarshal(line, &took) != nil || !took.Standby {
		t.Fatalf("the standby did not take over hot: %s", line)
	}
	t.Logf("takeover: %d orders held, %d events replayed, %s", took.Orders, took.Replayed, time.Duration(took.Duration).Round(time.Millisecond))
	if took.Orders != 800 || took.Replayed*10 > took.Orders {
		t.Errorf("the takeover held %d orders and replayed %d events: want all 800, and only the last few replayed", took.Orders, took.Replayed)
	}
	for _, id := range orders {
		if status, raw := call(client, "GET", "http://"+standby.addr+"/v1/orders/"+id, token, "", ""); status != 200 {
			t.Errorf("acknowledged order %s: %d %s", id, status, raw)
		}
	}
	status, raw := call(client, "GET", "http://"+standby.addr+"/v1/sales/hot", "", "", "")
	var s struct {
		Tiers []struct{ Sold, Held int } `json:"tiers"`
	}
	if status != 200 || json.Unmarshal(raw, &s) != nil || len(s.Tiers) != 1 {
		t.Fatalf("GET sale: %d %s", status, raw)
	}
	if got := s.Tiers[0].Sold + s.Tiers[0].Held; got != len(orders) {
		t.Errorf("sold + held = %d, want the %d acknowledged", got, len(orders))
	}
}

// lineLog keeps a process's log lines, and copies them to stderr with
// FLEET_LOG set.
type lineLog struct {
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
	lines  [][]byte
}

func (l *lineLog) Write(b []byte) (int, error) {
	if os.Getenv("FLEET_LOG") != "" {
		os.Stderr.Write(append([]byte(l.prefix), b...))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, bytes.Clone(l.buf.Next(i+1)))
	}
	return len(b), nil
}

// find returns the last line whose msg is msg; nil if none.
func (l *lineLog) find(msg string) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.lines) - 1; i >= 0; i-- {
		var line struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(l.lines[i], &line) == nil && line.Msg == msg {
			return l.lines[i]
		}
	}
	return nil
}

// wait waits (at most within) for a line whose msg is msg.
func (l *lineLog) wait(msg string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l.find(msg) != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
