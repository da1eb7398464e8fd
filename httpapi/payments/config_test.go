package payments_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/payments"
	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

func TestLoad(t *testing.T) {
	k := paymentstest.SharedKeys()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("alipay.pem", paymentstest.PublicKeyPEM(&k.Alipay.PublicKey))
	write("wx1.pem", paymentstest.CertPEM(k.WeChatPayCert))
	write("wx-pub.pem", paymentstest.PublicKeyPEM(&k.Other.PublicKey))
	write("apiv3.key", append(append([]byte{}, apiV3Key...), '\n'))
	write("root.pem", paymentstest.CertPEM(k.UnionRoot))
	write("middle.pem", paymentstest.CertPEM(k.UnionMiddle))
	full := payments.Options{
		Dir: dir, StripeWebhookSecret: "whsec_a,whsec_b",
		AlipayAppID: alipayApp, AlipayPublicKey: "alipay.pem",
		WeChatPayMchID: wxMch, WeChatPayAppID: wxApp, WeChatPayAPIv3Key: "apiv3.key",
		WeChatPayPlatformCerts: "wx1.pem", WeChatPayPublicKeys: "PUB_KEY_ID_01=wx-pub.pem",
		UnionPayMerID: unionMer, UnionPayRootCert: filepath.Join(dir, "root.pem"), UnionPayMiddleCert: "middle.pem",
	}
	p, err := payments.Load(full)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stripe == nil || p.Alipay == nil || p.WeChatPay == nil || p.UnionPay == nil {
		t.Fatalf("not all providers configured: %+v", p)
	}
	// The APIv3 key read from its file verifies what the key as a value
	// does.
	full.WeChatPayAPIv3Key = string(apiV3Key)
	if _, err := payments.Load(full); err != nil {
		t.Errorf("APIv3 key as a value: %v", err)
	}
	if p, err := payments.Load(payments.Options{Dir: dir}); err != nil || p.Stripe != nil || p.Alipay != nil || p.WeChatPay != nil || p.UnionPay != nil {
		t.Errorf("nothing configured: %+v %v", p, err)
	}
	for name, o := range map[string]payments.Options{
		"alipay without key":    {Dir: dir, AlipayAppID: alipayApp},
		"alipay key missing":    {Dir: dir, AlipayAppID: alipayApp, AlipayPublicKey: "nope.pem"},
		"alipay key is a cert":  {Dir: dir, AlipayAppID: alipayApp, AlipayPublicKey: "root.pem"}, // parses: a certificate's key
		"wechat short key":      {Dir: dir, WeChatPayMchID: wxMch, WeChatPayAppID: wxApp, WeChatPayAPIv3Key: "short", WeChatPayPlatformCerts: "wx1.pem"},
		"wechat no certs":       {Dir: dir, WeChatPayMchID: wxMch, WeChatPayAppID: wxApp, WeChatPayAPIv3Key: string(apiV3Key)},
		"wechat bad public key": {Dir: dir, WeChatPayMchID: wxMch, WeChatPayAppID: wxApp, WeChatPayAPIv3Key: string(apiV3Key), WeChatPayPublicKeys: "wx-pub.pem"},
		"unionpay no middle":    {Dir: dir, UnionPayMerID: unionMer, UnionPayRootCert: "root.pem"},
	} {
		_, err := payments.Load(o)
		if name == "alipay key is a cert" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "-") {
			t.Errorf("%s: the error names no flag: %v", name, err)
		}
	}
}

// TestLoadUnionPayRefunds: UnionPay's refund client needs its signing key,
// that key's certificate (whose serial is certId) and the backUrl, and the
// notification settings whose certificates verify its answers.
func TestLoadUnionPayRefunds(t *testing.T) {
	k := paymentstest.SharedKeys()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Merchant)
	if err != nil {
		t.Fatal(err)
	}
	write("sign.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	write("sign.pem", paymentstest.CertPEM(paymentstest.Certificate(69629715588, "merchant", &k.Merchant.PublicKey, nil, k.Merchant, false, paymentstest.Epoch, time.Hour)))
	write("other.pem", paymentstest.CertPEM(k.OtherCert))
	write("root.pem", paymentstest.CertPEM(k.UnionRoot))
	write("middle.pem", paymentstest.CertPEM(k.UnionMiddle))
	o := payments.Options{Dir: dir, UnionPayMerID: unionMer, UnionPayRootCert: "root.pem", UnionPayMiddleCert: "middle.pem",
		UnionPaySignKey: "sign.key", UnionPaySignCert: "sign.pem", UnionPayBackURL: "https://tickets.example/v1/payments/unionpay"}
	p, err := payments.Load(o)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := p.Refunds[payments.ProviderUnionPay].(*payments.UnionPayRefunds)
	if !ok || u.CertID != "69629715588" || u.MerID != unionMer || u.GatewayURL != payments.UnionPayGatewayDefault {
		t.Fatalf("unionpay refunds: %+v", p.Refunds)
	}
	for name, change := range map[string]func(*payments.Options){
		"no back url":            func(o *payments.Options) { o.UnionPayBackURL = "" },
		"certificate of another": func(o *payments.Options) { o.UnionPaySignCert = "other.pem" },
		"no notification flags":  func(o *payments.Options) { o.UnionPayMerID, o.UnionPayRootCert, o.UnionPayMiddleCert = "", "", "" },
		"key missing":            func(o *payments.Options) { o.UnionPaySignKey = "nope.key" },
	} {
		bad := o
		change(&bad)
		if _, err := payments.Load(bad); err == nil || !strings.Contains(err.Error(), "-unionpay") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
