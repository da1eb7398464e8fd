package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// TestLoadBodyLimitOnlyAfterAdminToken: the 8 MiB body limit of
// POST /v1/admin/sales:load is granted from the request head, before the
// body is read, and only to that exact route with the admin token. Every
// request here announces an 8 MiB body and sends none of it: the answer
// comes back at once (a server waiting for the body would answer 408 at
// its read timeout instead), so the server never read a byte of it.
func TestLoadBodyLimitOnlyAfterAdminToken(t *testing.T) {
	e := startEnv(t, envOptions{})
	headOf := func(length int, method, target, auth, extra string) string {
		h := method + " " + target + " HTTP/1.1\r\nHost: x\r\n"
		if auth != "" {
			h += "Authorization: " + auth + "\r\n"
		}
		return h + extra + fmt.Sprintf("Content-Length: %d\r\n\r\n", length)
	}
	head := func(method, target, auth, extra string) string { return headOf(8<<20, method, target, auth, extra) }
	admin, buyer := e.admin()["Authorization"], e.buyer("mallory")["Authorization"]
	door := "Bearer " + e.doorToken
	for _, tt := range []struct {
		name   string
		req    string
		status int
		code   string
	}{
		{"no token", head("POST", "/v1/admin/sales:load", "", ""), 401, "unauthorized"},
		{"wrong token", head("POST", "/v1/admin/sales:load", "Bearer not-the-admin", ""), 401, "unauthorized"},
		{"admin token, other scheme", head("POST", "/v1/admin/sales:load", "Basic "+e.adminToken, ""), 401, "unauthorized"},
		{"buyer token", head("POST", "/v1/admin/sales:load", buyer, ""), 403, "forbidden"},
		{"door token", head("POST", "/v1/admin/sales:load", door, ""), 403, "forbidden"},
		{"query string, no token", head("POST", "/v1/admin/sales:load?x=1", "", ""), 401, "unauthorized"},
		{"expect 100-continue, no token", head("POST", "/v1/admin/sales:load", "", "Expect: 100-continue\r\n"), 401, "unauthorized"},
		{"longer path, no token", head("POST", "/v1/admin/sales:loadx", "", ""), 413, "body_too_large"},
		{"longer path, admin", head("POST", "/v1/admin/sales:load/x", admin, ""), 413, "body_too_large"},
		{"GET, admin", head("GET", "/v1/admin/sales:load", admin, ""), 413, "body_too_large"},
		{"another admin route", head("PUT", "/v1/admin/sales/s1", admin, ""), 413, "body_too_large"},
		{"admin, over the load limit", headOf(8<<20+1, "POST", "/v1/admin/sales:load", admin, ""), 413, "body_too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			// fasthttp sends its interim 100 Continue before it compares
			// Content-Length with the limit; the final answer follows at
			// once, the body still unsent.
			got := strings.TrimPrefix(e.rawExchange(tt.req), "HTTP/1.1 100 Continue\r\n\r\n")
			wantRaw(t, got, tt.status, tt.code)
		})
	}
	// The admin still loads documents over the general limit.
	var sales []string
	for i := 0; len(strings.Join(sales, ",")) < 70<<10; i++ {
		sales = append(sales, strings.Replace(e.saleJSON(1, 1), `{"name"`, fmt.Sprintf(`{"id":"bulk%d","name"`, i), 1))
	}
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+strings.Join(sales, ",")+`]}`), 200, "")
}
