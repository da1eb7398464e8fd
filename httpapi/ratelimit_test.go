package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"
)

// TestUserRateLimit: one buyer's flood is cut to its burst with 429
// rate_limited while other buyers' purchases at the same moment all go
// through; a refused request changes nothing (no order, no hold, the
// Idempotency-Key still unused); cancels take from the same bucket; the
// admin is not limited. The test clock stands still, so no token comes
// back until the test moves it.
func TestUserRateLimit(t *testing.T) {
	const burst, flood, others, perOther = 4, 40, 5, 3
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.UserRatePerSec, c.UserBurst = 1, burst }})
	e.putSale("s1", 1000, 1000)

	type answer struct {
		user, key string
		r         *resp
	}
	answers := make(chan answer, flood+others*perOther)
	var wg sync.WaitGroup
	send := func(user, key string) {
		defer wg.Done()
		answers <- answer{user, key, e.buy("s1", user, key, "floor", 1)}
	}
	for i := range flood {
		wg.Add(1)
		go send("mallory", fmt.Sprintf("m%d", i))
	}
	for u := range others {
		for i := range perOther {
			wg.Add(1)
			go send(fmt.Sprintf("buyer%d", u), fmt.Sprintf("b%d", i))
		}
	}
	wg.Wait()
	close(answers)

	var mallory201 int
	var refusedKey string
	for a := range answers {
		switch {
		case a.user != "mallory":
			if a.r.status != 201 {
				t.Errorf("%s was throttled by another buyer's flood: %d %s", a.user, a.r.status, a.r.body)
			}
		case a.r.status == 201:
			mallory201++
		case a.r.status == 429:
			refusedKey = a.key
			if a.r.code() != "rate_limited" || a.r.header.Get("Retry-After") != "1" || !strings.Contains(a.r.str("detail"), "too many") {
				t.Errorf("429: %s Retry-After %q", a.r.body, a.r.header.Get("Retry-After"))
			}
		default:
			t.Errorf("mallory: %d %s", a.r.status, a.r.body)
		}
	}
	if mallory201 != burst {
		t.Fatalf("mallory got %d orders from %d requests, want the burst of %d", mallory201, flood, burst)
	}

	// Nothing of the refused requests happened.
	mine := e.want(e.do("GET", "/v1/me/orders", e.buyer("mallory"), ""), 200, "").json()["orders"].([]any)
	if len(mine) != burst {
		t.Errorf("mallory has %d orders, want %d", len(mine), burst)
	}
	tier := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()["tiers"].([]any)[0].(map[string]any)
	if want := json.Number(fmt.Sprint(burst + others*perOther)); tier["held"] != want {
		t.Errorf("held %v, want %v", tier["held"], want)
	}

	// The bucket is shared with cancels, and the admin is not limited.
	orderID := mine[0].(map[string]any)["order_id"].(string)
	e.want(e.do("POST", "/v1/orders/"+orderID+"/cancel", e.buyer("mallory"), ""), 429, "rate_limited")
	if s := e.want(e.do("GET", "/v1/orders/"+orderID, e.admin(), ""), 200, "").str("status"); s != "pending" {
		t.Errorf("a refused cancel changed the order: %s", s)
	}

	// One second later one token is back: the refused key was never used,
	// so it makes a new order (201, not a replay).
	e.clock.Advance(time.Second)
	e.want(e.buy("s1", "mallory", refusedKey, "floor", 1), 201, "")
	e.want(e.buy("s1", "mallory", "late", "floor", 1), 429, "rate_limited")
	e.want(e.do("POST", "/v1/orders/"+orderID+"/cancel", e.admin(), ""), 200, "")

	page := string(e.want(e.do("GET", "/metrics", nil, ""), 200, "").body)
	refused := flood - burst + 1 // the flood's refusals and "late"
	for _, want := range []string{
		fmt.Sprintf(`onsale_http_rate_limited_total{route="purchase"} %d`, refused),
		`onsale_http_rate_limited_total{route="cancel_order"} 1`,
		fmt.Sprintf(`onsale_purchases_total{outcome="rate_limited"} %d`, refused),
		fmt.Sprintf(`onsale_user_rate_buyers %d`, 1+others),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestUserRateRetryAfter: Retry-After is the time until the next token,
// rounded up to whole seconds.
func TestUserRateRetryAfter(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.UserRatePerSec, c.UserBurst = 0.25, 1 }})
	e.putSale("s1", 10, 10)
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 201, "")
	r := e.want(e.buy("s1", "u1", "k2", "floor", 1), 429, "rate_limited")
	if got := r.header.Get("Retry-After"); got != "4" {
		t.Errorf("Retry-After %q at 0.25/s, want 4", got)
	}
	e.clock.Advance(2500 * time.Millisecond)
	r = e.want(e.buy("s1", "u1", "k2", "floor", 1), 429, "rate_limited")
	if got := r.header.Get("Retry-After"); got != "2" { // 1.5 s to go
		t.Errorf("Retry-After %q, want 2", got)
	}
	e.clock.Advance(1500 * time.Millisecond)
	e.want(e.buy("s1", "u1", "k2", "floor", 1), 201, "")
}

// TestUserLimiterTableIsBounded: a crowd of distinct buyers far larger
// than the table never grows it past its capacity, and a buyer who keeps
// flooding meanwhile stays refused: the least recently seen give way, not
// the active ones.
func TestUserLimiterTableIsBounded(t *testing.T) {
	const usersMax, crowd = 1024, 200_000
	set := metrics.NewSet()
	l := newUserLimiter(1, 2, usersMax, set)
	if l.capacity() != usersMax {
		t.Fatalf("capacity %d, want %d", l.capacity(), usersMax)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // stands still: no refills
	for range 2 {
		if ok, _ := l.allow("mallory", now); !ok {
			t.Fatal("mallory refused within her burst")
		}
	}
	for i := range crowd {
		if ok, _ := l.allow(fmt.Sprintf("user-%d", i), now); !ok {
			t.Fatalf("user-%d refused on a first request", i)
		}
		if i%(usersMax/4) == 0 {
			if ok, _ := l.allow("mallory", now); ok {
				t.Fatalf("mallory's empty bucket was dropped after %d other buyers", i)
			}
			if n := l.len(); n > usersMax {
				t.Fatalf("%d buckets after %d buyers, capacity %d", n, i, usersMax)
			}
		}
	}
	if n := l.len(); n != usersMax {
		t.Errorf("%d buckets, want exactly the capacity %d", n, usersMax)
	}
	evicted := l.evictedFull.Get() + l.evictedPartial.Get()
	if want := uint64(crowd + 1 - usersMax); evicted != want {
		t.Errorf("%d evictions, want %d", evicted, want)
	}
	// Each of the crowd used one of two tokens and the clock stood still:
	// none had refilled when it was dropped.
	if l.evictedFull.Get() != 0 {
		t.Errorf("%d evictions counted as refilled", l.evictedFull.Get())
	}
}

// TestUserLimiterTableBoundedOverHTTP: the same bound through the server,
// read from /metrics.
func TestUserLimiterTableBoundedOverHTTP(t *testing.T) {
	const usersMax = 64
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.UserRatePerSec, c.UserBurst, c.UserRateUsersMax = 1, 1, usersMax }})
	e.putSale("s1", 1000, 1)
	for i := range 3 * usersMax {
		e.want(e.buy("s1", fmt.Sprintf("u%d", i), "k", "floor", 1), 201, "")
	}
	page := string(e.want(e.do("GET", "/metrics", nil, ""), 200, "").body)
	if !strings.Contains(page, fmt.Sprintf("onsale_user_rate_buyers %d\n", usersMax)) {
		t.Errorf("/metrics: want onsale_user_rate_buyers %d; page has:\n%s", usersMax, grepLines(page, "onsale_user_rate"))
	}
}

func grepLines(page, prefix string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want int
	}{{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {3500 * time.Millisecond, 4}} {
		if got := retryAfterSeconds(tt.wait); got != tt.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

// TestUserLimiterMatchesRate: the inline bucket answers as
// golang.org/x/time/rate's Limiter (AllowN(now, 1), and the wait its
// tokens give) on random rates, bursts and request times, clock steps
// backwards included; the table is large enough that nothing is evicted.
func TestUserLimiterMatchesRate(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := 0; round < 200; round++ {
		perSec := []float64{0.5, 1, 3, 10, 1000}[rng.IntN(5)]
		burst := 1 + rng.IntN(5)
		l := newUserLimiter(perSec, burst, 1<<10, metrics.NewSet())
		refs := map[string]*rate.Limiter{}
		now := time.Unix(1_700_000_000, 0)
		for step := 0; step < 200; step++ {
			now = now.Add(time.Duration(rng.IntN(2_000_000_000)) - 200*time.Millisecond) // mostly forwards
			user := fmt.Sprintf("u%d", rng.IntN(3))
			ref := refs[user]
			if ref == nil {
				ref = rate.NewLimiter(rate.Limit(perSec), burst)
				refs[user] = ref
			}
			wantWait := time.Duration(0)
			if tokens := ref.TokensAt(now); tokens < 1 {
				wantWait = time.Duration((1 - tokens) / perSec * float64(time.Second))
			}
			want := ref.AllowN(now, 1)
			got, wait := l.allow(user, now)
			if got != want || (!got && wait != wantWait) {
				t.Fatalf("seed %d round %d step %d (%g/s, burst %d): allow %v wait %v, rate.Limiter %v wait %v",
					seed, round, step, perSec, burst, got, wait, want, wantWait)
			}
		}
	}
}

// BenchmarkUserLimiter: a known buyer's check costs no allocation; a new
// buyer in a full table reuses the evicted bucket without allocating.
func BenchmarkUserLimiter(b *testing.B) {
	now := time.Now()
	b.Run("known", func(b *testing.B) {
		l := newUserLimiter(1e9, 1<<30, 1<<16, metrics.NewSet())
		l.allow("u1", now)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			l.allow("u1", now)
		}
	})
	b.Run("new_evicting", func(b *testing.B) {
		l := newUserLimiter(1, 1, 1<<10, metrics.NewSet())
		users := make([]string, 1<<14)
		for i := range users {
			users[i] = fmt.Sprintf("user-%d", i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.allow(users[i%len(users)], now)
		}
	})
}
