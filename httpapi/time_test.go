package httpapi

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTimeMatchesAppendFormat: the hand-written formatter writes what
// time.AppendFormat writes, across the years an order can carry and at the
// edges where it hands over to AppendFormat.
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	cases := []int64{0, -1, 1, 999, 1000, -62135596800000, -62135596800001, 253402300799999, 253402300800000,
		math.MaxInt64 / 1_000_000, math.MinInt64 / 1_000_000, time.Date(2026, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()}
	for range 100_000 {
		cases = append(cases, rng.Int64N(2*253402300800000)-253402300800000/2)
	}
	for _, ms := range cases {
		want := `"` + time.UnixMilli(ms).UTC().Format(timeLayout) + `"`
		if got := string(appendTime(nil, ms)); got != want {
			t.Fatalf("appendTime(%d) = %s, want %s (seed %d)", ms, got, want, seed)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	buf := make([]byte, 0, 64)
	ms := time.Date(2026, 12, 2, 6, 45, 1, 123e6, time.UTC).UnixMilli()
	b.Run("by_hand", func(b *testing.B) {
		for range b.N {
			buf = appendTime(buf[:0], ms)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for range b.N {
			buf = time.UnixMilli(ms).UTC().AppendFormat(buf[:0], timeLayout)
		}
	})
}
