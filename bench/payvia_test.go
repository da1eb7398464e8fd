package bench

import (
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// TestFlashPayVia runs the flash sale paying through a provider's
// notification route instead of the generic webhook: Stripe (HMAC),
// Alipay (RSA2 form, the sale in CNY), WeChat Pay (RSA signature over
// headers and body, AES-256-GCM resource) and UnionPay (a certificate
// chained to the configured root). The audit must pass, orders
// must end up paid, and no notification may be refused: a refused
// payment changes nothing, which the audit alone would not notice.
func TestFlashPayVia(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onsale server")
	}
	for _, via := range []string{api.PayViaStripe, api.PayViaAlipay, api.PayViaWeChatPay, api.PayViaUnionPay} {
		t.Run(via, func(t *testing.T) {
			cfg := smallFlash(t, SysOnsale)
			cfg.PayVia = via
			cfg.Load.Duration = 2 * time.Second
			rep := runBuiltOnsale(t, cfg)
			s := &rep.Systems[0]
			if s.Error != "" {
				t.Fatalf("%s", s.Error)
			}
			if s.Audit == nil || !s.Audit.Passed {
				t.Fatalf("audit did not pass: %+v", s.Audit)
			}
			if s.Audit.Statuses["paid"] == 0 {
				t.Fatalf("no order paid through %s: %v", via, s.Audit.Statuses)
			}
			for _, c := range s.Codes {
				// 409: sold out, a hold gone. overloaded: the server shed
				// load (its inbox was full, as it may be with -race on a
				// loaded machine); a provider sends again. rate_limited:
				// a buyer's purchases and cancels beyond -user-rate (the
				// run's 2,000 buyers come round several times a second);
				// a notification is never rate limited.
				if c.Status >= 300 && c.Status != 409 && c.Code != "overloaded" && c.Code != "rate_limited" {
					t.Errorf("%d %s answered %d times (a refused notification?)", c.Status, c.Code, c.Count)
				}
			}
		})
	}
}

// TestPayViaRefusals checks the run refuses what it cannot pay through.
func TestPayViaRefusals(t *testing.T) {
	cfg := smallFlash(t, SysOnsale, SysRedis)
	cfg.PayVia = api.PayViaStripe
	if err := cfg.Validate(); err == nil {
		t.Error("stripe with redis accepted")
	}
	cfg = smallFlash(t, SysOnsale)
	cfg.PayVia = "paypal"
	if err := cfg.Validate(); err == nil {
		t.Error("unknown provider accepted")
	}
	cfg.PayVia = api.PayViaAlipay
	if err := cfg.Validate(); err != nil {
		t.Errorf("alipay flash refused: %v", err)
	}
	cfg.Scenario = ScenarioSustained
	cfg.Sustained = DefaultSustained()
	if err := cfg.Validate(); err == nil {
		t.Error("alipay sustained (EUR sale) accepted")
	}
}
