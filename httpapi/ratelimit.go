package httpapi

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// userLimiter gives each buyer (a JWT's sub) a token bucket for the
// requests that change orders: purchases and cancels take from the same
// bucket, so a script cannot churn a sale's stock by buying and cancelling
// in a loop, nor fill the hot sale's shard inbox on its own and push
// everyone else into 429 overloaded.
//
// The table is bounded: userLimiterShards maps, each holding at most
// perShardMax buckets in least-recently-used order. A new buyer in a full
// shard takes the place of the one unseen for the longest time. A buyer
// who floods is always near the front (they just asked), so they keep
// their empty bucket however many other buyers arrive; only the state of
// buyers quiet for a while is dropped, and a bucket that has refilled to
// its burst carries no state at all (a new one is the same). Evictions of
// buckets that had not yet refilled are counted.
//
// Safe for concurrent use; a shard's mutex is held for a map look-up, a
// list move and the bucket's arithmetic. The bucket is kept inline (not a
// golang.org/x/time/rate.Limiter, whose arithmetic it repeats): no second
// mutex and no second heap object per buyer on the purchase path, and an
// evicted bucket is refilled in place.
type userLimiter struct {
	limit       float64 // tokens per second
	burst       int
	perShardMax int
	shards      [userLimiterShards]userLimiterShard

	evictedFull    *metrics.Counter // the bucket had refilled: nothing lost
	evictedPartial *metrics.Counter // the bucket had not refilled: its state is dropped
}

// userLimiterShards spreads the lock; a power of two.
const userLimiterShards = 32

type userLimiterShard struct {
	mu sync.Mutex
	m  map[string]*userBucket
	// lru is the sentinel of a circular list: lru.next is the most
	// recently used bucket, lru.prev the least.
	lru userBucket
	_   [64]byte // keep neighbouring shards' mutexes off one cache line
}

type userBucket struct {
	user       string
	tokens     float64   // as of last
	last       time.Time // when tokens was last taken
	prev, next *userBucket
}

// tokensAt is what the bucket holds at now: what it held at last plus the
// refill since, at most the burst (x/time/rate's advance).
func (l *userLimiter) tokensAt(b *userBucket, now time.Time) float64 {
	last := b.last
	if now.Before(last) {
		last = now
	}
	return min(b.tokens+now.Sub(last).Seconds()*l.limit, float64(l.burst))
}

// newUserLimiter keeps at most usersMax buckets (rounded down to a
// multiple of userLimiterShards, at least one per shard). perSec must be
// finite and positive, burst at least 1 (Config's checks see to it).
func newUserLimiter(perSec float64, burst, usersMax int, set *metrics.Set) *userLimiter {
	if !(perSec > 0) || math.IsInf(perSec, 0) || burst < 1 {
		panic("httpapi: a rate limit needs a finite, positive rate and a burst of at least 1")
	}
	l := &userLimiter{
		limit:          perSec,
		burst:          burst,
		perShardMax:    max(usersMax/userLimiterShards, 1),
		evictedFull:    set.NewCounter(`onsale_user_rate_evictions_total{refilled="true"}`),
		evictedPartial: set.NewCounter(`onsale_user_rate_evictions_total{refilled="false"}`),
	}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.m = make(map[string]*userBucket)
		sh.lru.next, sh.lru.prev = &sh.lru, &sh.lru
	}
	set.NewGauge("onsale_user_rate_buyers", func() float64 { return float64(l.len()) })
	return l
}

// allow takes a token from user's bucket at now. When there is none it
// returns false and how long until there will be one.
func (l *userLimiter) allow(user string, now time.Time) (bool, time.Duration) {
	sh := &l.shards[fnv32(user)%userLimiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[user]
	if b == nil {
		b = l.insert(sh, user, now)
	} else {
		sh.unlink(b)
	}
	sh.pushFront(b)
	tokens := l.tokensAt(b, now) - 1
	if tokens >= 0 {
		b.tokens, b.last = tokens, now
		return true, 0
	}
	return false, time.Duration(-tokens / l.limit * float64(time.Second))
}

// insert adds a full bucket for user, evicting the least recently used
// one when the shard is full. The caller holds sh.mu.
func (l *userLimiter) insert(sh *userLimiterShard, user string, now time.Time) *userBucket {
	if len(sh.m) < l.perShardMax {
		b := &userBucket{user: user, tokens: float64(l.burst)}
		sh.m[user] = b
		return b
	}
	b := sh.lru.prev
	if l.tokensAt(b, now) >= float64(l.burst) {
		l.evictedFull.Inc()
	} else {
		l.evictedPartial.Inc()
	}
	sh.unlink(b)
	delete(sh.m, b.user)
	b.user, b.tokens, b.last = user, float64(l.burst), time.Time{}
	sh.m[user] = b
	return b
}

func (sh *userLimiterShard) unlink(b *userBucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func (sh *userLimiterShard) pushFront(b *userBucket) {
	b.prev, b.next = &sh.lru, sh.lru.next
	sh.lru.next.prev = b
	sh.lru.next = b
}

// len is the number of buckets kept.
func (l *userLimiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// capacity is the most buckets the table keeps.
func (l *userLimiter) capacity() int { return l.perShardMax * userLimiterShards }

// retryAfterSeconds rounds a wait up to whole seconds for Retry-After, at
// least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

var headerRetryAfter = []byte("Retry-After")

// overUserRate answers 429 rate_limited, with Retry-After, when who is a
// buyer whose bucket is empty, and reports whether it did. The admin is
// not limited.
func (s *Server) overUserRate(ctx *fasthttp.RequestCtx, r route, who principal) bool {
	if s.limiter == nil || who.kind != principalBuyer {
		return false
	}
	ok, wait := s.limiter.allow(who.userID, s.now())
	if ok {
		return false
	}
	writeProblem(ctx, codeRateLimited, s.rateLimitedDetail, -1)
	var b [20]byte
	ctx.Response.Header.SetCanonical(headerRetryAfter, strconv.AppendInt(b[:0], int64(retryAfterSeconds(wait)), 10))
	s.m.rateLimited[r].Inc()
	return true
}
