package httpapi

import (
	"reflect"
	"testing"
)

// TestPurchaseBodyShortcut: the bodies frontends send take the shortcut,
// at the cost of the tier's string alone; the others reach decodeStrict
// (FuzzPurchaseBody proves both give the same answers).
func TestPurchaseBodyShortcut(t *testing.T) {
	for _, tt := range []struct {
		body     string
		shortcut bool
		want     purchaseBody
	}{
		{`{"tier":"floor","quantity":1}`, true, purchaseBody{Tier: "floor", Quantity: 1}},
		{" {\n \"quantity\" : 12 ,\t\"tier\" : \"Balcón 2\"\r\n} \n", true, purchaseBody{Tier: "Balcón 2", Quantity: 12}},
		{`{"tier":"a","quantity":-3}`, true, purchaseBody{Tier: "a", Quantity: -3}},
		{`{"tier":"a","quantity":123456789012345678}`, true, purchaseBody{Tier: "a", Quantity: 123456789012345678}},
		{`{"quantity":0}`, true, purchaseBody{Tier: "", Quantity: 0}},
		{`{}`, true, purchaseBody{}},
		{`{"tier":"a\u0062","quantity":1}`, false, purchaseBody{Tier: "ab", Quantity: 1}},
		{`{"tier":"a","quantity":1.0}`, false, purchaseBody{}}, // errors: want is not compared
		{`{"tier":"a","quantity":1234567890123456789}`, false, purchaseBody{Tier: "a", Quantity: 1234567890123456789}},
		{`{"tier":"a","quantity":-0}`, false, purchaseBody{Tier: "a", Quantity: 0}},
		{`{"tier":null,"quantity":1}`, false, purchaseBody{Tier: "", Quantity: 1}},
		{`{"tier":"a","tier":"a"}`, false, purchaseBody{}},
		{"{\"tier\":\"\xff\"}", false, purchaseBody{}},
		{`{"tier":"a","quantity":1}x`, false, purchaseBody{}},
		{``, false, purchaseBody{}},
		{`{"tier":"a","quantity":1,"coupon":"Early-10"}`, true, purchaseBody{Tier: "a", Quantity: 1, Coupon: "Early-10"}},
		{`{"coupon":"A","coupon":"A"}`, false, purchaseBody{}},
		{`{"tier":"a","coupon":"\u0041"}`, false, purchaseBody{Tier: "a", Coupon: "A"}},
	} {
		_, _, _, ok := scanPurchaseBody([]byte(tt.body))
		var got, strict purchaseBody
		err, errStrict := decodePurchaseBody([]byte(tt.body), &got), decodeStrict([]byte(tt.body), &strict)
		if ok != tt.shortcut || err == nil && !reflect.DeepEqual(got, tt.want) || (err == nil) != (errStrict == nil) || !reflect.DeepEqual(got, strict) {
			t.Errorf("%q: shortcut %v, %+v, %v; want shortcut %v, %+v; decodeStrict %+v, %v",
				tt.body, ok, got, err, tt.shortcut, tt.want, strict, errStrict)
		}
	}
	if raceEnabled {
		return // allocation counts are off under the race detector
	}
	body := []byte(`{"tier":"floor","quantity":1}`)
	var p purchaseBody
	if n := testing.AllocsPerRun(100, func() { _ = decodePurchaseBody(body, &p) }); n != 1 {
		t.Errorf("%v allocations, want 1 (the tier)", n)
	}
}
