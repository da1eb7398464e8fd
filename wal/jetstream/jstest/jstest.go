// Package jstest starts a NATS JetStream cluster inside a test process, on
// loopback, for the tests of package jetstream and of the fleet. Only tests
// import it, so the server is never linked into onsale.
package jstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is n JetStream servers routed to each other. Its methods are safe
// for concurrent use.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	opts    []*server.Options
	servers []*server.Server
}

// Start starts n servers (3 for R3 streams) with their stores under
// t.TempDir(), and stops them at the end of the test. syncAlways sets
// sync_interval: always (every stored message is fsynced before it is
// acknowledged).
func Start(t testing.TB, n int, syncAlways bool) *Cluster {
	t.Helper()
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("js%d", i), Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: fmt.Sprintf("%s/js%d", dir, i),
			JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 4 << 30,
			SyncAlways: syncAlways, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "onsale-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.opts = append(c.opts, o)
		c.servers = append(c.servers, nil)
	}
	for i := range n {
		c.StartServer(i)
	}
	t.Cleanup(func() {
		for i := range n {
			c.StopServer(i)
		}
	})
	c.waitForMeta()
	return c
}

// URL is every server's client URL, comma-separated, as nats.Connect takes it.
func (c *Cluster) URL() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// StartServer starts server i (again), with the store it had.
func (c *Cluster) StartServer(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		return
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("jstest: server %d: %v", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("jstest: server %d not ready within 10s", i)
	}
	c.servers[i] = s
}

// StopServer stops server i, as a crash of its process would (its store
// keeps what it had written).
func (c *Cluster) StopServer(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// waitForMeta waits until the servers have elected a JetStream meta leader
// that sees every server, so that the first R3 stream finds its peers.
func (c *Cluster) waitForMeta() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, s := range c.servers {
			if s != nil && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(c.servers) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("jstest: no JetStream meta leader within 20s")
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
