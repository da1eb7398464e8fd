package reportchart

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/onsale/onsale/engine"
)

// TestRush draws curves of no, one and many buckets and decodes the PNGs.
func TestRush(t *testing.T) {
	const t0 = 1_800_000_000_000
	many := engine.RushCurve{StartMs: t0, BucketMinutes: 1}
	for i := range 90 {
		many.Buckets = append(many.Buckets, engine.RushBucket{AtMs: t0 + int64(i)*60_000, Placed: 1000 - i*10, Paid: 500 - i*5})
	}
	var pays []engine.PaymentMinute // later than the orders, and one a day after
	for i := range 60 {
		pays = append(pays, engine.PaymentMinute{AtMs: t0 + int64(i+5)*60_000, Payments: 400 - i*5})
	}
	pays = append(pays, engine.PaymentMinute{AtMs: t0 + 24*3600_000, Payments: 1})
	for name, c := range map[string]engine.RushCurve{
		"empty": {BucketMinutes: 1},
		"one":   {StartMs: t0, BucketMinutes: 1, Buckets: []engine.RushBucket{{AtMs: t0, Placed: 3, Paid: 1}}},
		"many":  many,
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Rush(&buf, "Rush of "+name, c, pays); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
				t.Fatalf("image %v", b)
			}
		})
	}
}
