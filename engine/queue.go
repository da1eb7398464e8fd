package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The waiting room. A sale with a QueueConfig sells only to buyers it has
// admitted from its queue; the queue is state of the sale, in its owner
// shard, and every move of it is an event in the log like a purchase:
//
//   - Join: a buyer joins once (QueueJoined); joining again answers the
//     same place. Buyers are known by a JoinID, a keyed hash of their user
//     id that the caller computes (httpapi), so the engine and the published
//     draw list never carry a user id.
//   - Draw: in shuffle_at_open mode the buyers who joined before the
//     opening are put in a random order at the first decision at or after
//     the opening (QueueDrawn, which logs the seed): the order is DrawOrder
//     of the seed and their join ids, which anyone can recompute. The seed
//     is HMAC-SHA256(Config.QueueSeedKey, "onsale queue seed v1" 0x00 sale
//     id): the shard derives it (a keyed hash, not a random source, so the
//     decision stays a function of its inputs) and logs it only with the
//     draw; its SHA-256 is published before (QueueSeedCommitment). Those
//     who join after the draw queue in join order.
//   - Admission: the shard's tick admits the next waiting buyers
//     (QueueAdmitted, a wave of consecutive places with one expiry), at
//     most AdmitRatePerSec per second, and only while the admissions
//     outstanding (admitted, unused, unexpired) are fewer than the tickets
//     available: holds that expire or orders cancelled return their tickets
//     to available, and the next tick admits into them. Admissions and
//     expiries run in the same tick, so an expiry admits the next buyer in
//     the same log entry.
//   - Use: on a queued sale a purchase must name its admission (place and
//     wave); the admission is used by the purchase that names it, in the
//     same entry (AdmissionUsed, before OrderPlaced), so two purchases
//     racing with one admission give one order. An admission that was not
//     used before its expiry lapses: that buyer's turn is over.
//
// Memory: a queued buyer is 16 bytes in the entries and 4 to 8 bytes in
// the index (open addressing over the entries, keyed by the join id, which
// is already a uniform hash); admissions are counted per wave, used ones
// kept in a map as large as the orders they made.

// QueueMode is how a queued sale orders its buyers; 0 is a sale without a
// queue.
type QueueMode uint8

const (
	QueueFIFO          QueueMode = 1 // in join order
	QueueShuffleAtOpen QueueMode = 2 // joined before the opening: drawn; after: in join order
	queueModeMax                 = QueueShuffleAtOpen
)

// QueueConfig is a sale's waiting room; the zero value is a sale without
// one.
type QueueConfig struct {
	Mode            QueueMode
	AdmitRatePerSec int   // buyers admitted per second at most, 1 to QueueAdmitRateMax
	AdmissionTTLMs  int64 // how long an admission lets its buyer buy
}

// JoinID is a queued buyer as the engine and the published draw know them:
// a keyed hash of the user id (httpapi derives it).
type JoinID [16]byte

// QueueAdmission is what a purchase on a queued sale shows: the buyer's join
// id, the place and the wave that admitted it. httpapi carries them in a
// signed token.
type QueueAdmission struct {
	JoinID JoinID
	Place  int // 0-based index in the queue's order
	Wave   uint32
}

// QueueState says where a queued buyer stands.
type QueueState uint8

const (
	QueueRegistered QueueState = iota + 1 // joined before the draw: no place yet
	QueueWaiting
	QueueAdmitted
	QueueUsed   // the admission bought an order
	QueueLapsed // the admission expired unused
)

var queueStateNames = [...]string{QueueRegistered: "registered", QueueWaiting: "waiting",
	QueueAdmitted: "admitted", QueueUsed: "used", QueueLapsed: "lapsed"}

func (s QueueState) String() string {
	if s > 0 && int(s) < len(queueStateNames) {
		return queueStateNames[s]
	}
	return "unknown"
}

// QueueStatus is a queued buyer's answer.
type QueueStatus struct {
	JoinID            JoinID
	State             QueueState
	Place             int // 0-based place in the queue's order; -1 while registered
	Ahead             int // buyers waiting ahead (waiting only)
	Wave              uint32
	AdmissionExpiryMs int64 // admitted: until when the admission lets the buyer buy
	Created           bool  // this call joined
	QueueCounts
}

// QueueCounts are a queue's numbers, also published in the sale's view.
type QueueCounts struct {
	Joined   int  // buyers in the queue
	Admitted int  // buyers admitted so far (places [0, Admitted))
	Drawn    bool // shuffle_at_open: the draw has happened

	WaitlistRegistered int // offers.go: the waitlist's registrations ever taken

	Commitment [32]byte // SHA-256 of the draw's seed (views only)
}

// QueueDraw is what anyone needs to check a draw: the seed's commitment,
// and once drawn the seed, the join ids that took part (sorted) and the
// order that came out.
type QueueDraw struct {
	Commitment [32]byte
	Drawn      bool
	Seed       [32]byte
	DrawnAtMs  int64
	JoinIDs    []JoinID // sorted ascending
	Order      []JoinID // DrawOrder(Seed, JoinIDs)
}

// Limits and codes of the waiting room.
const (
	QueueAdmitRateMax      = 100_000
	QueueAdmissionTTLMsMin = 10_000
	QueueAdmissionTTLMsMax = 3_600_000
	QueueEntriesMax        = 1 << 26 // per sale
	queueSectionTag        = 110

	// CodeNotQueued: a queue call for a sale without a queue.
	CodeNotQueued Code = "not_queued"
	// CodeAdmissionRequired: a purchase on a queued sale without an
	// admission.
	CodeAdmissionRequired Code = "admission_required"
	// CodeAdmissionInvalid: an admission that is not this buyer's, or was
	// never given.
	CodeAdmissionInvalid Code = "admission_invalid"
	// CodeAdmissionUsed: an admission that bought an order already.
	CodeAdmissionUsed Code = "admission_used"
	// CodeAdmissionExpired: an admission past its expiry.
	CodeAdmissionExpired Code = "admission_expired"
	// CodeQueueFull: the sale's queue holds QueueEntriesMax buyers.
	CodeQueueFull Code = "queue_full"
)

// saleQueue is a queued sale's queue.
type saleQueue struct {
	entries     []JoinID // the queue's order; replaced (never changed in place) by the draw
	index       joinIndex
	drawn       bool
	seed        [32]byte
	drawnAt     int64
	drawnN      int32 // entries[:drawnN] took part in the draw
	next        int32 // entries[:next] have been admitted
	lastAdmitAt int64
	waves       []admitWave         // live waves, by first place; expired ones dropped at the next admission
	wavesN      uint32              // waves ever admitted: the next wave's number is wavesN+1
	used        map[int32]uint32    // place -> wave, admissions that bought
	commitment  *[32]byte           // derived: SHA-256 of the seed, once asked (queueCommitment)
	docs        map[[32]byte]JoinID // real-name sales: documents holding a place (offers.go)
}

// admitWave is the places [first, end) admitted at once.
type admitWave struct {
	first, end int32
	no         uint32
	used       int32
	expiresAt  int64
}

// queueEvent is the body of the queue's events.
type queueEvent struct {
	rule      QueueConfig // QueueRule
	id        JoinID      // QueueJoined
	seed      [32]byte    // QueueDrawn
	n         int32       // QueueAdmitted: places admitted; AdmissionUsed: the place
	wave      uint32      // AdmissionUsed
	expiresAt int64       // QueueAdmitted
}

// queueCommand is a queue call's arguments.
type queueCommand struct {
	id   JoinID
	draw bool      // cmdQueueDraw: list the draw
	doc  *[32]byte // cmdQueueJoin on a real-name sale: the document's keyed hash (offers.go)
}

func validateQueueConfig(q QueueConfig) *Rejection {
	switch {
	case q == QueueConfig{}:
		return nil
	case q.Mode == 0 || q.Mode > queueModeMax:
		return reject(CodeInvalidRequest, "queue.mode must be fifo or shuffle_at_open")
	case q.AdmitRatePerSec < 1 || q.AdmitRatePerSec > QueueAdmitRateMax:
		return reject(CodeInvalidRequest, "queue.admit_rate must be 1 to %d per second", QueueAdmitRateMax)
	case q.AdmissionTTLMs < QueueAdmissionTTLMsMin || q.AdmissionTTLMs > QueueAdmissionTTLMsMax:
		return reject(CodeInvalidRequest, "queue.admission_ttl_ms must be %d to %d", QueueAdmissionTTLMsMin, QueueAdmissionTTLMsMax)
	}
	return nil
}

// decideQueueRule appends the queue rule of a sale being put: SalePut's
// record does not carry it (a log without queues stays readable by an
// onsale that predates them), this event in the same entry does. A queue's
// mode cannot change, nor the queue go, once buyers joined it.
func (st *state) decideQueueRule(evs []event, cfg *SaleConfig) ([]event, *Rejection) {
	if sl, _ := st.saleByID(cfg.ID); sl != nil && sl.queue != nil && len(sl.queue.entries) > 0 &&
		cfg.Queue.Mode != sl.cfg.Queue.Mode {
		return evs, reject(CodeInvalidRequest, "sale %q has %d buyers in its queue; its queue mode cannot change", cfg.ID, len(sl.queue.entries))
	}
	if cfg.Queue == (QueueConfig{}) {
		return evs, nil
	}
	return append(evs, event{kind: evQueueRule, saleID: cfg.ID, q: &queueEvent{rule: cfg.Queue}}), nil
}

// queueSeed derives a sale's draw seed from the shard's seed key.
func queueSeed(key []byte, saleID string) [32]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("onsale queue seed v1\x00"))
	m.Write([]byte(saleID))
	var s [32]byte
	m.Sum(s[:0])
	return s
}

// DrawOrder is the draw's documented algorithm: the join ids sorted by
// HMAC-SHA256(seed, join id) as big-endian 256-bit numbers, ascending (ties,
// which SHA-256 makes impossible in practice, by join id). It returns a new
// slice.
func DrawOrder(seed [32]byte, ids []JoinID) []JoinID {
	// Sorted as 16-byte (first 8 key bytes, index) pairs, not whole keys:
	// a million-buyer draw moves a quarter of the bytes.
	type ref struct {
		hi uint64
		i  int32
	}
	keys := make([][32]byte, len(ids))
	refs := make([]ref, len(ids))
	m := hmac.New(sha256.New, seed[:])
	for i, id := range ids {
		m.Reset()
		m.Write(id[:])
		m.Sum(keys[i][:0])
		refs[i] = ref{binary.BigEndian.Uint64(keys[i][:8]), int32(i)}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		switch {
		case a.hi < b.hi:
			return -1
		case a.hi > b.hi:
			return 1
		}
		if c := bytes.Compare(keys[a.i][:], keys[b.i][:]); c != 0 {
			return c
		}
		return bytes.Compare(ids[a.i][:], ids[b.i][:])
	})
	out := make([]JoinID, len(ids), max(len(ids), 16))
	for i, r := range refs {
		out[i] = ids[r.i]
	}
	return out
}

// VerifyDraw checks a published draw: SHA-256(seed) is the commitment,
// the join ids are sorted and unique, and the order is DrawOrder(seed,
// join ids). It is what "onsale verify-draw" runs.
func VerifyDraw(commitment, seed [32]byte, ids, order []JoinID) error {
	if sha256.Sum256(seed[:]) != commitment {
		return errors.New("SHA-256 of the seed is not the commitment published before the draw")
	}
	for i := 1; i < len(ids); i++ {
		if bytes.Compare(ids[i-1][:], ids[i][:]) >= 0 {
			return fmt.Errorf("join ids are not sorted and unique at %d", i)
		}
	}
	want := DrawOrder(seed, ids)
	if len(want) != len(order) {
		return fmt.Errorf("the order has %d buyers, the draw %d", len(order), len(want))
	}
	for i := range want {
		if want[i] != order[i] {
			return fmt.Errorf("place %d: the published order has %x, the draw gives %x", i, order[i], want[i])
		}
	}
	return nil
}

// drawDue appends the draw of sl's queue if its mode draws and the
// opening has come. The caller applies it.
func (st *state) drawDue(sl *sale, now int64, evs []event) []event {
	if sl.cfg.Queue.Mode != QueueShuffleAtOpen || now < sl.cfg.OpensAtMs || sl.queue != nil && sl.queue.drawn {
		return evs
	}
	return append(evs, event{kind: evQueueDrawn, at: now, saleID: sl.cfg.ID, q: &queueEvent{seed: queueSeed(st.queueSeedKey, sl.cfg.ID)}})
}

func (st *state) mustApply(ev *event) {
	if err := st.apply(ev); err != nil {
		panic(newInvariantError("apply of %s failed: %v", ev.kind, err))
	}
}

// decideQueue decides a join and answers the queue's reads.
func (st *state) decideQueue(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cmd.saleID)
	switch {
	case sl == nil:
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	case cmd.kind == cmdQueueDraw && sl.cfg.LotteryRule() != (LotteryConfig{}): // offers.go: the lottery's draw
		d := sl.offers.book(BookLottery).lotteryDraw()
		res.queueDraw = &d
		return evs, nil
	case sl.cfg.Queue.Mode == 0:
		return evs, reject(CodeNotQueued, "sale %q has no queue", cmd.saleID)
	}
	if cmd.kind == cmdQueueDraw {
		d := sl.queue.draw()
		res.queueDraw = &d
		return evs, nil
	}
	place := sl.queue.find(cmd.queue.id)
	if cmd.kind == cmdQueueStatus && place < 0 {
		return evs, reject(CodeNotQueued, "you are not in the queue of sale %q; join it first", cmd.saleID)
	}
	if place >= 0 { // a read, or a join again: the same place
		st := sl.queue.status(place, now, sl.drawPending())
		res.queue = &st
		return evs, nil
	}
	switch {
	case sl.closed || now >= sl.cfg.ClosesAtMs:
		return evs, reject(CodeSaleClosed, "sale %q is closed", cmd.saleID)
	case now >= sl.cfg.OpensAtMs && sl.soldOut():
		return evs, reject(CodeSoldOut, "sale %q is sold out", cmd.saleID)
	case sl.queue != nil && len(sl.queue.entries) >= QueueEntriesMax:
		return evs, reject(CodeQueueFull, "the queue of sale %q is full", cmd.saleID)
	}
	evs = st.drawDue(sl, now, evs) // before this join, which comes after the draw
	var rej *Rejection
	if evs, rej = st.decideQueueDocument(sl, cmd, now, evs); rej != nil { // offers.go
		return evs, rej
	}
	return append(evs, event{kind: evQueueJoined, at: now, saleID: cmd.saleID, q: &queueEvent{id: cmd.queue.id}}), nil
}

// answerQueue answers a join once its events are applied: a new place is
// waiting or registered, which needs no clock.
func (st *state) answerQueue(cmd *command, res *result, changed bool) {
	if cmd.kind != cmdQueueJoin || !changed {
		return
	}
	sl, _ := st.saleByID(cmd.saleID)
	st2 := sl.queue.status(sl.queue.find(cmd.queue.id), 0, sl.drawPending())
	st2.Created = true
	res.queue = &st2
}

// soldOut says whether the sale has nothing left to sell now or later:
// nothing available and nothing held.
func (sl *sale) soldOut() bool {
	for t := range sl.tiers {
		if sl.available(t) > 0 || sl.tiers[t].held > 0 {
			return false
		}
	}
	return true
}

func (sl *sale) availableTickets() int {
	n := 0
	for t := range sl.tiers {
		n += max(sl.available(t), 0)
	}
	return n
}

// decideAdmission checks a purchase's admission on a queued sale and
// appends its use.
func (st *state) decideAdmission(sl *sale, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	if sl.cfg.Queue.Mode == 0 {
		return evs, nil
	}
	a := cmd.admission
	if a == nil {
		return evs, reject(CodeAdmissionRequired, "sale %q sells through its queue: join it and buy with your admission", cmd.saleID)
	}
	q := sl.queue
	if q == nil || a.Place < 0 || a.Place >= int(q.next) || q.entries[a.Place] != a.JoinID {
		return evs, reject(CodeAdmissionInvalid, "this admission was not given to you")
	}
	if _, used := q.used[int32(a.Place)]; used {
		return evs, reject(CodeAdmissionUsed, "this admission bought an order already")
	}
	w := q.wave(int32(a.Place))
	if w == nil || w.no != a.Wave || now >= w.expiresAt {
		return evs, reject(CodeAdmissionExpired, "this admission has expired")
	}
	evs = append(evs, event{kind: evAdmissionUsed, at: now, saleID: cmd.saleID, q: &queueEvent{n: int32(a.Place), wave: a.Wave}})
	return evs, nil
}

// queueTick draws and admits what is due in the shard's queued sales; the
// shard's tick runs it after expiring holds.
func (st *state) queueTick(now int64, evs []event) []event {
	for _, si := range st.queued {
		sl := st.sales[si]
		if n := len(evs); len(st.drawDue(sl, now, evs)) > n {
			evs = evs[:n+1]
			st.mustApply(&evs[n])
		}
		if n, exp := sl.admitDue(now); n > 0 {
			evs = append(evs, event{kind: evQueueAdmitted, at: now, saleID: sl.cfg.ID, q: &queueEvent{n: int32(n), expiresAt: exp}})
			st.mustApply(&evs[len(evs)-1])
		}
	}
	return evs
}

// queueDue says whether a tick would draw or admit.
func (st *state) queueDue(now int64) bool {
	for _, si := range st.queued {
		sl := st.sales[si]
		if sl.cfg.Queue.Mode == QueueShuffleAtOpen && now >= sl.cfg.OpensAtMs && (sl.queue == nil || !sl.queue.drawn) {
			return true
		}
		if n, _ := sl.admitDue(now); n > 0 {
			return true
		}
	}
	return false
}

// admitDue is how many waiting buyers the sale admits at now, and the
// expiry of their admissions: at the rate (the time since the last wave,
// at most one second's worth) and only into tickets that no outstanding
// admission may take.
func (sl *sale) admitDue(now int64) (int, int64) {
	q, rule := sl.queue, sl.cfg.Queue
	if q == nil || rule.Mode == 0 || sl.closed || now < sl.cfg.OpensAtMs || now >= sl.cfg.ClosesAtMs ||
		rule.Mode == QueueShuffleAtOpen && !q.drawn {
		return 0, 0
	}
	waiting := len(q.entries) - int(q.next)
	if waiting == 0 {
		return 0, 0
	}
	allowance := int64(rule.AdmitRatePerSec)
	if q.lastAdmitAt > 0 && now-q.lastAdmitAt < 1000 {
		allowance = int64(rule.AdmitRatePerSec) * (now - q.lastAdmitAt) / 1000
	}
	room := sl.availableTickets() - q.outstanding(now)
	n := min(int(allowance), room, waiting)
	if n <= 0 {
		return 0, 0
	}
	return n, now + rule.AdmissionTTLMs
}

// outstanding counts admissions given, unused and unexpired at now.
func (q *saleQueue) outstanding(now int64) int {
	n := 0
	for i := range q.waves {
		if w := &q.waves[i]; w.expiresAt > now {
			n += int(w.end-w.first) - int(w.used)
		}
	}
	return n
}

// wave returns the live wave that admitted place, or nil.
func (q *saleQueue) wave(place int32) *admitWave {
	i, ok := slices.BinarySearchFunc(q.waves, place, func(w admitWave, p int32) int {
		switch {
		case p < w.first:
			return 1
		case p >= w.end:
			return -1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return &q.waves[i]
}

func (q *saleQueue) find(id JoinID) int {
	if q == nil {
		return -1
	}
	return q.index.find(q.entries, id)
}

// viewQueue puts a queued sale's counts and commitment in its view; a
// sale without a queue keeps nil, so that the views of the other sales
// stay as small as before.
func (st *state) viewQueue(sl *sale, v *Sale) {
	if sl.queue != nil && sl.cfg.Queue.Mode != 0 {
		c := sl.queue.counts()
		c.Commitment = st.queueCommitment(sl)
		v.QueueCounts = &c
	}
	if sl.offers != nil {
		st.viewOffers(sl, v) // offers.go: a lottery's or a waitlist's counts
	}
}

func (q *saleQueue) counts() QueueCounts {
	if q == nil {
		return QueueCounts{}
	}
	return QueueCounts{Joined: len(q.entries), Admitted: int(q.next), Drawn: q.drawn}
}

// drawPending says whether the sale's buyers wait for a draw.
func (sl *sale) drawPending() bool {
	return sl.cfg.Queue.Mode == QueueShuffleAtOpen && (sl.queue == nil || !sl.queue.drawn)
}

func (q *saleQueue) status(place int, now int64, drawPending bool) QueueStatus {
	s := QueueStatus{JoinID: q.entries[place], Place: place, QueueCounts: q.counts()}
	p := int32(place)
	switch {
	case drawPending:
		s.State, s.Place = QueueRegistered, -1
	case p >= q.next:
		s.State, s.Ahead = QueueWaiting, place-int(q.next)
	default:
		if w, ok := q.used[p]; ok {
			s.State, s.Wave = QueueUsed, w
			break
		}
		w := q.wave(p)
		if w == nil || now >= w.expiresAt {
			s.State = QueueLapsed
			break
		}
		s.State, s.Wave, s.AdmissionExpiryMs = QueueAdmitted, w.no, w.expiresAt
	}
	return s
}

func (q *saleQueue) draw() QueueDraw {
	if q == nil || !q.drawn {
		return QueueDraw{}
	}
	return publishedDraw(q.seed, q.drawnAt, slices.Clone(q.entries[:q.drawnN]))
}

// publishedDraw is a draw as published: the order, and the join ids sorted
// (the list anyone recomputes the order from). It keeps order.
func publishedDraw(seed [32]byte, drawnAt int64, order []JoinID) QueueDraw {
	ids := slices.Clone(order)
	slices.SortFunc(ids, func(a, b JoinID) int { return bytes.Compare(a[:], b[:]) })
	return QueueDraw{Drawn: true, Seed: seed, DrawnAtMs: drawnAt, JoinIDs: ids, Order: order}
}

// applyQueue carries out the queue's events.
func (st *state) applyQueue(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil {
		return fmt.Errorf("%w: %s of unknown sale %q", errCorrupt, ev.kind, ev.saleID)
	}
	st.touch(si)
	q := st.saleQueue(sl, si)
	switch ev.kind {
	case evQueueRule:
		sl.cfg.Queue = ev.q.rule
	case evQueueJoined:
		if q.find(ev.q.id) >= 0 {
			return fmt.Errorf("%w: QueueJoined twice for one buyer", errCorrupt)
		}
		q.entries = append(q.entries, ev.q.id)
		q.index.insert(q.entries, int32(len(q.entries)-1))
	case evQueueDrawn:
		if q.drawn || q.next > 0 {
			return fmt.Errorf("%w: QueueDrawn twice or after admissions", errCorrupt)
		}
		q.drawn, q.seed, q.drawnAt = true, ev.q.seed, ev.at
		q.entries = DrawOrder(ev.q.seed, q.entries)
		q.drawnN = int32(len(q.entries))
		q.index.rebuild(q.entries)
	case evQueueAdmitted:
		if ev.q.n <= 0 || int(q.next)+int(ev.q.n) > len(q.entries) {
			return fmt.Errorf("%w: QueueAdmitted past the queue's end", errCorrupt)
		}
		q.waves = slices.DeleteFunc(q.waves, func(w admitWave) bool { return w.expiresAt <= ev.at })
		q.wavesN++
		q.waves = append(q.waves, admitWave{first: q.next, end: q.next + ev.q.n, no: q.wavesN, expiresAt: ev.q.expiresAt})
		q.next += ev.q.n
		q.lastAdmitAt = ev.at
	case evAdmissionUsed:
		w := q.wave(ev.q.n)
		if w == nil || w.no != ev.q.wave {
			return fmt.Errorf("%w: AdmissionUsed of an admission not given", errCorrupt)
		}
		if _, dup := q.used[ev.q.n]; dup {
			return fmt.Errorf("%w: AdmissionUsed twice", errCorrupt)
		}
		w.used++
		q.used[ev.q.n] = w.no
	}
	return nil
}

// saleQueue returns sl's queue, creating it (and listing the sale among
// the shard's queued sales) on first use.
func (st *state) saleQueue(sl *sale, si int32) *saleQueue {
	if sl.queue == nil {
		sl.queue = &saleQueue{used: make(map[int32]uint32), drawnN: -1}
		st.queued = append(st.queued, si)
	}
	return sl.queue
}

// joinIndex finds an entry by join id: open addressing over entry
// indexes (stored +1, 0 is empty), linear probing, at most half full.
type joinIndex struct {
	slots []int32
	n     int
}

func (x *joinIndex) find(entries []JoinID, id JoinID) int {
	if len(x.slots) == 0 {
		return -1
	}
	mask := uint64(len(x.slots) - 1)
	for i := binary.LittleEndian.Uint64(id[:8]) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return -1
		}
		if entries[s-1] == id {
			return int(s - 1)
		}
	}
}

func (x *joinIndex) insert(entries []JoinID, idx int32) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow(entries[:idx])
	}
	x.put(entries[idx], idx)
	x.n++
}

func (x *joinIndex) put(id JoinID, idx int32) {
	mask := uint64(len(x.slots) - 1)
	i := binary.LittleEndian.Uint64(id[:8]) & mask
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = idx + 1
}

func (x *joinIndex) grow(entries []JoinID) {
	size := max(64, 2*len(x.slots))
	for 2*(len(entries)+1) > size {
		size *= 2
	}
	x.slots = make([]int32, size)
	for i := range entries {
		x.put(entries[i], int32(i))
	}
}

func (x *joinIndex) rebuild(entries []JoinID) {
	x.slots, x.n = nil, 0
	x.grow(entries)
	x.n = len(entries)
}

// moveQueues takes each queued sale's queue to its new shard.
func moveQueues(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for _, si := range st.queued {
			sl := st.sales[si]
			dst := states[route(sl.cfg.ID)]
			nsl, nsi := dst.saleByID(sl.cfg.ID)
			nsl.queue = sl.queue
			dst.queued = append(dst.queued, nsi)
		}
	}
}

// Engine calls.

// QueueJoin puts the buyer id in the sale's queue, or answers the place it
// has.
func (e *Engine) QueueJoin(ctx context.Context, saleID string, id JoinID) (QueueStatus, error) {
	return e.queueCall(ctx, saleID, command{kind: cmdQueueJoin, saleID: saleID, queue: &queueCommand{id: id}})
}

// QueuePosition answers where the buyer id stands in the sale's queue.
func (e *Engine) QueuePosition(ctx context.Context, saleID string, id JoinID) (QueueStatus, error) {
	return e.queueCall(ctx, saleID, command{kind: cmdQueueStatus, saleID: saleID, queue: &queueCommand{id: id}})
}

func (e *Engine) queueCall(ctx context.Context, saleID string, cmd command) (QueueStatus, error) {
	var out QueueStatus
	err := e.one(ctx, saleID, cmd, func(r *result) { out = *r.queue })
	return out, err
}

// QueueDrawOf returns the draw of a sale's queue: the commitment always,
// the rest once drawn.
func (e *Engine) QueueDrawOf(ctx context.Context, saleID string) (QueueDraw, error) {
	var out QueueDraw
	err := e.one(ctx, saleID, command{kind: cmdQueueDraw, saleID: saleID, queue: &queueCommand{draw: true}}, func(r *result) {
		if r.queueDraw != nil {
			out = *r.queueDraw
		}
	})
	out.Commitment = e.QueueSeedCommitment(saleID)
	return out, err
}

// queueCommitment is the commitment of sl's draw, derived once (the loop
// calls it, with the shard's key); zero for a sale without a queue.
func (st *state) queueCommitment(sl *sale) [32]byte {
	if sl.queue == nil || sl.cfg.Queue.Mode == 0 {
		return [32]byte{}
	}
	if sl.queue.commitment == nil {
		seed := queueSeed(st.queueSeedKey, sl.cfg.ID)
		c := sha256.Sum256(seed[:])
		sl.queue.commitment = &c
	}
	return *sl.queue.commitment
}

// DeriveQueueSeedKey derives Config.QueueSeedKey from the data key:
// HMAC-SHA256(dataKey, "onsale/queue-seed/v1").
func DeriveQueueSeedKey(dataKey []byte) []byte {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("onsale/queue-seed/v1"))
	return m.Sum(nil)
}

// QueueSeedCommitment is SHA-256 of the seed that the sale's draw will
// use: published before the opening, so that the seed revealed after it
// can be checked.
func (e *Engine) QueueSeedCommitment(saleID string) [32]byte {
	seed := queueSeed(e.cfg.QueueSeedKey, saleID)
	return sha256.Sum256(seed[:])
}

// Event bodies (event.go):
//
//	QueueRule      saleID mode admitRatePerSec admissionTTLMs
//	QueueJoined    at saleID joinID(16 bytes)
//	QueueDrawn     at saleID seed(32 bytes)
//	QueueAdmitted  at saleID n expiresAt
//	AdmissionUsed  at saleID place wave   (before the OrderPlaced of its purchase)
func appendQueueEvent(b []byte, ev *event) []byte {
	if ev.kind == evQueueRule {
		b = appendString(b, ev.saleID)
		return appendQueueRule(b, ev.q.rule)
	}
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.saleID)
	switch ev.kind {
	case evQueueJoined:
		b = append(b, ev.q.id[:]...)
	case evQueueDrawn:
		b = append(b, ev.q.seed[:]...)
	case evQueueAdmitted:
		b = binary.AppendUvarint(b, uint64(ev.q.n))
		b = binary.AppendVarint(b, ev.q.expiresAt)
	case evAdmissionUsed:
		b = binary.AppendUvarint(b, uint64(ev.q.n))
		b = binary.AppendUvarint(b, uint64(ev.q.wave))
	}
	return b
}

func appendQueueRule(b []byte, r QueueConfig) []byte {
	b = binary.AppendUvarint(b, uint64(r.Mode))
	b = binary.AppendUvarint(b, uint64(r.AdmitRatePerSec))
	return binary.AppendVarint(b, r.AdmissionTTLMs)
}

func decodeQueueEvent(d *decoder, ev *event) {
	q := &queueEvent{}
	ev.q = q
	if ev.kind == evQueueRule {
		ev.saleID = d.str(IDLenMax)
		q.rule = d.queueRule()
		return
	}
	ev.at = d.varint()
	ev.saleID = d.str(IDLenMax)
	switch ev.kind {
	case evQueueJoined:
		copy(q.id[:], d.raw(16))
	case evQueueDrawn:
		copy(q.seed[:], d.raw(32))
	case evQueueAdmitted:
		q.n = int32(d.uvarint(QueueEntriesMax))
		q.expiresAt = d.varint()
	case evAdmissionUsed:
		q.n = int32(d.uvarint(QueueEntriesMax))
		q.wave = uint32(d.uvarint(1<<32 - 1))
	}
}

func (d *decoder) queueRule() QueueConfig {
	r := QueueConfig{Mode: QueueMode(d.uvarint(uint64(queueModeMax))), AdmitRatePerSec: int(d.uvarint(QueueAdmitRateMax)), AdmissionTTLMs: d.varint()}
	if d.err == nil && (r.Mode == 0 || validateQueueConfig(r) != nil) {
		d.fail("invalid queue rule")
	}
	return r
}

// The queue snapshot section: every queued sale's rule and queue, in the
// shard's order of queued sales.
//
//	nsales | {saleID rule flags(1: drawn) seed drawnAt drawnN+1 next
//	          lastAdmitAt wavesN nentries {joinID} nwaves {first end no
//	          used expiresAt} nused {place wave}}*
func init() {
	registerSnapshotSection(snapshotSection{tag: queueSectionTag, freeze: freezeQueues, restore: restoreQueues})
}

func freezeQueues(st *state) func([]byte) []byte {
	if len(st.queued) == 0 {
		return nil
	}
	type frozen struct {
		id      string
		rule    QueueConfig
		q       saleQueue // entries shared: never changed in place
		waves   []admitWave
		used    []int32
		usedWav []uint32
	}
	fs := make([]frozen, 0, len(st.queued))
	for _, si := range st.queued {
		sl := st.sales[si]
		f := frozen{id: sl.cfg.ID, rule: sl.cfg.Queue, q: *sl.queue, waves: slices.Clone(sl.queue.waves)}
		f.q.entries = sl.queue.entries[:len(sl.queue.entries):len(sl.queue.entries)]
		for p := range sl.queue.used {
			f.used = append(f.used, p)
		}
		slices.Sort(f.used)
		for _, p := range f.used {
			f.usedWav = append(f.usedWav, sl.queue.used[p])
		}
		fs = append(fs, f)
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(fs)))
		for i := range fs {
			f := &fs[i]
			b = appendString(b, f.id)
			b = appendQueueRule(b, f.rule)
			b = appendBool(b, f.q.drawn)
			b = append(b, f.q.seed[:]...)
			b = binary.AppendVarint(b, f.q.drawnAt)
			b = binary.AppendUvarint(b, uint64(f.q.drawnN+1))
			b = binary.AppendUvarint(b, uint64(f.q.next))
			b = binary.AppendVarint(b, f.q.lastAdmitAt)
			b = binary.AppendUvarint(b, uint64(f.q.wavesN))
			b = binary.AppendUvarint(b, uint64(len(f.q.entries)))
			for _, id := range f.q.entries {
				b = append(b, id[:]...)
			}
			b = binary.AppendUvarint(b, uint64(len(f.waves)))
			for _, w := range f.waves {
				b = binary.AppendUvarint(b, uint64(w.first))
				b = binary.AppendUvarint(b, uint64(w.end))
				b = binary.AppendUvarint(b, uint64(w.no))
				b = binary.AppendUvarint(b, uint64(w.used))
				b = binary.AppendVarint(b, w.expiresAt)
			}
			b = binary.AppendUvarint(b, uint64(len(f.used)))
			for j, p := range f.used {
				b = binary.AppendUvarint(b, uint64(p))
				b = binary.AppendUvarint(b, uint64(f.usedWav[j]))
			}
		}
		return b
	}
}

func restoreQueues(st *state, body []byte) error {
	d := decoder{b: body}
	nsales := d.uvarint(uint64(len(st.sales)))
	for range nsales {
		id := d.str(IDLenMax)
		rule := d.queueRule()
		if d.err != nil {
			break
		}
		sl, si := st.saleByID(id)
		if sl == nil || sl.queue != nil {
			return fmt.Errorf("%w: snapshot has a queue of a sale it does not hold, or twice", errCorrupt)
		}
		sl.cfg.Queue = rule
		q := st.saleQueue(sl, si)
		q.drawn = d.bool()
		copy(q.seed[:], d.raw(32))
		q.drawnAt = d.varint()
		q.drawnN = int32(d.uvarint(QueueEntriesMax+1)) - 1
		q.next = int32(d.uvarint(QueueEntriesMax))
		q.lastAdmitAt = d.varint()
		q.wavesN = uint32(d.uvarint(1<<32 - 1))
		n := d.uvarint(QueueEntriesMax)
		if d.err != nil || n*16 > uint64(len(d.b)) {
			d.fail("queue entries past the end")
			break
		}
		q.entries = make([]JoinID, n)
		for i := range q.entries {
			copy(q.entries[i][:], d.raw(16))
		}
		q.index.rebuild(q.entries)
		if int(q.next) > len(q.entries) || int(q.drawnN) > len(q.entries) {
			d.fail("queue counts past its entries")
			break
		}
		nw := d.uvarint(uint64(q.wavesN))
		for range nw {
			w := admitWave{first: int32(d.uvarint(QueueEntriesMax)), end: int32(d.uvarint(QueueEntriesMax)),
				no: uint32(d.uvarint(1<<32 - 1)), used: int32(d.uvarint(QueueEntriesMax)), expiresAt: d.varint()}
			if d.err == nil && (w.first >= w.end || w.end > q.next || len(q.waves) > 0 && q.waves[len(q.waves)-1].end > w.first) {
				d.fail("a wave out of order")
			}
			q.waves = append(q.waves, w)
		}
		nu := d.uvarint(uint64(q.next))
		for range nu {
			p, w := int32(d.uvarint(uint64(q.next))), uint32(d.uvarint(1<<32-1))
			q.used[p] = w
		}
		if d.err != nil {
			break
		}
	}
	if err := d.check("queue section"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: queue section: %d bytes left over", errCorrupt, len(d.b))
	}
	return nil
}
