package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

const frontend = "https://tickets.example"

// preflightOf is what a browser sends before a cross-origin request that
// is not "simple" (a JSON body, an Authorization header).
func preflightOf(origin, method string) hdr {
	return hdr{"Origin": origin, "Access-Control-Request-Method": method,
		"Access-Control-Request-Headers": "authorization,content-type,idempotency-key"}
}

// TestCORSAllowedOrigin: with -cors-origins listing the frontend, its
// preflights are answered 204 with the route's method and the headers
// the API reads, before authentication; every answer to it (errors too)
// names it in Access-Control-Allow-Origin and exposes Location and
// Retry-After; credentials mode is never offered.
func TestCORSAllowedOrigin(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.CORSOrigins = []string{frontend, "http://localhost:5173"} }})
	e.putSale("s1", 10, 4)

	r := e.want(e.do("OPTIONS", "/v1/sales/s1/purchase", preflightOf(frontend, "POST"), ""), 204, "")
	wantHeaders(t, r, map[string]string{
		"Access-Control-Allow-Origin":      frontend,
		"Access-Control-Allow-Methods":     "POST",
		"Access-Control-Allow-Headers":     "Authorization, Idempotency-Key, Content-Type, Last-Event-ID",
		"Access-Control-Max-Age":           "600",
		"Vary":                             "Origin",
		"Access-Control-Allow-Credentials": "",
	})
	if len(r.body) != 0 {
		t.Errorf("preflight body %q", r.body)
	}
	r = e.want(e.do("OPTIONS", "/v1/sales/s1", preflightOf("http://localhost:5173", "GET"), ""), 204, "")
	wantHeaders(t, r, map[string]string{"Access-Control-Allow-Origin": "http://localhost:5173", "Access-Control-Allow-Methods": "GET, HEAD"})
	// Admin routes too: a back office on the listed origin.
	e.want(e.do("OPTIONS", "/v1/admin/sales:load", preflightOf(frontend, "POST"), ""), 204, "")

	cross := func(h hdr) hdr { return h.with("Origin", frontend) }
	exposed := map[string]string{
		"Access-Control-Allow-Origin":      frontend,
		"Access-Control-Expose-Headers":    "Location, Retry-After, Next-Cursor",
		"Vary":                             "Origin",
		"Access-Control-Allow-Credentials": "",
	}
	for _, tt := range []struct {
		name, method, path string
		h                  hdr
		body               string
		status             int
	}{
		{"public read", "GET", "/v1/sales/s1", hdr{}, "", 200},
		{"purchase", "POST", "/v1/sales/s1/purchase", e.buyer("u1").with("Idempotency-Key", "k1"), `{"tier":"floor","quantity":1}`, 201},
		{"no token", "POST", "/v1/sales/s1/purchase", hdr{"Idempotency-Key": "k2"}, `{"tier":"floor","quantity":1}`, 401},
		{"sold out", "POST", "/v1/sales/s1/purchase", e.buyer("u2").with("Idempotency-Key", "k3"), `{"tier":"floor","quantity":11}`, 409},
		{"unknown path", "GET", "/v1/nowhere", hdr{}, "", 404},
		{"wrong method", "DELETE", "/v1/sales/s1", hdr{}, "", 405},
	} {
		r := e.do(tt.method, tt.path, cross(tt.h), tt.body)
		if r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
		t.Run(tt.name, func(t *testing.T) { wantHeaders(t, r, exposed) })
	}
	// fasthttp's own refusals (here a body over the limit) carry them too.
	got := e.rawExchange(fmt.Sprintf("POST /v1/users HTTP/1.1\r\nHost: x\r\nOrigin: %s\r\nContent-Length: %d\r\n\r\n", frontend, 64<<10+1))
	wantRaw(t, got, 413, "body_too_large")
	if !strings.Contains(got, "Access-Control-Allow-Origin: "+frontend+"\r\n") {
		t.Errorf("413 without Access-Control-Allow-Origin:\n%.400s", got)
	}
}

// TestCORSOtherOrigins: an origin not listed gets no
// Access-Control-Allow-Origin and its preflights 403 with a sentence; by
// default (no -cors-origins) no origin is listed and nothing of CORS is
// sent, except that preflights are refused the same way, not 405.
func TestCORSOtherOrigins(t *testing.T) {
	for _, tt := range []struct {
		name    string
		origins []string
		vary    string
		detail  string
	}{
		{"default: same origin only", nil, "", "-cors-origins"},
		{"another origin listed", []string{"https://other.example"}, "Origin", "not allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, envOptions{cfg: func(c *Config) { c.CORSOrigins = tt.origins }})
			e.putSale("s1", 10, 4)
			r := e.want(e.do("OPTIONS", "/v1/sales/s1/purchase", preflightOf(frontend, "POST"), ""), 403, "forbidden")
			if !strings.Contains(r.str("detail"), tt.detail) {
				t.Errorf("detail %q", r.str("detail"))
			}
			none := map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "",
				"Access-Control-Expose-Headers": "", "Vary": tt.vary}
			wantHeaders(t, r, none)
			// The request itself is answered (CORS is the browser's to
			// enforce), without a grant.
			r = e.want(e.do("GET", "/v1/sales/s1", hdr{"Origin": frontend}, ""), 200, "")
			wantHeaders(t, r, none)
			// An OPTIONS that is not a preflight is still 405.
			e.want(e.do("OPTIONS", "/v1/sales/s1", nil, ""), 405, "method_not_allowed")
		})
	}
}

// TestCORSAnyOrigin: "*" grants every origin with "*", never with
// credentials.
func TestCORSAnyOrigin(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.CORSOrigins = []string{"*"} }})
	e.putSale("s1", 10, 4)
	r := e.want(e.do("OPTIONS", "/v1/sales/s1/purchase", preflightOf("https://anyone.example", "POST"), ""), 204, "")
	wantHeaders(t, r, map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": ""})
	r = e.want(e.do("GET", "/v1/sales/s1", hdr{"Origin": "https://anyone.example"}, ""), 200, "")
	wantHeaders(t, r, map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": ""})
}

func TestParseCORSOrigins(t *testing.T) {
	got, err := ParseCORSOrigins(" https://Tickets.Example/ , http://localhost:5173,https://a.example:443,http://b.example:80,http://[::1]:8080,,*")
	want := []string{"https://tickets.example", "http://localhost:5173", "https://a.example", "http://b.example", "http://[::1]:8080", "*"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if got, err := ParseCORSOrigins(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %q, %v", got, err)
	}
	for _, bad := range []string{"tickets.example", "ftp://tickets.example", "https://", "https://tickets.example/app",
		"https://tickets.example?x=1", "https://user@tickets.example", "https://tickets.example#x", "https://a.example,nope"} {
		if _, err := ParseCORSOrigins(bad); err == nil || !strings.Contains(err.Error(), "scheme://host") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// wantHeaders checks response headers; "" means absent.
func wantHeaders(t *testing.T, r *resp, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := strings.Join(r.header.Values(k), ", "); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}
