package engine

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestProviderOrderNumber: at the limits of a sale id (1 and 64
// characters), the number is 32 characters that WeChat Pay's out_trade_no
// ([0-9A-Za-z_-|*], 6 to 32) and UnionPay's orderId (letters and digits,
// 8 to 40) accept, and it maps back to the order; a number that names no
// order, or names the key with another sale's hash, is unknown.
func TestProviderOrderNumber(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 3)
	ctx := context.Background()
	wechat := regexp.MustCompile(`^[0-9A-Za-z_\-|*]{6,32}$`)
	unionpay := regexp.MustCompile(`^[0-9A-Za-z]{8,40}$`)
	for _, saleID := range []string{"s", strings.Repeat("Z", IDLenMax), "sale_with-dashes_" + strings.Repeat("9", 40)} {
		if _, _, err := e.PutSale(ctx, testSale(saleID, clock, 5, 4)); err != nil {
			t.Fatal(err)
		}
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: saleID, TierID: "floor", Quantity: 1, UserID: "u", IdempotencyKey: saleID})
		if err != nil {
			t.Fatal(err)
		}
		n, ok := ProviderOrderNumber(o.ID)
		if !ok || len(n) != ProviderOrderNumberLen || !wechat.MatchString(n) || !unionpay.MatchString(n) {
			t.Fatalf("%s: number %q", o.ID, n)
		}
		back, err := e.OrderIDForNumber(ctx, n)
		if err != nil || back != o.ID {
			t.Fatalf("%s: back %q %v", n, back, err)
		}
		// The same key under another sale's hash, and a flipped key.
		_, k, _ := parseOrderID(o.ID)
		for _, forged := range []string{providerOrderNumber(saleID+"x", k), flipLast(n), n[:31], n + "a", strings.ToUpper(n)} {
			if _, err := e.OrderIDForNumber(ctx, forged); rejectionCode(err) != CodeUnknownOrder {
				t.Errorf("forged %q: %v", forged, err)
			}
		}
	}
	if _, ok := ProviderOrderNumber("not-an-order"); ok {
		t.Fatal("a number for a string that is not an order id")
	}
}

func flipLast(s string) string {
	c := byte('a')
	if s[len(s)-1] == 'a' {
		c = 'b'
	}
	return s[:len(s)-1] + string(c)
}

func TestAppendProviderOrderNumber(t *testing.T) {
	id := formatOrderID("s1", orderKey{1, 2, 3, 255})
	want, _ := ProviderOrderNumber(id)
	buf := make([]byte, 0, 64)
	if got := string(AppendProviderOrderNumber(buf, id)); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendProviderOrderNumber(buf[:0], id) }); n != 0 {
		t.Fatalf("%.0f allocations", n)
	}
}
