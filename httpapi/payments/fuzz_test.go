package payments

import (
	"fmt"
	"testing"
)

// Fuzz targets for every parser of provider input. Seeds are in
// testdata/fuzz/<target>; run one with go test -fuzz=FuzzX -fuzztime=30s.

func FuzzParseDecimalMinor(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseDecimalMinor(s)
		if err != nil {
			return
		}
		if n < 0 || n > amountMinorMax {
			t.Fatalf("%q parsed to %d", s, n)
		}
		// What was accepted means what it says: its canonical spelling
		// parses to the same amount.
		if m, err := ParseDecimalMinor(fmt.Sprintf("%d.%02d", n/100, n%100)); err != nil || m != n {
			t.Fatalf("%q = %d, but its canonical spelling gives %d, %v", s, n, m, err)
		}
	})
}

func FuzzParseForm(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		fm, err := parseForm(body)
		if err != nil {
			return
		}
		if len(fm) == 0 || len(fm) > formFieldsMax {
			t.Fatalf("%d fields", len(fm))
		}
		for i := 1; i < len(fm); i++ {
			if fm[i-1].key >= fm[i].key {
				t.Fatalf("keys not sorted and unique: %q, %q", fm[i-1].key, fm[i].key)
			}
		}
	})
}

func FuzzStripeHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, h []byte) {
		ts, sigs, err := parseStripeHeader(h)
		if err == nil && (ts < 0 || len(sigs) == 0 || len(sigs) > stripeSignaturesMax) {
			t.Fatalf("accepted t=%d with %d signatures", ts, len(sigs))
		}
	})
}

// checkEvent is what every mapper promises of an event it returns.
func checkEvent(t *testing.T, e Event) {
	t.Helper()
	if e.Kind == Succeeded || e.Kind == Failed {
		if !printableID(e.OrderID, orderIDLenMax) || !printableID(e.TransactionID, transactionIDLenMax) ||
			!validCurrency(e.Currency) || e.AmountMinor < 0 || e.AmountMinor > amountMinorMax || len(e.EventID()) > 255 {
			t.Fatalf("an event that moves an order is ill-formed: %+v", e)
		}
	}
}

func FuzzStripeEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		if e, err := mapStripeEvent(body); err == nil {
			checkEvent(t, e)
		}
	})
}

func FuzzAlipayNotification(f *testing.F) {
	a := &Alipay{appID: "2021000000000001"}
	f.Fuzz(func(t *testing.T, body []byte) {
		fm, err := parseForm(body)
		if err != nil {
			return
		}
		if e, err := a.mapNotification(fm); err == nil {
			checkEvent(t, e)
		}
	})
}

func FuzzWeChatPayResource(f *testing.F) {
	w := &WeChatPay{mchID: "1900000109", appID: "wxd678efh567hg6787"}
	f.Fuzz(func(t *testing.T, original string, data []byte) {
		if e, err := w.mapResource(wechatPlain{original: original, data: data}); err == nil {
			checkEvent(t, e)
		}
	})
}

func FuzzUnionPayNotification(f *testing.F) {
	u := &UnionPay{merID: "777290058110048"}
	f.Fuzz(func(t *testing.T, body []byte) {
		fm, err := parseForm(body)
		if err != nil {
			return
		}
		if e, err := u.mapNotification(fm); err == nil {
			checkEvent(t, e)
		}
	})
}
