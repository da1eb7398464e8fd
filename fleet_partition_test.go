package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// netns is a network namespace joined to the host by two veth pairs on
// private /30s: one carries the node's JetStream traffic (the link the
// test cuts), the other its HTTP clients (kept up, so the test sees what
// a cut-off owner answers).
type netns struct {
	name             string
	natsHost, natsNS string // the JetStream link: host side, namespace side
	natsNSDev        string
	httpHost, httpNS string
	hostDevs         []string
	ipBin            string
}

// newNetns creates the namespace, or skips the test with the reason.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("the ip command (iproute2) is not installed")
	}
	id := os.Getpid() % 60000
	n := &netns{name: fmt.Sprintf("onsale-part-%d", id), ipBin: ipBin}
	// Two /30s of 10.213.0.0/16 per test process, by its pid: .1/.2
	// JetStream, .5/.6 HTTP.
	b := id % 256
	n.natsHost, n.natsNS = fmt.Sprintf("10.213.%d.1", b), fmt.Sprintf("10.213.%d.2", b)
	n.httpHost, n.httpNS = fmt.Sprintf("10.213.%d.5", b), fmt.Sprintf("10.213.%d.6", b)
	natsH, natsN := fmt.Sprintf("osjh%d", id), fmt.Sprintf("osjn%d", id)
	httpH, httpN := fmt.Sprintf("oshh%d", id), fmt.Sprintf("oshn%d", id)
	n.natsNSDev, n.hostDevs = natsN, []string{natsH, httpH}
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", natsH, "type", "veth", "peer", "name", natsN},
		{"link", "add", httpH, "type", "veth", "peer", "name", httpN},
		{"link", "set", natsN, "netns", n.name},
		{"link", "set", httpN, "netns", n.name},
		{"addr", "add", n.natsHost + "/30", "dev", natsH},
		{"addr", "add", n.httpHost + "/30", "dev", httpH},
		{"link", "set", natsH, "up"},
		{"link", "set", httpH, "up"},
		{"-n", n.name, "addr", "add", n.natsNS + "/30", "dev", natsN},
		{"-n", n.name, "addr", "add", n.httpNS + "/30", "dev", httpN},
		{"-n", n.name, "link", "set", natsN, "up"},
		{"-n", n.name, "link", "set", httpN, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	}
	t.Cleanup(n.delete)
	for i, s := range steps {
		if out, err := exec.Command(ipBin, s...).CombinedOutput(); err != nil {
			if i == 0 {
				t.Skipf("cannot create a network namespace here (ip %s: %v: %s)", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
			}
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return n
}

// ip runs ip with args inside the namespace.
func (n *netns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(n.ipBin, append([]string{"-n", n.name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n.name, strings.Join(args, " "), err, out)
	}
}

// command runs bin with args inside the namespace.
func (n *netns) command(bin string, args ...string) *exec.Cmd {
	return exec.Command(n.ipBin, append([]string{"netns", "exec", n.name, bin}, args...)...)
}

// delete removes the namespace, which removes both veth pairs.
func (n *netns) delete() {
	exec.Command(n.ipBin, "netns", "del", n.name).Run()
	for _, d := range n.hostDevs { // gone with the namespace; if not, remove them
		exec.Command(n.ipBin, "link", "del", d).Run()
	}
}

// startJetStreamOn starts three JetStream servers whose clients connect
// on host (an address of this machine), routed to each other on loopback;
// it returns their client URLs.
func startJetStreamOn(t *testing.T, host string) string {
	t.Helper()
	clientPorts, routePorts := make([]int, 3), make([]int, 3)
	var routes []string
	for i := range 3 {
		// A port free on loopback is free on a fresh veth address too,
		// unless something binds it meanwhile (the start then fails).
		clientPorts[i] = freePort(t)
		routePorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	dir := t.TempDir()
	var servers []*server.Server
	var urls []string
	for i := range 3 {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("js%d", i), Host: host, Port: clientPorts[i],
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("js%d", i)),
			JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 1 << 30, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "onsale-partition", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("JetStream server %d not ready within 10s", i)
		}
		servers = append(servers, s)
		urls = append(urls, fmt.Sprintf("nats://%s:%d", host, clientPorts[i]))
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, s := range servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == 3 {
				ready++
			}
		}
		if ready > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no JetStream meta leader within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Join(urls, ",")
}

func freePort(t *testing.T) int {
	t.Helper()
	addr := freeAddr(t)
	var port int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	return port
}

// TestFleetNetworkPartition puts the owner of a fleet's only partition in
// its own network namespace, its JetStream traffic on one veth pair and
// its clients on another, and cuts the JetStream link under purchase
// load: the cut-off owner must stop acknowledging before its lease ends
// and exit (status 3), the standby must take over, every acknowledged
// purchase must be kept and nothing oversold; after the link is healed
// the old owner, started again, is a standby. Root only (it skips
// otherwise, or where namespaces cannot be made); not under -short.
func TestFleetNetworkPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes, a JetStream cluster and a network namespace")
	}
	ns := newNetns(t)
	urls := startJetStreamOn(t, ns.natsHost)
	dir := t.TempDir()
	bin := filepath.Join(dir, "onsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const lease = 2 * time.Second
	secrets := fmt.Sprintf(`{"admin_token":%q,"user_secret":"part-user-secret","payment_secret":"part-pay","door_token":"part-door","data_key":"part-data-key-0123456789abcdef0123456789abcdef"}`, fleetTestAdmin)
	type node struct {
		name, addr, dir string
		inNS            bool
		cmd             *exec.Cmd
		exited          chan struct{}
	}
	cut := &node{name: "owner", addr: ns.httpNS + ":8080", dir: filepath.Join(dir, "owner"), inNS: true}
	// The standby listens on the host's end of the client link, so that the
	// old owner, once healed and a standby itself, can forward to it.
	standby := &node{name: "standby", addr: fmt.Sprintf("%s:%d", ns.httpHost, freePort(t)), dir: filepath.Join(dir, "standby")}
	for _, n := range []*node{cut, standby} {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "secrets.json"), []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := func(n *node) {
		args := []string{"-addr", n.addr, "-data", n.dir, "-nats", urls, "-fleet-partitions", "1",
			"-fleet-lease", lease.String(), "-shards", "2", "-user-rate", "0", "-min-free-disk", "0", "-log-level", "info"}
		if n.inNS {
			n.cmd = ns.command(bin, args...)
		} else {
			n.cmd = exec.Command(bin, args...)
		}
		n.cmd.Stderr = &prefixWriter{prefix: n.name + ": "}
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n.exited = make(chan struct{})
		cmd, exited := n.cmd, n.exited
		go func() { cmd.Wait(); close(exited) }()
	}
	nodes := []*node{cut, standby}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil {
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
	})
	start(cut)
	waitReady(t, cut.addr, 30*time.Second)
	start(standby)
	waitPath(t, standby.addr, "/healthz", 30*time.Second)

	client := &http.Client{Timeout: 5 * time.Second}
	const saleID, stock = "partitioned", 100_000
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"name":"Partitioned","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":%d,`+
		`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":%d}]}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, stock)
	if status, raw := call(client, "PUT", "http://"+cut.addr+"/v1/admin/sales/"+saleID, fleetTestAdmin, "", body); status != 200 && status != 201 {
		t.Fatalf("PUT sale: %d %s", status, raw)
	}
	token := buyerToken(t, client, cut.addr)

	// Load: half the workers buy from the owner directly (through its
	// client link), half from the standby (which forwards to the owner
	// until it owns the partition itself).
	type ack struct {
		order  string
		target int // 0 the owner's address, 1 the standby's
		at     time.Time
	}
	var (
		mu   sync.Mutex
		acks []ack
		stop atomic.Bool
		wg   sync.WaitGroup
		seq  atomic.Int64
	)
	targets := []string{cut.addr, standby.addr}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; i < 100_000 && !stop.Load(); i++ {
				ti := w % 2
				key := fmt.Sprintf("k%d", seq.Add(1))
				status, raw := call(client, "POST", "http://"+targets[ti]+"/v1/sales/"+saleID+"/purchase", token, key, `{"tier":"ga","quantity":1}`)
				if status == 200 || status == 201 {
					var o struct {
						OrderID string `json:"order_id"`
					}
					if err := json.Unmarshal(raw, &o); err != nil || o.OrderID == "" {
						t.Errorf("purchase answer %d %s", status, raw)
						return
					}
					mu.Lock()
					acks = append(acks, ack{o.OrderID, ti, time.Now()})
					mu.Unlock()
				} else {
					time.Sleep(20 * time.Millisecond) // cut off, moving, down: try again
				}
			}
		})
	}
	// lastFrom is the newest acknowledgement through target ti, and how
	// many there are after since.
	lastFrom := func(ti int, since time.Time) (time.Time, int) {
		mu.Lock()
		defer mu.Unlock()
		var last time.Time
		n := 0
		for _, a := range acks {
			if a.target == ti && a.at.After(since) {
				n++
				if a.at.After(last) {
					last = a.at
				}
			}
		}
		return last, n
	}
	waitFor := func(what string, within time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %s", what, within)
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	if !waitFor("20 purchases through each address", 20*time.Second, func() bool {
		_, a := lastFrom(0, time.Time{})
		_, b := lastFrom(1, time.Time{})
		return a >= 20 && b >= 20
	}) {
		stop.Store(true)
		wg.Wait()
		t.FailNow()
	}

	// Cut the owner's JetStream link (its clients' link stays up).
	ns.ip(t, "link", "set", ns.natsNSDev, "down")
	cutAt := time.Now()
	took := waitFor("the standby acknowledges a purchase after the owner's lease", 30*time.Second, func() bool {
		_, n := lastFrom(1, cutAt.Add(lease))
		return n > 0
	})
	var exitCode int
	select {
	case <-cut.exited:
		exitCode = cut.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		t.Error("the cut-off owner did not exit within 20s of the cut")
	}
	exitedAt := time.Now()
	if exitCode != 3 {
		t.Errorf("the cut-off owner exited with status %d, not 3 (lease lost)", exitCode)
	}
	lastOwner, _ := lastFrom(0, time.Time{})
	if lastOwner.After(cutAt.Add(lease)) {
		t.Errorf("the cut-off owner acknowledged a purchase %s after the cut, past its %s lease", lastOwner.Sub(cutAt), lease)
	}
	if took {
		first := time.Time{}
		mu.Lock()
		for _, a := range acks {
			if a.target == 1 && a.at.After(cutAt.Add(lease)) && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		mu.Unlock()
		t.Logf("cut at 0s; the owner's last acknowledgement at %s; the standby's first after the lease at %s; the owner exited (status %d) by %s",
			lastOwner.Sub(cutAt).Round(time.Millisecond), first.Sub(cutAt).Round(time.Millisecond), exitCode, exitedAt.Sub(cutAt).Round(time.Millisecond))
	}

	// Heal; the old owner, started again, is a standby: alive, not ready.
	ns.ip(t, "link", "set", ns.natsNSDev, "up")
	start(cut)
	waitPath(t, cut.addr, "/healthz", 30*time.Second)
	if status, _ := call(client, "GET", "http://"+cut.addr+"/readyz", "", "", ""); status != 503 {
		t.Errorf("the healed old owner's /readyz: %d, want 503 (a standby)", status)
	}
	// It forwards to the new owner: a purchase through it is acknowledged.
	if !waitFor("a purchase through the healed old owner", 20*time.Second, func() bool {
		_, n := lastFrom(0, exitedAt)
		return n > 0
	}) {
		t.Log("(the healed node forwards nothing)")
	}
	stop.Store(true)
	wg.Wait()

	// Every acknowledged purchase is there; nothing is oversold.
	sold := func() (int, error) {
		status, raw := call(client, "GET", "http://"+standby.addr+"/v1/sales/"+saleID, "", "", "")
		var s struct {
			Tiers []struct{ Sold, Held int } `json:"tiers"`
		}
		if status != 200 || json.Unmarshal(raw, &s) != nil || len(s.Tiers) != 1 {
			return 0, fmt.Errorf("GET sale: %d %s", status, raw)
		}
		return s.Tiers[0].Sold + s.Tiers[0].Held, nil
	}
	taken, err := sold()
	if err != nil {
		t.Fatal(err)
	}
	if taken > stock {
		t.Errorf("oversold: %d held or sold of %d", taken, stock)
	}
	if len(acks) > taken {
		t.Errorf("%d purchases acknowledged, %d held or sold", len(acks), taken)
	}
	missing := 0
	for _, a := range acks {
		if status, raw := call(client, "GET", "http://"+standby.addr+"/v1/orders/"+a.order, token, "", ""); status != 200 {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged order %s: %d %s", a.order, status, raw)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged orders missing", missing)
	}
	t.Logf("%d purchases acknowledged, all kept; %d held or sold of %d", len(acks), taken, stock)
}
