package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/fleet"
	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

// TestFleetProviderNotifications: the payment providers' own
// notifications reach the owner of the order's partition, whichever node
// receives them: a Stripe notification (the order id in its metadata)
// and WeChat Pay ones (the provider order number, in an encrypted body)
// sent to the owner of the other partition and to the standby. Each
// order is paid, and each provider is answered as it wants only once the
// owner applied the payment.
func TestFleetProviderNotifications(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream server")
	}
	const (
		stripeSecret = "whsec_fleet0123456789abcdef0123456789"
		mchID, appID = "1900000001", "wx0000000000000001"
		apiV3Key     = "fleet-apiv3-key-0123456789abcdef"
	)
	keys := paymentstest.SharedKeys()
	cert := filepath.Join(t.TempDir(), "wechatpay_platform.pem")
	if err := os.WriteFile(cert, paymentstest.CertPEM(keys.WeChatPayCert), 0o600); err != nil {
		t.Fatal(err)
	}
	f := startSmallFleet(t, []int{0, 1, 0}, "-stripe-webhook-secret", stripeSecret, "-wechatpay-mchid", mchID,
		"-wechatpay-appid", appID, "-wechatpay-apiv3-key", apiV3Key, "-wechatpay-platform-certs", cert)
	a, b, standby := f.nodes[0].addr, f.nodes[1].addr, f.nodes[2].addr
	waitPath(t, standby, "/healthz", 30*time.Second)
	client := &http.Client{Timeout: 10 * time.Second}
	p0, p1 := salesInBoth("prov", 1)
	now := time.Now().UTC()
	for _, id := range []string{p0[0], p1[0]} {
		body := fmt.Sprintf(`{"name":"Prov","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":10,`+
			`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":100}]}`,
			now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
		status, raw := call(client, "PUT", "http://"+a+"/v1/admin/sales/"+id, fleetTestAdmin, "", body)
		mustJSON(t, status, 201, raw, "PUT sale", nil)
	}
	token := buyerToken(t, client, a)
	type order struct {
		ID     string `json:"order_id"`
		Number string `json:"provider_order_no"`
		Status string `json:"status"`
	}
	buy := func(sale, key string) order {
		status, raw := callRetry(client, "POST", "http://"+a+"/v1/sales/"+sale+"/purchase", token, key, `{"tier":"ga","quantity":1}`)
		var o order
		mustJSON(t, purchased(status), 201, raw, "purchase", &o)
		if o.Number == "" {
			t.Fatalf("purchase answered no provider_order_no: %s", raw)
		}
		return o
	}
	send := func(addr, provider string, header http.Header, body []byte) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/payments/"+provider, strings.NewReader(string(body)))
		req.Header = header
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s notification to %s: %v", provider, addr, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	stripe := func(addr string, o order) {
		body := paymentstest.StripePaymentIntentEvent("evt_"+o.Number, "payment_intent.succeeded", "pi_"+o.Number, o.ID, 1000, "eur")
		h := http.Header{"Content-Type": {"application/json"},
			"Stripe-Signature": {paymentstest.StripeSignature(stripeSecret, body, time.Now())}}
		if status, raw := send(addr, "stripe", h, body); status != 200 || !strings.Contains(raw, `"outcome":"applied"`) {
			t.Errorf("Stripe notification of %s (partition %d) sent to %s: %d %s", o.ID, partitionOfSale(o.ID), addr, status, raw)
		}
	}
	wechat := func(addr string, o order) {
		resource := paymentstest.WeChatPayTransaction(appID, mchID, o.Number, "42"+o.Number, "SUCCESS", 1000, "EUR")
		body := paymentstest.WeChatPayBody([]byte(apiV3Key), "fleetnonce12", "transaction", "transaction", resource)
		nonce := "fleet-nonce-" + o.Number[:8]
		ts, sig := paymentstest.WeChatPaySign(keys.WeChatPay, time.Now(), nonce, body)
		h := http.Header{"Content-Type": {"application/json"}, "Wechatpay-Timestamp": {ts}, "Wechatpay-Nonce": {nonce},
			"Wechatpay-Signature": {sig}, "Wechatpay-Serial": {paymentstest.SerialOf(keys.WeChatPayCert)}}
		if status, raw := send(addr, "wechatpay", h, body); status != 204 {
			t.Errorf("WeChat Pay notification of %s (partition %d) sent to %s: %d %s", o.ID, partitionOfSale(o.ID), addr, status, raw)
		}
	}
	viaStripe := buy(p1[0], "s1")     // partition 1, told to partition 0's owner
	viaWeChat := buy(p1[0], "w1")     // partition 1, told to the standby
	viaWeChatHome := buy(p0[0], "w0") // partition 0, told to partition 1's owner
	stripe(a, viaStripe)
	wechat(standby, viaWeChat)
	wechat(b, viaWeChatHome)
	for _, o := range []order{viaStripe, viaWeChat, viaWeChatHome} {
		status, raw := call(client, "GET", "http://"+a+"/v1/orders/"+o.ID, token, "", "")
		var got order
		mustJSON(t, status, 200, raw, "GET order", &got)
		if got.Status != "paid" {
			t.Errorf("order %s (partition %d) is %s after its provider's notification", o.ID, partitionOfSale(o.ID), got.Status)
		}
	}
}

func partitionOfSale(orderID string) int {
	return fleet.PartitionOf([]byte(orderID[:strings.LastIndexByte(orderID, '.')]), 2)
}

// smtpSink is an SMTP server on loopback that keeps every message's
// data: just what net/smtp's client says, no TLS, no auth.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &smtpSink{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprint(c, "220 sink\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			fmt.Fprint(c, "250 sink\r\n")
		case cmd == "DATA":
			fmt.Fprint(c, "354 go on\r\n")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, data.String())
			s.mu.Unlock()
			fmt.Fprint(c, "250 kept\r\n")
		case cmd == "QUIT":
			fmt.Fprint(c, "221 bye\r\n")
			return
		default: // MAIL, RCPT, RSET, NOOP
			fmt.Fprint(c, "250 ok\r\n")
		}
	}
}

// count is how many messages contain every one of parts.
func (s *smtpSink) count(parts ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(m, p)
		}
		if all {
			n++
		}
	}
	return n
}

// TestFleetDeliveriesAndFollows: over two partitions, a follower of an
// event is mailed each phase of event.on_sale (announced, open) once for
// the event's sale in partition 1 as for the one in partition 0 (the
// follows are partition 0's); a webhook endpoint's delivery log, asked
// of either node, lists the deliveries of both partitions newest first
// under ids that name their partition, and a redelivery of partition 1's
// delivery asked of partition 0's owner reaches the receiver again.
func TestFleetDeliveriesAndFollows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream server")
	}
	var (
		mu       sync.Mutex
		received = map[string]int{} // event id -> deliveries
		byOrder  = map[string]string{}
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID   string
			Data struct {
				OrderID string `json:"order_id"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		received[p.ID]++
		byOrder[p.Data.OrderID] = p.ID
		mu.Unlock()
	}))
	defer receiver.Close()
	sink := startSMTPSink(t)
	f := startSmallFleet(t, []int{0, 1}, "-smtp-addr", sink.addr, "-smtp-from", "tickets@example.com", "-smtp-starttls", "false")
	a, b := f.nodes[0].addr, f.nodes[1].addr
	client := &http.Client{Timeout: 10 * time.Second}

	status, raw := call(client, "POST", "http://"+b+"/v1/admin/webhooks", fleetTestAdmin, "",
		fmt.Sprintf(`{"url":%q,"events":["order.created"],"secret":"fleet-webhook-secret-0123456789"}`, receiver.URL))
	var hook struct{ ID string }
	mustJSON(t, status, 201, raw, "register a webhook", &hook)
	deadline := time.Now().Add(20 * time.Second)
	for { // partition 1's owner learns of the endpoint through JetStream
		res, err := client.Get("http://" + b + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(body), `onsale_webhook_endpoint_backlog{endpoint="`+hook.ID+`"}`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the owner of partition 1 did not start delivering to the endpoint within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A follower of the event, through the node that is not the home one.
	token := buyerToken(t, client, b)
	status, raw = call(client, "PATCH", "http://"+b+"/v1/me", token, "", `{"email":"fan@example.com"}`)
	mustJSON(t, status, 200, raw, "PATCH /v1/me", nil)
	status, raw = call(client, "POST", "http://"+b+"/v1/me/follows", token, "", `{"kind":"event","value":"FleetTour"}`)
	mustJSON(t, status, 201, raw, "follow", nil)

	// One sale of the event in each partition, opening in 3 s.
	p0, p1 := salesInBoth("foll", 1)
	opens := time.Now().UTC().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	for _, id := range []string{p0[0], p1[0]} {
		body := fmt.Sprintf(`{"name":"Sale %s","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":10,`+
			`"event":"FleetTour","city":"Lyon","starts_at":%q,"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":100}]}`,
			id, opens.Format(time.RFC3339), opens.Add(time.Hour).Format(time.RFC3339), opens.Add(48*time.Hour).Format(time.RFC3339))
		status, raw := call(client, "PUT", "http://"+a+"/v1/admin/sales/"+id, fleetTestAdmin, "", body)
		mustJSON(t, status, 201, raw, "PUT sale", nil)
	}
	mailed := func(sale, phase string) int { return sink.count("To: fan@example.com", "Sale: Sale "+sale+" ", phase) }
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && (mailed(p0[0], "is open") == 0 || mailed(p1[0], "is open") == 0) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, sale := range []string{p0[0], p1[0]} {
		for _, phase := range []string{"was announced", "is open"} {
			if n := mailed(sale, phase); n != 1 {
				t.Errorf("sale %s (partition %d): %d emails saying it %s to its follower, want 1",
					sale, fleet.PartitionOf([]byte(sale), 2), n, phase)
			}
		}
	}

	// An order in each partition, partition 1's second: its delivery is
	// the newest.
	var orders []string
	for i, sale := range []string{p0[0], p1[0]} {
		status, raw := callRetry(client, "POST", "http://"+a+"/v1/sales/"+sale+"/purchase", token, fmt.Sprintf("d%d", i), `{"tier":"ga","quantity":1}`)
		var o struct {
			OrderID string `json:"order_id"`
		}
		mustJSON(t, purchased(status), 201, raw, "purchase", &o)
		orders = append(orders, o.OrderID)
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			_, ok := byOrder[o.OrderID]
			mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: no order.created delivered within 30s", o.OrderID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type delivery struct {
		ID       string `json:"id"`
		EventID  string `json:"event_id"`
		Attempts []struct {
			Redelivery bool `json:"redelivery"`
		} `json:"attempts"`
	}
	var log struct{ Deliveries []delivery }
	mu.Lock()
	want := []string{byOrder[orders[1]], byOrder[orders[0]]}
	mu.Unlock()
	for _, addr := range []string{a, b} {
		// A node logs a delivery just after its receiver answered, so the
		// receiver may have both while a log still shows one.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			status, raw := call(client, "GET", "http://"+addr+"/v1/admin/webhooks/"+hook.ID+"/deliveries", fleetTestAdmin, "", "")
			log.Deliveries = nil
			mustJSON(t, status, 200, raw, "deliveries", &log)
			if len(log.Deliveries) == 2 && log.Deliveries[0].EventID == want[0] && log.Deliveries[1].EventID == want[1] &&
				strings.HasPrefix(log.Deliveries[0].ID, "dlv_p1_") && strings.HasPrefix(log.Deliveries[1].ID, "dlv_p0_") {
				break
			}
			if len(log.Deliveries) > 2 || time.Now().After(deadline) {
				t.Fatalf("delivery log from %s: %s, want the events %v newest first, ids dlv_p1_ then dlv_p0_", addr, raw, want)
			}
		}
	}
	status, raw = call(client, "GET", "http://"+a+"/v1/admin/webhooks/"+hook.ID+"/deliveries?limit=1", fleetTestAdmin, "", "")
	var one struct{ Deliveries []delivery }
	mustJSON(t, status, 200, raw, "deliveries?limit=1", &one)
	if len(one.Deliveries) != 1 || one.Deliveries[0].ID != log.Deliveries[0].ID {
		t.Errorf("delivery log with limit=1: %s, want %s only", raw, log.Deliveries[0].ID)
	}
	if status, raw := call(client, "GET", "http://"+a+"/v1/admin/webhooks/wh_nosuch/deliveries", fleetTestAdmin, "", ""); status != 404 {
		t.Errorf("delivery log of no endpoint: %d %s", status, raw)
	}

	// Redeliver partition 1's through partition 0's owner.
	status, raw = call(client, "POST", "http://"+a+"/v1/admin/webhooks/"+hook.ID+"/deliveries/"+log.Deliveries[0].ID+":redeliver", fleetTestAdmin, "", "")
	var again delivery
	mustJSON(t, status, 200, raw, "redeliver", &again)
	if again.ID != log.Deliveries[0].ID || len(again.Attempts) < 2 || !again.Attempts[len(again.Attempts)-1].Redelivery {
		t.Errorf("redelivery of %s: %s", log.Deliveries[0].ID, raw)
	}
	mu.Lock()
	if n := received[log.Deliveries[0].EventID]; n != 2 {
		t.Errorf("event %s received %d times after its redelivery, want 2", log.Deliveries[0].EventID, n)
	}
	mu.Unlock()
	status, raw = call(client, "POST", "http://"+a+"/v1/admin/webhooks/"+hook.ID+"/deliveries/dlv_p7_1:redeliver", fleetTestAdmin, "", "")
	var problem struct{ Code string }
	mustJSON(t, status, 404, raw, "redeliver of no partition", &problem)
	if problem.Code != "unknown_delivery" {
		t.Errorf("redelivery of dlv_p7_1: %s", raw)
	}
}

// TestFleetRestoreOnOneNode: a fleet of two partitions with sales and
// orders in both is restored into one single-node data directory by
// `onsale restore-fleet` (refused while the fleet runs), which `onsale
// verify` finds sound; a single node started on it serves every sale and
// every order, to the buyer who registered on the fleet.
func TestFleetRestoreOnOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream server")
	}
	f := startSmallFleet(t, []int{0, 1})
	a, b := f.nodes[0].addr, f.nodes[1].addr
	client := &http.Client{Timeout: 10 * time.Second}
	p0, p1 := salesInBoth("rest", 2)
	sales := append(append([]string(nil), p0...), p1...)
	now := time.Now().UTC()
	var items []string
	for i, id := range sales {
		items = append(items, fmt.Sprintf(`{"id":%q,"name":"Rest %d","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,`+
			`"per_user_limit":10,"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":100}]}`,
			id, i, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
	}
	status, raw := call(client, "POST", "http://"+a+"/v1/admin/sales:load", fleetTestAdmin, "", `{"sales":[`+strings.Join(items, ",")+`]}`)
	mustJSON(t, status, 200, raw, "sales:load", nil)
	token := buyerToken(t, client, b)
	var orders []string
	for i, sale := range sales {
		for k := range 3 {
			status, raw := callRetry(client, "POST", "http://"+[]string{a, b}[k%2]+"/v1/sales/"+sale+"/purchase", token,
				fmt.Sprintf("r%d-%d", i, k), `{"tier":"ga","quantity":1}`)
			var o struct {
				OrderID string `json:"order_id"`
			}
			mustJSON(t, purchased(status), 201, raw, "purchase", &o)
			orders = append(orders, o.OrderID)
		}
	}

	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(f.nodes[0].dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.json"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	restore := []string{"restore-fleet", "-nats", f.js.URL(), "-fleet-partitions", "2", "-nats-replicas", "1", "-shards", "4", "-data", dir}
	var out strings.Builder
	if err := run(t.Context(), restore, &out, nil); err == nil || !strings.Contains(err.Error(), "leased") {
		t.Fatalf("restore-fleet while the fleet runs: %v, want a refusal naming the leases", err)
	}
	for _, n := range f.nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
		<-n.exited
	}
	deadline := time.Now().Add(20 * time.Second) // the leases end within 2 s of the last renewal
	for {
		err = run(t.Context(), restore, &out, nil)
		if err == nil || !strings.Contains(err.Error(), "leased") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restore-fleet: %v\n%s", err, out.String())
	}
	if err := run(t.Context(), []string{"verify", "-data", dir}, &out, nil); err != nil {
		t.Fatalf("verify of the restored directory: %v", err)
	}
	if err := run(t.Context(), restore, &out, nil); err == nil || !strings.Contains(err.Error(), "holds a log already") {
		t.Errorf("restore-fleet into a directory that has a log: %v", err)
	}

	// One node on it: every sale and order, to the same buyer.
	bin, err := fleetBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "-addr", addr, "-data", dir, "-shards", "4", "-user-rate", "0", "-min-free-disk", "0")
	cmd.Stderr = &prefixWriter{prefix: "single: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, addr, 30*time.Second)
	status, raw = call(client, "POST", "http://"+addr+"/v1/sessions", "", "", `{"username":"fleetbuyer","password":"correct horse battery"}`)
	var session struct{ Token string }
	mustJSON(t, status, 200, raw, "log in on the single node with the fleet's account", &session)
	token = session.Token
	status, raw = call(client, "GET", "http://"+addr+"/v1/admin/sales", fleetTestAdmin, "", "")
	var l struct{ Sales []struct{ ID string } }
	mustJSON(t, status, 200, raw, "admin sales", &l)
	if len(l.Sales) != len(sales) {
		t.Errorf("the single node lists %d sales, want %d: %s", len(l.Sales), len(sales), raw)
	}
	for _, id := range orders {
		if status, raw := call(client, "GET", "http://"+addr+"/v1/orders/"+id, token, "", ""); status != 200 {
			t.Errorf("order %s on the single node: %d %s", id, status, raw)
		}
	}
	status, raw = call(client, "GET", "http://"+addr+"/v1/me/orders?limit=100", token, "", "")
	var mine struct{ Orders []struct{} }
	mustJSON(t, status, 200, raw, "me/orders", &mine)
	if len(mine.Orders) != len(orders) {
		t.Errorf("the buyer has %d orders on the single node, want %d", len(mine.Orders), len(orders))
	}
	// It sells on: the sales are live there.
	status, raw = call(client, "POST", "http://"+addr+"/v1/sales/"+p1[0]+"/purchase", token, "after", `{"tier":"ga","quantity":1}`)
	mustJSON(t, status, 201, raw, "purchase on the single node", nil)
}
