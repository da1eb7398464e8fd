package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile HTTP: requests built to hurt the server rather than to use it.
// Each is answered with a clear 4xx (or the connection is closed at the
// read timeout), nothing changes, and the server keeps answering others.

// dial opens a raw TCP connection to the test server over loopback.
func (e *testEnv) dial() net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClosed reads what the server sends until it closes the
// connection, for at most limit. closed says whether it did (EOF or
// reset) rather than the limit passing.
func readUntilClosed(c net.Conn, limit time.Duration) (got []byte, closed bool) {
	c.SetReadDeadline(time.Now().Add(limit))
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c) // returns at EOF (nil), a reset or the deadline
	var ne net.Error
	return buf.Bytes(), err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// rawExchange sends req on a new connection and returns everything the
// server answered before closing it.
func (e *testEnv) rawExchange(req string) string {
	e.t.Helper()
	got, err := e.tryRawExchange(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// tryRawExchange is rawExchange for goroutines other than the test's.
func (e *testEnv) tryRawExchange(req string) (string, error) {
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	got, closed := readUntilClosed(c, 10*time.Second)
	if !closed {
		return "", fmt.Errorf("the server kept the connection open after:\n%.200q\nanswer: %s", req, got)
	}
	return string(got), nil
}

// wantRaw fails unless a raw answer has the status and the problem code.
func wantRaw(t *testing.T, got string, status int, code string) {
	t.Helper()
	if !strings.HasPrefix(got, fmt.Sprintf("HTTP/1.1 %d ", status)) || !strings.Contains(got, `"code":"`+code+`"`) {
		t.Fatalf("want %d %s, got:\n%.600s", status, code, got)
	}
}

// TestHostileBodyLimits: a body over the limit is refused with 413 as soon
// as its size is known, before it is read: from Content-Length, or from
// the chunk header that crosses the limit.
func TestHostileBodyLimits(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	auth := e.buyer("u1")["Authorization"]
	head := "POST /v1/sales/s1/purchase HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + "\r\nIdempotency-Key: k\r\n"
	before := e.state("s1")
	for _, tt := range []struct{ name, req string }{
		{"content-length 1 GB, no body sent", head + "Content-Length: 1000000000\r\n\r\n"},
		{"content-length one past the limit", head + fmt.Sprintf("Content-Length: %d\r\n\r\n", 64<<10+1)},
		{"one chunk past the limit", head + "Transfer-Encoding: chunked\r\n\r\n10001\r\n"},
		{"chunks that add up past the limit", head + "Transfer-Encoding: chunked\r\n\r\n8000\r\n" + strings.Repeat("x", 0x8000) +
			"\r\n8000\r\n" + strings.Repeat("x", 0x8000) + "\r\n1\r\n"},
		{"chunk size that overflows", head + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			got := e.rawExchange(tt.req)
			if tt.name == "chunk size that overflows" {
				if !strings.HasPrefix(got, "HTTP/1.1 4") {
					t.Fatalf("want a 4xx, got:\n%.600s", got)
				}
				return
			}
			wantRaw(t, got, 413, "body_too_large")
		})
	}
	if after := e.state("s1"); after != before {
		t.Errorf("the state changed:\n%s\n%s", before, after)
	}
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
}

// TestHostileJSON: nesting far past any real document and strings that
// are not valid UTF-8 (raw, overlong, surrogate halves, escaped lone
// surrogates, in values and in names) are not JSON we read: 400
// malformed_json; duplicate members are JSON that we refuse: 422
// invalid_request. Each with a sentence; nothing changes and nothing
// panics.
func TestHostileJSON(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	buyer := e.buyer("mallory").with("Idempotency-Key", "k-hostile")
	purchase := func(name, body string) abuseCase {
		return abuseCase{"purchase " + name, "POST", "/v1/sales/s1/purchase", buyer, body, 400, "malformed_json"}
	}
	signed := func(name, body string) abuseCase {
		return abuseCase{"webhook " + name, "POST", "/v1/payments/webhook",
			hdr{"Onsale-Signature": SignWebhook(e.paySecret, []byte(body), e.clock.Now())}, body, 400, "malformed_json"}
	}
	// dup: a duplicate member is well-formed JSON, refused with 422.
	dup := func(c abuseCase) abuseCase {
		c.status, c.code = 422, "invalid_request"
		return c
	}
	sale := e.saleJSON(10, 4)
	const deep = 100_000
	deepArrays := strings.Repeat("[", deep) + strings.Repeat("]", deep)
	deepObjects := strings.Repeat(`{"a":`, deep) + "1" + strings.Repeat("}", deep)
	// Where a nested value meets a struct, the decoder stops at once;
	// where it must skip one (in place of a string), it stops at its depth
	// limit (10,000). 30,000 levels fit in the 64 KiB purchase body; the
	// load route takes 100,000.
	skipped := []string{ // bodies whose nesting the decoder must skip
		`{"sales":[{"id":"s2","name":` + deepArrays + `}]}`,
		`{"sales":[{"id":"s2","name":` + deepObjects + `}]}`,
	}
	load := func(name, body string) abuseCase {
		return abuseCase{"load " + name, "POST", "/v1/admin/sales:load", e.admin(), body, 400, "malformed_json"}
	}
	cases := []abuseCase{
		load("100k nested arrays in place of the sales", `{"sales":`+deepArrays+`}`),
		load("100k nested objects in place of a sale", `{"sales":[`+deepObjects+`]}`),
		load("100k nested arrays in a sale's name", skipped[0]),
		load("100k nested objects in a sale's name", skipped[1]),
		load("100k nested under an unknown member", `{"sales":[{"id":"s2","x":`+deepArrays+`}]}`),
	}
	e.runAbuse(append(cases, []abuseCase{
		purchase("30k nested arrays", `{"tier":`+strings.Repeat("[", 30_000)+strings.Repeat("]", 30_000)+`,"quantity":1}`),
		purchase("30k nested, never closed", `{"tier":`+strings.Repeat("[", 30_000)),

		dup(purchase("duplicate tier", `{"tier":"floor","tier":"seat","quantity":1}`)),
		dup(purchase("duplicate spelled with an escape", `{"tier":"floor","t\u0069er":"seat","quantity":1}`)),
		dup(purchase("duplicate quantity", `{"tier":"floor","quantity":1,"quantity":2}`)),
		{"sale duplicate currency", "PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(sale, `"currency":"EUR"`, `"currency":"EUR","currency":"USD"`, 1), 422, "invalid_request"},
		{"sale duplicate tier stock", "PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(sale, `"stock":10}`, `"stock":10,"stock":0}`, 1), 422, "invalid_request"},
		{"checkin duplicate", "POST", "/v1/checkin", e.admin(), `{"ticket":"a","ticket":"b"}`, 422, "invalid_request"},
		dup(signed("duplicate order_id", `{"id":"e1","type":"payment.succeeded","order_id":"a","order_id":"b","amount_cents":1,"currency":"EUR"}`)),

		purchase("raw 0xff", "{\"tier\":\"flo\xffor\",\"quantity\":1}"),
		purchase("overlong slash", "{\"tier\":\"\xc0\xaf\",\"quantity\":1}"),
		purchase("encoded surrogate half", "{\"tier\":\"\xed\xa0\x80\",\"quantity\":1}"),
		purchase("truncated sequence", "{\"tier\":\"floor\xe2\x82\",\"quantity\":1}"),
		purchase("escaped lone high surrogate", `{"tier":"\ud800","quantity":1}`),
		purchase("escaped lone low surrogate", `{"tier":"\udc00floor","quantity":1}`),
		purchase("invalid name", "{\"ti\xffer\":\"floor\",\"quantity\":1}"),
		purchase("byte order mark", "\xef\xbb\xbf{\"tier\":\"floor\",\"quantity\":1}"),
		{"sale name", "PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(sale, `"Concert"`, "\"Conc\xfert\"", 1), 400, "malformed_json"},
		{"register username", "POST", "/v1/users", nil, "{\"username\":\"mal\xfflory\",\"password\":\"correct horse\"}", 400, "malformed_json"},
		{"register password", "POST", "/v1/users", nil, "{\"username\":\"mallory\",\"password\":\"correct \xff horse\"}", 400, "malformed_json"},
		signed("event id", "{\"id\":\"e\xff1\",\"type\":\"payment.succeeded\",\"order_id\":\"a\",\"amount_cents\":1,\"currency\":\"EUR\"}"),
		{"idempotency key", "POST", "/v1/sales/s1/purchase", e.buyer("mallory").with("Idempotency-Key", "k\xff"), `{"tier":"floor","quantity":1}`, 422, "invalid_request"},
	}...), "s1")

	// The answer is a sentence, not an echo of the input.
	for _, body := range skipped {
		r := e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), body), 400, "malformed_json")
		if d := r.str("detail"); !strings.Contains(d, "exceeded max depth") || len(d) > 500 {
			t.Errorf("deep nesting detail (%d bytes): %.300s", len(d), d)
		}
	}
	page := string(e.want(e.do("GET", "/metrics", nil, ""), 200, "").body)
	if !strings.Contains(page, "onsale_http_panics_total 0") {
		t.Errorf("a handler panicked: %s", grepLines(page, "onsale_http_panics_total"))
	}
	// The key of the refused purchases is still free.
	e.want(e.do("POST", "/v1/sales/s1/purchase", buyer, `{"tier":"floor","quantity":1}`), 201, "")
}

// TestHostileHeaders: request heads larger than the read buffer, however
// they are made up, are 431; heads that are not HTTP are 400; the server
// answers the next client.
func TestHostileHeaders(t *testing.T) {
	e := startEnv(t, envOptions{})
	var many strings.Builder
	for i := range 300 {
		fmt.Fprintf(&many, "X-H%d: %s\r\n", i, strings.Repeat("v", 40))
	}
	for _, tt := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"one 9 KiB header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9<<10) + "\r\n\r\n", 431, "header_too_large"},
		{"300 headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + many.String() + "\r\n", 431, "header_too_large"},
		{"9 KiB path", "GET /v1/sales/" + strings.Repeat("s", 9<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, "header_too_large"},
		{"9 KiB token", "GET /v1/me/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("t", 9<<10) + "\r\n\r\n", 431, "header_too_large"},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x00", 64) + "\r\n\r\n", 400, "bad_request"},
		{"header without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "bad_request"},
		{"two content lengths", "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}", 400, "bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			wantRaw(t, e.rawExchange(tt.req), tt.status, tt.code)
			e.want(e.do("GET", "/healthz", nil, ""), 200, "")
		})
	}
}

// TestSlowClientClosedAtReadTimeout: a client that sends part of a request
// and stalls (or trickles it a byte at a time) holds its connection only
// until the read timeout, then is answered 408 and closed; clients on
// other connections are answered all the while.
func TestSlowClientClosedAtReadTimeout(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.ReadTimeout = readTimeout }})
	e.putSale("s1", 10, 4)
	for _, tt := range []struct {
		name    string
		partial string
		trickle bool // send partial one byte per 20 ms, then stall
	}{
		{"nothing sent", "", false},
		{"half a request line", "POST /v1/sales/s1/pur", false},
		{"head without its blank line", "GET /v1/sales/s1 HTTP/1.1\r\nHost: x\r\n", false},
		{"head and half the body", "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"username\":", false},
		{"a byte every 20 ms", "GET /v1/sales/s1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			c := e.dial()
			opened := time.Now()
			if tt.trickle {
				go trickle(c, tt.partial, 20*time.Millisecond)
			} else if _, err := io.WriteString(c, tt.partial); err != nil {
				t.Fatal(err)
			}

			// Others keep being served while this connection stalls.
			stop := make(chan struct{})
			served := make(chan int, 1)
			go func() { served <- serveOthers(e, stop) }()
			got, closed := readUntilClosed(c, 20*readTimeout)
			held := time.Since(opened)
			close(stop)
			n := <-served

			if !closed {
				t.Fatalf("still open after %v (read timeout %v)", held, readTimeout)
			}
			if held < readTimeout*3/4 || held > 10*readTimeout {
				t.Errorf("closed after %v, read timeout %v", held, readTimeout)
			}
			if len(got) > 0 {
				wantRaw(t, string(got), 408, "request_timeout")
			}
			if n < 1 {
				t.Errorf("no other client was answered while the slow one held its connection")
			}
			t.Logf("closed after %v; %d other requests answered meanwhile", held.Round(time.Millisecond), n)
		})
	}
}

// trickle writes s one byte at a time, every, until the server stops
// taking them; the number of writes is bounded by len(s).
func trickle(c net.Conn, s string, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; i < len(s); i++ {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		<-tick.C
	}
}

// serveOthers sends GET /v1/sales/s1 on its own connections until stop is
// closed (at most 10,000 times) and returns how many were answered 200.
// Any other outcome is an error of the test.
func serveOthers(e *testEnv, stop chan struct{}) int {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	n := 0
	for i := 0; i < 10_000; i++ {
		select {
		case <-stop:
			return n
		default:
		}
		res, err := client.Get(e.base + "/v1/sales/s1")
		if err != nil {
			e.t.Errorf("another client: %v", err)
			return n
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			e.t.Errorf("another client: %d", res.StatusCode)
			return n
		}
		n++
	}
	return n
}

// TestManySlowClientsDoNotBlockOthers: 200 connections stalled mid-request
// at once; normal requests are all answered while every one of them is
// still open (each is closed only at the read timeout), and then all 200
// are closed.
func TestManySlowClientsDoNotBlockOthers(t *testing.T) {
	const slow, normal, readTimeout = 200, 50, 2 * time.Second
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.ReadTimeout = readTimeout }})
	e.putSale("s1", 10, 4)
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = e.dial()
		if _, err := io.WriteString(conns[i], "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
	}
	// Watch every slow connection for its close.
	closedAt := make(chan time.Time, slow)
	for _, c := range conns {
		go func() {
			if _, closed := readUntilClosed(c, 5*readTimeout); closed {
				closedAt <- time.Now()
			} else {
				closedAt <- time.Time{}
			}
		}()
	}

	for i := range normal {
		e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "")
		e.want(e.buy("s1", fmt.Sprintf("u%d", i), "k", "floor", 0), 422, "invalid_quantity")
	}
	normalDone := time.Now()

	var first time.Time
	for range slow {
		at := <-closedAt
		if at.IsZero() {
			t.Fatalf("a slow connection was still open %v after it stalled", 5*readTimeout)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if !normalDone.Before(first) {
		t.Errorf("normal requests finished at %v, after the first slow client was closed at %v: they waited",
			normalDone.Format("15:04:05.000"), first.Format("15:04:05.000"))
	}
}

// TestGarbageDoesNotGrowTheHeap: 1,000 hostile requests (oversized,
// deeply nested, over-long heads, not HTTP at all) leave the heap, after
// collection, about where it was.
func TestGarbageDoesNotGrowTheHeap(t *testing.T) {
	const requests, workers, growthMax = 1000, 8, 4 << 20
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	auth := e.buyer("u1")["Authorization"]
	purchase := "POST /v1/sales/s1/purchase HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " + auth +
		"\r\nIdempotency-Key: k\r\n"
	deep := `{"tier":` + strings.Repeat("[", 30_000)
	kinds := []struct {
		req    string
		status string
	}{
		{purchase + "Content-Length: 1000000000\r\n\r\n", "413"},
		{purchase + "Transfer-Encoding: chunked\r\n\r\n10001\r\n", "413"},
		{purchase + fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(deep), deep), "400"},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9<<10) + "\r\n\r\n", "431"},
		{"\x16\x03\x01" + strings.Repeat("\xff", 200) + "\r\n\r\n", "400"},
	}
	send := func(n int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					k := kinds[i%len(kinds)]
					got, err := e.tryRawExchange(k.req)
					if err != nil || !strings.HasPrefix(got, "HTTP/1.1 "+k.status) {
						e.t.Errorf("want %s, got %.200s (%v)", k.status, got, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties the sync.Pools
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	send(50) // warm up the server's pools and the engine's
	before := heap()
	send(requests)
	after := heap()
	t.Logf("heap %d KiB before, %d KiB after %d hostile requests", before>>10, after>>10, requests)
	if after > before+growthMax {
		t.Errorf("heap grew by %d KiB over %d hostile requests (bound %d KiB)", (after-before)>>10, requests, growthMax>>10)
	}
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
}
