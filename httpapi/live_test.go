package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// sseClient is one live stream read by hand: a raw connection, so that a
// test can hold thousands and choose to stop reading.
type sseClient struct {
	conn net.Conn
	res  *http.Response
	br   *bufio.Reader // over res.Body (chunked)
}

// sseEvent is one event, or a comment when id is "" and data is "".
type sseEvent struct {
	id, event, data string
}

func dialLive(t testing.TB, base, saleID, lastID string) *sseClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	req := "GET /v1/sales/" + saleID + "/live HTTP/1.1\r\nHost: onsale\r\nAccept: text/event-stream\r\n"
	if lastID != "" {
		req += "Last-Event-ID: " + lastID + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	return &sseClient{conn: conn}
}

// open reads the response head; it returns the status.
func (c *sseClient) open(t testing.TB) int {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang guard, not a timing assertion
	res, err := http.ReadResponse(bufio.NewReaderSize(c.conn, 512), nil)
	if err != nil {
		t.Fatalf("live response: %v", err)
	}
	c.res = res
	c.br = bufio.NewReaderSize(res.Body, 512)
	if res.StatusCode == 200 && res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	return res.StatusCode
}

// next returns the next event (comments and retry lines skipped).
func (c *sseClient) next() (sseEvent, error) {
	var ev sseEvent
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.data != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// until reads events until one's data contains want.
func (c *sseClient) until(want string) (sseEvent, error) {
	for {
		ev, err := c.next()
		if err != nil || strings.Contains(ev.data, want) {
			return ev, err
		}
	}
}

// TestLiveStream: the first event is the current state; a purchase brings
// an event with a larger id; Last-Event-ID equal to the current id waits
// for the next change; a closed sale ends the stream and a reconnection
// with its last id gets 204.
func TestLiveStream(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.LivePollInterval = 5 * time.Millisecond }})
	e.putSale("s1", 3, 4)
	e.want(e.do("GET", "/v1/sales/nope/live", nil, ""), 404, "unknown_sale")

	c := dialLive(t, e.base, "s1", "")
	defer c.conn.Close()
	if st := c.open(t); st != 200 {
		t.Fatalf("status %d", st)
	}
	first, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sale_id":"s1","tiers":[{"id":"floor","available":3,"held":0,"sold":0},{"id":"seat","available":3,"held":0,"sold":0}],"sold_out":false,"status":"open"}`
	if first.event != "availability" || first.data != want {
		t.Fatalf("first event %+v, want data %s", first, want)
	}
	e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "")
	second, err := c.until(`"held":2`)
	if err != nil {
		t.Fatal(err)
	}
	if id(t, second.id) <= id(t, first.id) {
		t.Fatalf("ids %s then %s: not increasing", first.id, second.id)
	}

	// Resuming at the current id: the first event is the next change.
	resumed := dialLive(t, e.base, "s1", second.id)
	defer resumed.conn.Close()
	resumed.open(t)
	e.want(e.buy("s1", "u2", "k2", "seat", 3), 201, "")
	ev, err := resumed.next()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.data, `{"id":"seat","available":0,"held":3,"sold":0}`) {
		t.Fatalf("resumed stream's first event %s, want the purchase after its Last-Event-ID", ev.data)
	}

	// Closing ends the stream after a final event.
	e.want(e.do("POST", "/v1/admin/sales/s1:close", e.admin(), ""), 200, "")
	final, err := c.until(`"status":"closed"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.next(); err == nil {
		t.Fatal("the stream goes on after the sale closed")
	}
	again := e.do("GET", "/v1/sales/s1/live", hdr{"Last-Event-ID": final.id}, "")
	if again.status != 204 {
		t.Fatalf("reconnection after the final event: %d %s, want 204", again.status, again.body)
	}
}

func id(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("event id %q: %v", s, err)
	}
	return n
}

// TestLiveStreamsLimit: past LiveMaxStreams, 503 too_many_streams with
// Retry-After; a stream that ends frees its place.
func TestLiveStreamsLimit(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.LiveMaxStreams, c.LiveHeartbeat = 2, 5*time.Millisecond }})
	e.putSale("s1", 3, 4)
	a, b := dialLive(t, e.base, "s1", ""), dialLive(t, e.base, "s1", "")
	a.open(t)
	b.open(t)
	r := e.want(e.do("GET", "/v1/sales/s1/live", nil, ""), 503, "too_many_streams")
	if r.header.Get("Retry-After") != "5" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	a.conn.Close()
	b.conn.Close()
	// The server notices a gone client when its writes fail: after a few
	// heartbeats (5 ms here).
	for e.srv.live.streams.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	c := dialLive(t, e.base, "s1", "")
	defer c.conn.Close()
	if st := c.open(t); st != 200 {
		t.Fatalf("after two streams ended: status %d", st)
	}
}

// TestLiveManyStreamsSellOut: thousands of streams on one sale while it
// sells out; every one of them receives the sold-out state. It logs the
// memory each open stream costs (server and this test's client together).
func TestLiveManyStreamsSellOut(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of connections")
	}
	streams := 10_000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*streams+512) {
		streams = int(lim.Cur-512) / 2
		t.Logf("open files limited to %d (ulimit -n); each stream takes two in this process: %d streams instead of 10000", lim.Cur, streams)
	}
	if raceEnabled {
		streams = min(streams, 1000)
	}
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.LiveMaxStreams = streams }})
	e.putSale("s1", 150, 1000)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*sseClient, streams)
	for i := range clients {
		clients[i] = dialLive(t, e.base, "s1", "")
		clients[i].open(t)
		if _, err := clients[i].next(); err != nil {
			t.Fatalf("stream %d: first event: %v", i, err)
		}
	}
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	runtime.GC()
	runtime.ReadMemStats(&after)
	inUse := func(m *runtime.MemStats) int64 { return int64(m.HeapInuse + m.StackInuse) }
	t.Logf("%d open streams: %.1f KiB each (heap in use + stacks, server and client in one process)",
		streams, float64(inUse(&after)-inUse(&before))/float64(streams)/1024)

	buySellOut(t, e.eng, "s1", 8)
	for i, c := range clients {
		ev, err := c.until(`"sold_out":true`)
		if err != nil {
			t.Fatalf("stream %d of %d: %v before the sold-out event", i, streams, err)
		}
		if strings.Contains(ev.data, `"available":1`) || !strings.Contains(ev.data, `"available":0`) {
			t.Fatalf("stream %d: sold-out event %s", i, ev.data)
		}
	}
}

// buySellOut buys one ticket at a time on every tier from callers
// goroutines until the sale is sold out; it fails the test on any other
// outcome.
func buySellOut(t *testing.T, eng *engine.Engine, saleID string, callers int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bought int
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tier := range []string{"floor", "seat"} {
				for i := 0; ; i++ {
					_, _, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: saleID, TierID: tier, Quantity: 1,
						UserID: fmt.Sprintf("u%d-%d", g, i%200), IdempotencyKey: fmt.Sprintf("%d-%s-%d", g, tier, i)})
					var rej *engine.Rejection
					if errors.As(err, &rej) && rej.Code == engine.CodeSoldOut {
						break
					}
					if err != nil {
						t.Errorf("purchase: %v", err)
						return
					}
					mu.Lock()
					bought++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return bought
}

// smallBuffers makes every accepted connection's send buffer small, so
// that a client that stops reading blocks the server's writes quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestLiveSlowClient: a client that stops reading while the sale sells out
// at the fastest poll does not hold up the purchases (they all complete)
// nor the other streams (they get the sold-out state); shutdown then ends
// every stream, the stalled one included, within its deadline.
func TestLiveSlowClient(t *testing.T) {
	e := startEnv(t, envOptions{
		cfg: func(c *Config) {
			c.LivePollInterval = time.Millisecond // as many events as possible
			c.WriteTimeout = time.Minute          // the stalled write stays stalled
		},
		listener: func(ln net.Listener) net.Listener { return smallBuffers{ln} },
	})
	e.putSale("s1", 1500, 10000)
	stalled := dialLive(t, e.base, "s1", "")
	defer stalled.conn.Close()
	stalled.conn.(*net.TCPConn).SetReadBuffer(1024) // and never read

	readers := make([]*sseClient, 3)
	for i := range readers {
		readers[i] = dialLive(t, e.base, "s1", "")
		defer readers[i].conn.Close()
		readers[i].open(t)
	}
	done := make(chan error, len(readers))
	for _, c := range readers {
		go func() {
			_, err := c.until(`"sold_out":true`)
			done <- err
		}()
	}
	if bought := buySellOut(t, e.eng, "s1", 8); bought != 3000 {
		t.Fatalf("bought %d tickets of 3000", bought)
	}
	for range readers {
		if err := <-done; err != nil {
			t.Fatalf("a reading client did not get the sold-out state: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stalled stream: %v", err)
	}
}
