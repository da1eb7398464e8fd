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
	for name, c := range map[string]engine.RushCurve{
		"empty": {BucketMinutes: 1},
		"one":   {StartMs: t0, BucketMinutes: 1, Buckets: []engine.RushBucket{{AtMs: t0, Placed: 3, Paid: 1}}},
		"many":  many,
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Rush(&buf, "Rush of "+name, c); err != nil {
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
