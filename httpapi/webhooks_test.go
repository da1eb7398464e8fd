package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookReceiver is a webhook endpoint on loopback that verifies signatures.
type hookReceiver struct {
	mu     sync.Mutex
	secret string
	bodies []string
	bad    int
	got    chan struct{}
}

func newHookReceiver(t *testing.T, secret string) (*hookReceiver, string) {
	h := &hookReceiver{secret: secret, got: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		ts, sig, _ := strings.Cut(r.Header.Get("Onsale-Signature"), ",v1=")
		m := hmac.New(sha256.New, []byte(h.secret))
		m.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
		m.Write(body)
		if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
			h.bad++
			w.WriteHeader(400)
			return
		}
		h.bodies = append(h.bodies, string(body))
		h.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL + "/onsale"
}

func (h *hookReceiver) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		h.mu.Lock()
		got := append([]string(nil), h.bodies...)
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-h.got:
		case <-deadline:
			t.Fatalf("timed out waiting for %d deliveries, got %d", n, len(got))
		}
	}
}

// waitEndpoint waits until the notifier runs the endpoint.
func (e *testEnv) waitEndpoint(id string) {
	for i := 0; e.notifier.Backlog(id) < 0; i++ {
		if i == 2000 {
			e.t.Fatalf("endpoint %s never started", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookEndpoints: register, list, deliver signed, read the delivery
// log, redeliver, delete; every admin change audited.
func TestWebhookEndpoints(t *testing.T) {
	e := startEnv(t, envOptions{})
	const secret = "a-secret-of-the-receiver-0123"
	rcv, url := newHookReceiver(t, secret)
	r := e.want(e.do("POST", "/v1/admin/webhooks", e.admin().with("X-Request-Id", "req-create"),
		`{"url":"`+url+`","events":["order.created","order.paid"],"secret":"`+secret+`"}`), 201, "")
	id := r.str("id")
	if !strings.HasPrefix(id, "wh_") || r.str("secret") != secret || r.header.Get("Location") != "/v1/admin/webhooks/"+id {
		t.Fatalf("create: %s %v", r.body, r.header)
	}
	drawn := e.want(e.do("POST", "/v1/admin/webhooks", e.admin(), `{"url":"http://127.0.0.1:9/x"}`), 201, "")
	if !strings.HasPrefix(drawn.str("secret"), "whsec_") || len(drawn.str("secret")) < 40 {
		t.Fatalf("drawn secret %q", drawn.str("secret"))
	}
	list := e.want(e.do("GET", "/v1/admin/webhooks", e.admin(), ""), 200, "")
	if strings.Contains(string(list.body), secret) || strings.Contains(string(list.body), drawn.str("secret")) ||
		!strings.Contains(string(list.body), id) {
		t.Fatalf("list shows a secret or misses the endpoint: %s", list.body)
	}
	e.want(e.do("DELETE", "/v1/admin/webhooks/"+drawn.str("id"), e.admin(), ""), 200, "")

	e.waitEndpoint(id)
	e.putSale("s1", 10, 4)
	order := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")
	e.want(e.pay("evt_1", "payment.succeeded", order, 10000, "EUR"), 200, "")
	got := rcv.wait(t, 2)
	if !strings.Contains(got[0], `"type":"order.created"`) || !strings.Contains(got[0], `"order_id":"`+order+`"`) ||
		!strings.Contains(got[1], `"type":"order.paid"`) || !strings.Contains(got[1], `"status":"paid"`) {
		t.Fatalf("deliveries:\n%s", strings.Join(got, "\n"))
	}

	var ds []any
	for i := 0; ; i++ { // logged just after the receiver answered
		ds = e.want(e.do("GET", "/v1/admin/webhooks/"+id+"/deliveries?limit=10", e.admin(), ""), 200, "").json()["deliveries"].([]any)
		if len(ds) == 2 && ds[0].(map[string]any)["state"] == "delivered" || i == 1000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	newest := ds[0].(map[string]any)
	if len(ds) != 2 || newest["type"] != "order.paid" || newest["state"] != "delivered" {
		t.Fatalf("delivery log: %v", ds)
	}
	dlv := newest["id"].(string)
	re := e.want(e.do("POST", "/v1/admin/webhooks/"+id+"/deliveries/"+dlv+":redeliver", e.admin().with("X-Request-Id", "req-redeliver"), ""), 200, "").json()
	if fmt.Sprint(re["attempt_count"]) != "2" || re["event_id"] != newest["event_id"] {
		t.Fatalf("redeliver: %v", re)
	}
	if again := rcv.wait(t, 3); again[2] != got[1] {
		t.Fatalf("redelivered %s, want the same body %s", again[2], got[1])
	}
	e.want(e.do("DELETE", "/v1/admin/webhooks/"+id, e.admin().with("X-Request-Id", "req-delete"), ""), 200, "")
	e.want(e.do("GET", "/v1/admin/webhooks/"+id+"/deliveries", e.admin(), ""), 404, "unknown_webhook")

	for _, c := range []struct{ action, reqID, target string }{
		{"admin_create_webhook", "req-create", id}, {"admin_redeliver_webhook", "req-redeliver", id + "/" + dlv},
		{"admin_delete_webhook", "req-delete", id},
	} {
		entries := e.want(e.do("GET", "/v1/admin/audit?action="+c.action, e.admin(), ""), 200, "").json()["entries"].([]any)
		found := false
		for _, x := range entries {
			a := x.(map[string]any)
			if a["request_id"] == c.reqID {
				found = a["target"] == c.target && a["outcome"] == "ok" && a["actor"] == "admin"
			}
		}
		if !found {
			t.Errorf("%s: no audit entry for %s with target %s: %v", c.action, c.reqID, c.target, entries)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.bad != 0 {
		t.Fatalf("%d deliveries with a bad signature", rcv.bad)
	}
}

// TestWebhookBadInput: every route refuses what it cannot use with a code,
// and changes nothing.
func TestWebhookBadInput(t *testing.T) {
	e := startEnv(t, envOptions{})
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/admin/webhooks", `{"url":`, 400, "malformed_json"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/x","nope":1}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"ftp://127.0.0.1/x"}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"/relative"}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://user:pw@127.0.0.1/x"}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/` + strings.Repeat("x", 2100) + `"}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/x","secret":"short"}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/x","events":["order.nope"]}`, 422, "invalid_request"},
		{"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/x","events":["order.paid","order.paid"]}`, 422, "invalid_request"},
		{"DELETE", "/v1/admin/webhooks/wh_nope", "", 404, "unknown_webhook"},
		{"GET", "/v1/admin/webhooks/wh_nope/deliveries", "", 404, "unknown_webhook"},
		{"POST", "/v1/admin/webhooks/wh_nope/deliveries/dlv_1:redeliver", "", 404, "unknown_webhook"},
	} {
		e.want(e.do(c.method, c.path, e.admin(), c.body), c.status, c.code)
	}
	id := e.want(e.do("POST", "/v1/admin/webhooks", e.admin(), `{"url":"http://127.0.0.1:9/x"}`), 201, "").str("id")
	for _, q := range []string{"limit=0", "limit=201", "limit=x"} {
		e.want(e.do("GET", "/v1/admin/webhooks/"+id+"/deliveries?"+q, e.admin(), ""), 400, "invalid_query")
	}
	for _, d := range []string{"dlv_999", "nope", "dlv_"} {
		e.want(e.do("POST", "/v1/admin/webhooks/"+id+"/deliveries/"+d+":redeliver", e.admin(), ""), 404, "unknown_delivery")
	}
	e.want(e.do("GET", "/v1/admin/webhooks", e.buyer("u1"), ""), 403, "forbidden")
	e.want(e.do("POST", "/v1/admin/webhooks", nil, `{"url":"http://127.0.0.1:9/x"}`), 401, "unauthorized")
	list := e.want(e.do("GET", "/v1/admin/webhooks", e.admin(), ""), 200, "").json()["webhooks"].([]any)
	if len(list) != 1 {
		t.Fatalf("bad input changed the endpoints: %v", list)
	}
}

// TestNotifierReadsTheProfile: the email the notifier mails is the one in
// the buyer's sealed profile; a buyer without one, or whose login is the
// site's, has none; the tickets PDF is the one GET tickets.pdf serves.
func TestNotifierReadsTheProfile(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("POST", "/v1/users", nil, `{"username":"ann","password":"correct horse"}`), 201, "")
	login := e.want(e.do("POST", "/v1/sessions", nil, `{"username":"ann","password":"correct horse"}`), 200, "")
	ann := hdr{"Authorization": "Bearer " + login.str("token")}
	if got, err := e.srv.emailOf("user:ann"); err != nil || got != "" {
		t.Fatalf("before PATCH: %q %v", got, err)
	}
	e.want(e.do("PATCH", "/v1/me", ann, `{"email":"Ann.Lee@Example.COM"}`), 200, "")
	want := e.want(e.do("GET", "/v1/me", ann, ""), 200, "").str("email")
	if got, err := e.srv.emailOf("user:ann"); err != nil || got != want || want == "" {
		t.Fatalf("emailOf: %q %v, want %q", got, err, want)
	}
	for _, user := range []string{"user:nobody", "site-user-1"} {
		if got, err := e.srv.emailOf(user); err != nil || got != "" {
			t.Fatalf("emailOf(%s): %q %v", user, got, err)
		}
	}
	e.putSale("s1", 10, 4)
	order := e.paidOrder("u1", "k1", 2)
	pdf, err := e.srv.orderTicketsPDF(e.srv.reqCtx(), order)
	served := e.want(e.do("GET", "/v1/orders/"+order+"/tickets.pdf", e.admin(), ""), 200, "").body
	// Not byte for byte: each rendering signs the codes anew.
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) || len(pdf) < len(served)-64 || len(pdf) > len(served)+64 {
		t.Fatalf("orderTicketsPDF: %d bytes, %v; the route served %d", len(pdf), err, len(served))
	}
}
