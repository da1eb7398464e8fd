package eticket

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPNG renders a 190-character ticket code (version 10) at the
// sizes a ticket page and a phone screen ask for.
func BenchmarkPNG(b *testing.B) {
	code := randomCode(rand.New(rand.NewPCG(7, 8)), base32, 190)
	for _, size := range []int{256, 512, 1024} {
		b.Run(fmt.Sprintf("%dpx", size), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := PNG(code, size)
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "png-bytes")
		})
	}
}
