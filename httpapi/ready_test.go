package httpapi

import (
	"strings"
	"testing"
)

// routeSample is one request per route, for tests that walk every route.
type routeSample struct{ method, path, body string }

func routeSamples(t *testing.T) map[route]routeSample {
	t.Helper()
	s := map[route]routeSample{
		routeHealthz:                {"GET", "/healthz", ""},
		routeReadyz:                 {"GET", "/readyz", ""},
		routeMetrics:                {"GET", "/metrics", ""},
		routeOpenAPI:                {"GET", "/openapi.json", ""},
		routeAdminPutSale:           {"PUT", "/v1/admin/sales/s2", ""},
		routeAdminCloseSale:         {"POST", "/v1/admin/sales/s1:close", ""},
		routeAdminReopenSale:        {"POST", "/v1/admin/sales/s1:reopen", ""},
		routeAdminLoadSales:         {"POST", "/v1/admin/sales:load", `{"sales":[]}`},
		routeAdminListSales:         {"GET", "/v1/admin/sales", ""},
		routeAdminSaleOrders:        {"GET", "/v1/admin/sales/s1/orders", ""},
		routeAdminRefund:            {"POST", "/v1/admin/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/refund", ""},
		routeRegister:               {"POST", "/v1/users", `{"username":"bob","password":"correct horse"}`},
		routeLogin:                  {"POST", "/v1/sessions", `{"username":"alice","password":"correct horse"}`},
		routeGetSale:                {"GET", "/v1/sales/s1", ""},
		routePurchase:               {"POST", "/v1/sales/s1/purchase", `{"tier":"floor","quantity":1}`},
		routeGetOrder:               {"GET", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa", ""},
		routeCancelOrder:            {"POST", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel", ""},
		routeMyOrders:               {"GET", "/v1/me/orders", ""},
		routeWebhook:                {"POST", "/v1/payments/webhook", `{}`},
		routeCheckIn:                {"POST", "/v1/checkin", `{"ticket":"s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.0"}`},
		routeAdminCreateCredential:  {"POST", "/v1/admin/credentials", `{"name":"Door A","role":"staff","sales":["s1"]}`},
		routeAdminListCredentials:   {"GET", "/v1/admin/credentials", ""},
		routeAdminRevokeCredential:  {"DELETE", "/v1/admin/credentials/cred_x", ""},
		routePayAtCounter:           {"POST", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/pay-at-counter", `{"method":"cash"}`},
		routeCheckInSync:            {"POST", "/v1/checkin:sync", `{"gate":"g","scans":[]}`},
		routeCheckInKey:             {"GET", "/v1/sales/s1/checkin-key", ""},
		routeRevocations:            {"GET", "/v1/sales/s1/revocations", ""},
		routeOrderTickets:           {"GET", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/tickets", ""},
		routeAdminRotateKey:         {"POST", "/v1/admin/sales/s1/checkin-keys:rotate", ""},
		routeAdminRetireKey:         {"POST", "/v1/admin/sales/s1/checkin-keys/1:retire", ""},
		routeAdminCreateCoupon:      {"POST", "/v1/admin/sales/s1/coupons", `{"code":"EARLY","percent_off":10}`},
		routeAdminListCoupons:       {"GET", "/v1/admin/sales/s1/coupons", ""},
		routeAdminPatchCoupon:       {"PATCH", "/v1/admin/sales/s1/coupons/EARLY", `{"disabled":true}`},
		routeTicketQR:               {"GET", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/tickets/0/qr.png", ""},
		routeTicketsPDF:             {"GET", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/tickets.pdf", ""},
		routeStripe:                 {"POST", "/v1/payments/stripe", `{}`},
		routeAlipay:                 {"POST", "/v1/payments/alipay", `a=b`},
		routeWeChatPay:              {"POST", "/v1/payments/wechatpay", `{}`},
		routeUnionPay:               {"POST", "/v1/payments/unionpay", `a=b`},
		routeCatalogue:              {"GET", "/v1/sales", ""},
		routeLiveSale:               {"GET", "/v1/sales/s1/live", ""},
		routeAdminSaleReport:        {"GET", "/v1/admin/sales/s1/report", ""},
		routeAdminSaleRushPNG:       {"GET", "/v1/admin/sales/s1/report/rush.png", ""},
		routeAdminEventReport:       {"GET", "/v1/admin/events/tour/report", ""},
		routeAdminOrdersCSV:         {"GET", "/v1/admin/sales/s1/orders.csv", ""},
		routeAdminAttendeesCSV:      {"GET", "/v1/admin/sales/s1/attendees.csv", ""},
		routeAdminBackup:            {"POST", "/v1/admin/backup", `{"to":"/backups/b1"}`},
		routeAdminAudit:             {"GET", "/v1/admin/audit", ""},
		routeMe:                     {"GET", "/v1/me", ""},
		routeUpdateMe:               {"PATCH", "/v1/me", `{"display_name":"Ann"}`},
		routeMePassword:             {"POST", "/v1/me/password", `{"old_password":"correct horse","new_password":"battery staple"}`},
		routeConsole:                {"GET", "/console/", ""},
		routeAdminCreateWebhook:     {"POST", "/v1/admin/webhooks", `{"url":"http://127.0.0.1:9/hook"}`},
		routeAdminListWebhooks:      {"GET", "/v1/admin/webhooks", ""},
		routeAdminDeleteWebhook:     {"DELETE", "/v1/admin/webhooks/wh_x", ""},
		routeAdminWebhookDeliveries: {"GET", "/v1/admin/webhooks/wh_x/deliveries", ""},
		routeAdminRedeliver:         {"POST", "/v1/admin/webhooks/wh_x/deliveries/dlv_1:redeliver", ""},
		routeFollow:                 {"POST", "/v1/me/follows", `{"kind":"venue","value":"Arena"}`},
		routeListFollows:            {"GET", "/v1/me/follows", ""},
		routeDeleteFollow:           {"DELETE", "/v1/me/follows/fol_x", ""},
		routeRefundRequest:          {"POST", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/refund-request", `{"reason":"ill"}`},
		routeExchange:               {"POST", "/v1/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/exchange", `{"tier":"floor"}`},
		routeAdminRefundQueue:       {"GET", "/v1/admin/refund-queue", ""},
		routeAdminSettleRefund:      {"POST", "/v1/admin/refund-queue/needs_refund.s1.aaaaaaaaaaaaaaaaaaaaaaaaaa:settle", `{"action":"refunded"}`},
		routeAdminArchiveSale:       {"POST", "/v1/admin/sales/s9:archive", ""},
		routeAdminUnarchiveSale:     {"POST", "/v1/admin/sales/s9:unarchive", ""},
		routeAdminRefunds:           {"GET", "/v1/admin/refunds", ""},
		routeAdminReconciliation:    {"POST", "/v1/admin/reconciliation", "reporting_category,gross\n"},
		routeAdminRetryRefund:       {"POST", "/v1/admin/refunds/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.0:retry", ""},
		routeAdminMarkRefunded:      {"POST", "/v1/admin/refunds/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.0:mark-refunded", ""},
		routeQueueJoin:              {"POST", "/v1/sales/s1/queue", ""},
		routeQueueMe:                {"GET", "/v1/sales/s1/queue/me", ""},
		routeQueueDraw:              {"GET", "/v1/sales/s1/queue/draw", ""},
		routeWaitlistJoin:           {"POST", "/v1/sales/s1/waitlist", `{"tier":"floor","quantity":1}`},
		routeWaitlistMe:             {"GET", "/v1/sales/s1/waitlist/me", ""},
		routeWaitlistLeave:          {"DELETE", "/v1/sales/s1/waitlist/me", ""},
	}
	for r := routeNone + 1; r < routeCount; r++ {
		smp, ok := s[r]
		if !ok {
			t.Fatalf("no sample request for route %s: add one", routes[r].name)
		}
		m := []byte(smp.method)
		if got, _ := matchRoute([]byte(smp.path)); offerRoute(followRoute(webhookRoute(meRoute(couponRoute(credentialRoute(got, m), m), m), m), m), m) != r || routes[r].method != smp.method {
			t.Fatalf("sample %s %s is route %s, not %s", smp.method, smp.path, routes[got].name, routes[r].name)
		}
	}
	return s
}

// TestGateWhileStarting: a server made without an engine serves the
// probes at once, /readyz red, and answers every API route 503
// unavailable with Retry-After, whoever asks; once the engine is attached
// it serves and turns ready.
func TestGateWhileStarting(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.Engine, c.Users = nil, nil }})
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
	e.want(e.do("GET", "/metrics", nil, ""), 200, "")
	e.want(e.do("GET", "/openapi.json", nil, ""), 200, "")
	r := e.want(e.do("GET", "/readyz", nil, ""), 503, "unavailable")
	if !strings.Contains(r.str("detail"), "recovering") {
		t.Errorf("readyz detail %q", r.str("detail"))
	}
	for rt, smp := range routeSamples(t) {
		if alwaysOpen(rt) {
			continue
		}
		for _, h := range []hdr{nil, e.admin(), e.buyer("u1").with("Idempotency-Key", "k")} {
			r := e.want(e.do(smp.method, smp.path, h, smp.body), 503, "unavailable")
			if r.header.Get("Retry-After") != "1" {
				t.Errorf("%s %s: Retry-After %q", smp.method, smp.path, r.header.Get("Retry-After"))
			}
		}
	}

	e.srv.Attach(e.eng, newTestJournal(t))
	e.want(e.do("GET", "/readyz", nil, ""), 200, "")
	e.putSale("s1", 10, 4)
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 201, "")
	e.want(e.do("POST", "/v1/users", nil, `{"username":"alice","password":"correct horse"}`), 201, "")
}

// TestWritesRefusedWhileDiskLow: with writes refused, every route that
// writes (the payment webhook included) answers 503 unavailable with
// Retry-After and changes nothing, reads and logins are served, /readyz is
// red with the reason; when writes are accepted again all works.
func TestWritesRefusedWhileDiskLow(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	order := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")
	e.want(e.do("POST", "/v1/users", nil, `{"username":"alice","password":"correct horse"}`), 201, "")
	before := string(e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").body)

	const reason = "the data directory's disk has 10 MiB free, under the 256 MiB minimum"
	e.srv.RefuseWrites(reason)
	r := e.want(e.do("GET", "/readyz", nil, ""), 503, "unavailable")
	if !strings.Contains(r.str("detail"), reason) {
		t.Errorf("readyz detail %q", r.str("detail"))
	}
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")

	wantWrites := map[route]bool{
		routeAdminPutSale: true, routeAdminCloseSale: true, routeAdminReopenSale: true, routeAdminLoadSales: true,
		routeAdminRefund: true, routeRegister: true, routePurchase: true, routeCancelOrder: true,
		routeWebhook: true, routeCheckIn: true, routeAdminCreateCredential: true, routeAdminRevokeCredential: true,
		routePayAtCounter: true, routeCheckInSync: true, routeAdminRotateKey: true, routeAdminRetireKey: true,
		routeStripe: true, routeAlipay: true, routeWeChatPay: true, routeUnionPay: true,
		routeAdminBackup:       true,
		routeAdminCreateCoupon: true, routeAdminPatchCoupon: true,
		routeUpdateMe: true, routeMePassword: true,
		routeAdminCreateWebhook: true, routeAdminDeleteWebhook: true, routeAdminRedeliver: true,
		routeRefundRequest: true, routeExchange: true, routeAdminSettleRefund: true,
		routeAdminArchiveSale: true, routeAdminUnarchiveSale: true,
		routeAdminRetryRefund: true, routeAdminMarkRefunded: true, routeAdminReconciliation: true,
		routeQueueJoin: true,
		routeFollow:    true, routeDeleteFollow: true,
		routeWaitlistJoin: true, routeWaitlistLeave: true,
	}
	for rt, smp := range routeSamples(t) {
		if writes(rt) != wantWrites[rt] {
			t.Errorf("route %s: writes = %v", routes[rt].name, writes(rt))
		}
		if !wantWrites[rt] {
			continue
		}
		r := e.want(e.do(smp.method, smp.path, e.admin(), smp.body), 503, "unavailable")
		if r.str("detail") != reason || r.header.Get("Retry-After") != "10" {
			t.Errorf("%s %s: detail %q, Retry-After %q", smp.method, smp.path, r.str("detail"), r.header.Get("Retry-After"))
		}
	}
	// Real writes, with valid credentials and bodies, change nothing.
	e.want(e.buy("s1", "u2", "k2", "floor", 1), 503, "unavailable")
	e.want(e.pay("evt_1", "payment.succeeded", order, 10000, "EUR"), 503, "unavailable")
	e.want(e.do("POST", "/v1/orders/"+order+"/cancel", e.buyer("u1"), ""), 503, "unavailable")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.saleJSON(20, 4)), 503, "unavailable")
	if after := string(e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").body); after != before {
		t.Errorf("the sale changed while writes were refused:\n%s\n%s", before, after)
	}
	// Reads and logins are served.
	if got := e.want(e.do("GET", "/v1/orders/"+order, e.buyer("u1"), ""), 200, "").str("status"); got != "pending" {
		t.Errorf("order status %q", got)
	}
	e.want(e.do("GET", "/v1/me/orders", e.buyer("u1"), ""), 200, "")
	e.want(e.do("GET", "/v1/admin/sales", e.admin(), ""), 200, "")
	e.want(e.do("GET", "/v1/admin/sales/s1/orders", e.admin(), ""), 200, "")
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"alice","password":"correct horse"}`), 200, "")

	e.srv.RefuseWrites("")
	e.want(e.do("GET", "/readyz", nil, ""), 200, "")
	e.want(e.pay("evt_1", "payment.succeeded", order, 10000, "EUR"), 200, "")
	e.want(e.buy("s1", "u2", "k2", "floor", 1), 201, "")
}
