package engine

import (
	"hash/maphash"
	"math/bits"
)

// idemIndex finds a sale's orders by (user, idempotency key). It replaced a
// Go map keyed by a 64-bit hash of the pair (plus an overflow map for pairs
// whose hashes collided) because recovery spent most of its time inserting a
// million pairs into that map: a map's insert touches its table, the group's
// control word and the slot, three cache misses; a slot here is one.
//
// A slot holds the pair's 64-bit hash and its order's index, 12 bytes, in
// open-addressing segments of at most idemSegSlotsMax slots (linear
// probing, load at most 3/4). The top bits of the hash pick the segment
// through a directory (extendible hashing) and the next bits the slot, so a
// full segment splits in two by one more bit of the hash, with bounded work
// (about idemSegSlotsMax slots moved): no insert on the purchase path ever
// rehashes the whole index. The hash is stored, so moving a slot never reads
// its order.
//
// The hash only places a pair: a lookup compares the pair of every order
// whose hash matches, so two pairs with one hash are both found, and the
// index answers the same whatever the seed. The seed is random per process,
// so a client cannot choose pairs that pile up in one probe run.
type idemIndex struct {
	dir   []*idemSeg // by the top depth bits of the hash; nil while empty
	depth uint8
	n     int // pairs indexed
}

type idemSeg struct {
	depth uint8 // the segment holds the hashes whose top depth bits it was split on
	n     int
	slots []idemSlot // a power of two
}

// idemSlot is a pair's hash and its order index + 1 (0: the slot is empty),
// in three words so that a slot takes 12 bytes.
type idemSlot struct {
	hashLo, hashHi uint32
	idx1           int32
}

func (s *idemSlot) hash() uint64 { return uint64(s.hashHi)<<32 | uint64(s.hashLo) }

const (
	idemSegSlotsMin = 8
	idemSegSlotsMax = 4096 // 48 KiB: a split moves at most this many slots
)

var idemUserSeed, idemKeySeed = maphash.MakeSeed(), maphash.MakeSeed()

// idemHash places a (user, key) pair in an idemIndex; it never decides an
// outcome.
func idemHash(user, key string) uint64 {
	return idemHashKey(idemHashUser(user), key)
}

// idemHashUser is the part of idemHash that depends on the user alone;
// restore computes it once per user rather than once per order.
func idemHashUser(user string) uint64 { return maphash.String(idemUserSeed, user) }

// idemHashKey completes idemHash. The user and the key are hashed with
// different seeds, so that ("a", "b") and ("b", "a") do not collide.
func idemHashKey(hu uint64, key string) uint64 { return hu ^ maphash.String(idemKeySeed, key) }

// makeIdemIndex returns an index sized for n pairs: segments at most half
// full once they are in, so that restoring them splits nothing.
func makeIdemIndex(n int) idemIndex {
	if n == 0 {
		return idemIndex{}
	}
	slots := max(idemSegSlotsMin, 1<<bits.Len(uint(2*n-1)))
	var depth uint8
	for slots > idemSegSlotsMax {
		slots /= 2
		depth++
	}
	t := idemIndex{dir: make([]*idemSeg, 1<<depth), depth: depth}
	for i := range t.dir {
		t.dir[i] = &idemSeg{depth: depth, slots: make([]idemSlot, slots)}
	}
	return t
}

func (t *idemIndex) seg(h uint64) *idemSeg {
	return t.dir[h>>(64-uint(t.depth))] // a shift by 64 is 0
}

// home is h's first slot in s: the bits of h after those that chose s.
func (s *idemSeg) home(h uint64) int {
	return int((h << s.depth) >> (64 - uint(bits.TrailingZeros(uint(len(s.slots))))))
}

// idemProbe walks the slots of one hash: next returns the index of each
// order whose pair has that hash, until it returns false.
type idemProbe struct {
	slots []idemSlot
	i     int
	h     uint64
}

func (t *idemIndex) probe(h uint64) idemProbe {
	if t.n == 0 {
		return idemProbe{}
	}
	s := t.seg(h)
	return idemProbe{s.slots, s.home(h), h}
}

func (p *idemProbe) next() (int32, bool) {
	if p.slots == nil {
		return 0, false
	}
	mask := len(p.slots) - 1
	for {
		sl := &p.slots[p.i]
		if sl.idx1 == 0 {
			return 0, false
		}
		p.i = (p.i + 1) & mask
		if sl.hash() == p.h {
			return sl.idx1 - 1, true
		}
	}
}

// put indexes an order under h; the caller knows its pair is not indexed.
func (t *idemIndex) put(h uint64, idx int32) {
	t.putUnless(h, idx, func(int32) bool { return false })
}

// putUnless indexes an order under h unless same is true of an order
// already indexed under h, in one walk of the probe run, and says whether
// it did.
func (t *idemIndex) putUnless(h uint64, idx int32, same func(int32) bool) bool {
	if t.dir == nil {
		t.dir = []*idemSeg{{slots: make([]idemSlot, idemSegSlotsMin)}}
	}
	s := t.seg(h)
	if (s.n+1)*4 > len(s.slots)*3 {
		t.grow(s, h)
		s = t.seg(h)
	}
	mask := len(s.slots) - 1
	i := s.home(h)
	for ; s.slots[i].idx1 != 0; i = (i + 1) & mask {
		if s.slots[i].hash() == h && same(s.slots[i].idx1-1) {
			return false
		}
	}
	s.slots[i] = idemSlot{uint32(h), uint32(h >> 32), idx + 1}
	s.n++
	t.n++
	return true
}

func (s *idemSeg) put(h uint64, idx int32) {
	mask := len(s.slots) - 1
	i := s.home(h)
	for s.slots[i].idx1 != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = idemSlot{uint32(h), uint32(h >> 32), idx + 1}
	s.n++
}

// grow doubles segment s, which holds h, below the largest size, or splits
// a largest one in two by the next bit of the hash, doubling the directory
// if no bit is left.
func (t *idemIndex) grow(s *idemSeg, h uint64) {
	if len(s.slots) < idemSegSlotsMax {
		old := s.slots
		s.slots, s.n = make([]idemSlot, 2*len(old)), 0
		for i := range old {
			if old[i].idx1 != 0 {
				s.put(old[i].hash(), old[i].idx1-1)
			}
		}
		return
	}
	if s.depth == t.depth {
		dir := make([]*idemSeg, 2*len(t.dir))
		for i := range dir {
			dir[i] = t.dir[i/2]
		}
		t.dir, t.depth = dir, t.depth+1
	}
	lo := &idemSeg{depth: s.depth + 1, slots: make([]idemSlot, len(s.slots))}
	hi := &idemSeg{depth: s.depth + 1, slots: make([]idemSlot, len(s.slots))}
	bit := 63 - uint(s.depth)
	for i := range s.slots {
		if sl := &s.slots[i]; sl.idx1 != 0 {
			if h := sl.hash(); h>>bit&1 == 0 {
				lo.put(h, sl.idx1-1)
			} else {
				hi.put(h, sl.idx1-1)
			}
		}
	}
	// The directory entries that pointed at s: a run of 1<<(t.depth-s.depth),
	// whose first half takes lo.
	run := 1 << (t.depth - s.depth)
	first := int(h>>(64-uint(s.depth))) * run // a shift by 64 is 0
	for i := range run {
		if i < run/2 {
			t.dir[first+i] = lo
		} else {
			t.dir[first+i] = hi
		}
	}
}

// idemPair is an order's index and the hash of its pair, gathered by
// restore and replay to be indexed in bulk (buildIdem).
type idemPair struct {
	h   uint64
	idx int32
}

// buildIdem indexes, into sale sl's empty index, the pairs of its orders in
// the order of their indexes (a repeated pair keeps its first order). A
// million inserts at random places of a large index would miss the cache
// (and the TLB) once each: the pairs are first sorted by segment, one
// counting pass, so that the inserts fill one segment after another.
func (st *state) buildIdem(sl *sale, pairs []idemPair) {
	sl.idem = makeIdemIndex(len(pairs))
	if depth := sl.idem.depth; depth > 0 {
		pairs = sortIdemPairs(pairs, depth)
	}
	for _, p := range pairs {
		st.indexIdem(sl, p.h, p.idx)
	}
}

// sortIdemPairs returns pairs sorted by the top depth bits of their hashes,
// stable, so that each segment's pairs keep the order of their indexes.
func sortIdemPairs(pairs []idemPair, depth uint8) []idemPair {
	shift := 64 - uint(depth)
	starts := make([]int, 1<<depth+1)
	for _, p := range pairs {
		starts[p.h>>shift+1]++
	}
	for i := 1; i < len(starts); i++ {
		starts[i] += starts[i-1]
	}
	sorted := make([]idemPair, len(pairs))
	for _, p := range pairs {
		b := p.h >> shift
		sorted[starts[b]] = p
		starts[b]++
	}
	return sorted
}
