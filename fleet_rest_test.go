package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
