package payments

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseSettlementFixtures: each format's fixture gives its payment and
// refund rows, amounts in minor units without floating point (0.10 is 10,
// 19999.99 is 1999999), and skips the rows of other kinds, the headers and
// the summaries.
func TestParseSettlementFixtures(t *testing.T) {
	want := "payment tx_a 1999999\npayment tx_c 10\npayment tx_d 1999998\npayment tx_e 10\npayment tx_f 10\nrefund tx_f 10\n"
	for _, file := range []string{"stripe", "alipay", "alipay_gbk", "wechatpay", "wechatpay_2016"} {
		p, _, _ := strings.Cut(file, "_")
		data, err := os.ReadFile("../testdata/settlement/" + file + ".csv")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		err = ParseSettlement(p, bytes.NewReader(data), func(r *SettlementRow) error {
			kind := "payment"
			if r.Kind == SettlementRefund {
				kind = "refund"
			}
			if r.AtMs == 0 || r.Currency == "" {
				t.Errorf("%s line %d: no time or currency: %+v", p, r.Line, r)
			}
			fmt.Fprintf(&b, "%s %s %d\n", kind, r.TransactionID, r.AmountMinor)
			return nil
		})
		if err != nil || b.String() != want {
			t.Errorf("%s: %v\n got %s\nwant %s", file, err, b.String(), want)
		}
	}
}

func TestParseSettlementRefusals(t *testing.T) {
	for _, c := range []struct{ provider, body string }{
		{ProviderStripe, "reporting_category,gross\ncharge,1.00\n"},                         // no payment_intent_id column
		{ProviderStripe, "reporting_category,gross,payment_intent_id\ncharge,1.5e3,pi_1\n"}, // an exponent
		{ProviderStripe, "reporting_category,gross,payment_intent_id\ncharge,0.101,pi_1\n"}, // a third decimal
		{ProviderWeChatPay, "交易状态,微信订单号,应结订单金额\n`SUCCESS,`42,`NaN\n"},                       // not a number
		{ProviderAlipay, "#only comments\n"},                                                // no header
		{"paypal", "a,b\n"},
	} {
		if err := ParseSettlement(c.provider, strings.NewReader(c.body), func(*SettlementRow) error { return nil }); err == nil {
			t.Errorf("%s %q: accepted", c.provider, c.body)
		}
	}
}

func FuzzParseSettlement(f *testing.F) {
	for _, file := range []string{"stripe", "alipay", "alipay_gbk", "wechatpay", "wechatpay_2016"} {
		if data, err := os.ReadFile("../testdata/settlement/" + file + ".csv"); err == nil {
			p, _, _ := strings.Cut(file, "_")
			f.Add(p, data)
		}
	}
	f.Fuzz(func(t *testing.T, provider string, body []byte) {
		ParseSettlement(provider, bytes.NewReader(body), func(r *SettlementRow) error {
			if r.AmountMinor < 0 || r.TransactionID == "" {
				t.Fatalf("row %+v", r)
			}
			return nil
		})
	})
}

// TestAlipayBillEncoding: Alipay's bill comes as GBK (GB18030 read); the
// same bill saved as UTF-8, with or without a BOM, reads the same; a
// UTF-8 file whose first 64 KiB end in the middle of a character is still
// UTF-8.
func TestAlipayBillEncoding(t *testing.T) {
	utf, err := os.ReadFile("../testdata/settlement/alipay.csv")
	if err != nil {
		t.Fatal(err)
	}
	gbk, err := os.ReadFile("../testdata/settlement/alipay_gbk.csv")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(utf, gbk) || utf8.Valid(gbk) {
		t.Fatal("the GBK fixture is not GBK")
	}
	read := func(data []byte) string {
		var b strings.Builder
		if err := ParseSettlement(ProviderAlipay, bytes.NewReader(data), func(r *SettlementRow) error {
			fmt.Fprintf(&b, "%d %s %d %d %s;", r.Kind, r.TransactionID, r.AmountMinor, r.AtMs, r.RefundKey)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	want := read(utf)
	long := append([]byte("#"+strings.Repeat("说明", 64<<10/6)+"\n"), utf...) // a header line longer than the peek
	for name, data := range map[string][]byte{"gbk": gbk, "bom": append([]byte("\xef\xbb\xbf"), utf...), "long utf-8": long} {
		if got := read(data); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}
