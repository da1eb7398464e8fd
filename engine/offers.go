package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
)

// Offers: the lottery (抽签) and the self-filling waitlist (候补), one
// mechanism. A registration is a buyer's wish (tier, quantity, and on a
// real-name sale one attendee per ticket), kept in a book of the sale in
// rank order. An offer is a pending order that the shard itself creates for
// the first registration in rank whose wish the stock can serve now, with
// the book's own pay-by deadline as its hold: the buyer pays it like any
// order (GET /v1/me/orders lists it), and if the hold runs out or the order
// is cancelled, its tickets are free again and become the next offer.
//
//   - Lottery: registrations are taken until RegistrationClosesAtMs; at
//     the first tick at or after both that instant and the opening, the
//     book is drawn (LotteryDrawn, which logs the seed): its rank is
//     DrawOrder(seed, join ids), the queue's algorithm with the queue's
//     seed (queue.go), so its commitment is published before and
//     "onsale verify-draw" checks it after. Until the draw nothing is sold
//     on open sale.
//   - Waitlist: once a tier cannot serve a quantity, a buyer may register
//     it (in registration order, first come first served) and leave again.
//
// The fill rule, the same for both books (lottery first): walk the
// waiting registrations in rank order and make an offer to each whose
// quantity fits the tier's available tickets now; one that does not fit
// keeps its place and is skipped (a smaller wish behind it may be served
// first: tickets do not wait for a large party), and the walk looks at most
// OfferScanMax waiting registrations per fill so a fill stays short. A
// registration that the per-user or per-document limit would refuse is
// passed over for good (OfferPassed). The fill runs in the same log entry as
// whatever freed tickets: the tick after its expiries (and after the draw),
// and after a cancel, a failed payment, a refund, an exchange or an admin's
// new stock. So freed tickets reach the books before open sale can see
// them, by construction; what is left after a fill fits no one waiting and
// is on open sale.
//
// An offer is made once per registration: an offer that lapses ends that
// registration (on the waitlist, the buyer may register again, at the end).
// A registration's state is derived from its offer's order, never stored
// twice: pending is offered, paid is bought, expired or cancelled is
// lapsed; so no event of its own follows an order's change.
//
// The offer's order key is HMAC-SHA256(Config.QueueSeedKey, "onsale offer
// v1" 0x00 sale id 0x00 book index) cut to 16 bytes: a keyed hash, so the
// decision stays a function of its inputs and the id is not guessable; its
// idempotency key is "offer <book> <index>" (a space, which no client key
// has).

// LotteryConfig is a sale's lottery; the zero value is a sale without one.
type LotteryConfig struct {
	RegistrationClosesAtMs int64 // registrations until then; the draw at the first tick at or after it and the opening
	PayWithinMs            int64 // an offer's hold
}

// WaitlistConfig is a sale's waitlist; the zero value is a sale without one.
type WaitlistConfig struct {
	Enabled     bool
	MaxQuantity int   // tickets one registration may ask for, 1 to QuantityPerOrderMax
	PayWithinMs int64 // an offer's hold
}

// OfferBook names a sale's book of registrations.
type OfferBook uint8

const (
	BookLottery  OfferBook = 1
	BookWaitlist OfferBook = 2
)

func (b OfferBook) String() string {
	if b == BookLottery {
		return "lottery"
	}
	return "waitlist"
}

// OfferState says where a registration stands.
type OfferState uint8

const (
	OfferRegistered OfferState = iota + 1 // lottery, before the draw
	OfferWaiting                          // ranked (or on the waitlist), no offer yet
	OfferOffered                          // an order waits for payment until PayByMs
	OfferBought                           // the offer was paid
	OfferLapsed                           // the offer expired or was cancelled unpaid
	OfferNotWon                           // lottery: no offer, and none can come (closed, or the tier holds nothing that could come back)
	OfferPassed                           // skipped for good: a per-user or per-document limit
	OfferLeft                             // waitlist: the buyer left
)

var offerStateNames = [...]string{OfferRegistered: "registered", OfferWaiting: "waiting", OfferOffered: "offered",
	OfferBought: "bought", OfferLapsed: "lapsed", OfferNotWon: "not_won", OfferPassed: "passed", OfferLeft: "left"}

func (s OfferState) String() string {
	if s > 0 && int(s) < len(offerStateNames) {
		return offerStateNames[s]
	}
	return "unknown"
}

// OfferStatus is a registration's answer.
type OfferStatus struct {
	Book       OfferBook
	State      OfferState
	TierID     string
	Quantity   int
	Rank       int // 0-based place in the book's order; -1 before the lottery's draw
	Ahead      int // registrations waiting ahead (waiting only; counted up to OfferScanMax)
	OrderID    string
	PayByMs    int64 // offered: the order's hold
	Registered int   // registrations in the book
	Drawn      bool  // lottery: the draw has happened
	Created    bool  // this call registered

	orderKey orderKey
}

// OffersConfig is a sale's lottery and waitlist, behind one pointer in
// SaleConfig so that the sales without either (and every view published of
// them) carry 8 bytes for it. Shared: never modify it.
type OffersConfig struct {
	Lottery  LotteryConfig
	Waitlist WaitlistConfig
}

func newOffersConfig(l LotteryConfig, w WaitlistConfig) *OffersConfig {
	if l == (LotteryConfig{}) && w == (WaitlistConfig{}) {
		return nil
	}
	return &OffersConfig{Lottery: l, Waitlist: w}
}

// LotteryRule is the sale's lottery; zero without one.
func (c *SaleConfig) LotteryRule() LotteryConfig {
	if c.Offers == nil {
		return LotteryConfig{}
	}
	return c.Offers.Lottery
}

// WaitlistRule is the sale's waitlist; zero without one.
func (c *SaleConfig) WaitlistRule() WaitlistConfig {
	if c.Offers == nil {
		return WaitlistConfig{}
	}
	return c.Offers.Waitlist
}

// viewOffers puts a sale's books' counts in its view's QueueCounts (which
// a sale with books has even without a queue): a lottery's registrations
// as Joined, its draw as Drawn and its commitment (the queue's), and the
// waitlist's registrations ever taken.
func (st *state) viewOffers(sl *sale, v *Sale) {
	c := v.QueueCounts
	if c == nil {
		c = &QueueCounts{}
		v.QueueCounts = c
	}
	if b := sl.offers.lottery; b != nil {
		c.Joined, c.Drawn = len(b.regs), b.drawn
	}
	if b := sl.offers.waitlist; b != nil {
		c.WaitlistRegistered = len(b.regs)
	}
	if sl.cfg.LotteryRule() != (LotteryConfig{}) {
		if sl.offers.commitment == nil {
			seed := queueSeed(st.queueSeedKey, sl.cfg.ID)
			sum := sha256.Sum256(seed[:])
			sl.offers.commitment = &sum
		}
		c.Commitment = *sl.offers.commitment
	}
}

// OfferRequest is a registration.
type OfferRequest struct {
	UserID    string
	JoinID    JoinID // the queue's keyed hash of the user id (httpapi)
	TierID    string
	Quantity  int
	Attendees []Attendee // real-name sales: one per ticket
}

// Limits and codes of the books.
const (
	OfferPayWithinMsMin = 60_000
	OfferPayWithinMsMax = 7 * 24 * 3_600_000
	OfferBookMax        = 1 << 22 // registrations per book
	OfferScanMax        = 4096    // waiting registrations one fill looks at
	offersSectionTag    = 111
	queueDocsSectionTag = 112

	// CodeRegistrationClosed: a lottery registration after its close.
	CodeRegistrationClosed Code = "registration_closed"
	// CodeTicketsAvailable: a waitlist registration for a quantity the tier
	// can sell now.
	CodeTicketsAvailable Code = "tickets_available"
	// CodeNotRegistered: a status or leave without a registration.
	CodeNotRegistered Code = "not_registered"
	// CodeDocumentInQueue: a real-name sale's document holds a place (in
	// its queue or a book) under another buyer id.
	CodeDocumentInQueue Code = "document_in_queue"
)

const (
	regWaiting uint8 = iota + 1
	regOffered
	regPassed
	regLeft
)

// Reasons an OfferPassed logs.
const (
	passUserLimit     = 1
	passDocumentLimit = 2
)

// saleOffers is a sale's books; nil on a sale without a rule.
type saleOffers struct {
	lottery, waitlist *offerBook
	commitment        *[32]byte // derived: the lottery's commitment, once asked (viewOffers)
}

// offerBook is one book: registrations in rank order.
type offerBook struct {
	regs    []registration
	byJoin  map[JoinID]int32 // the newest registration of a join id
	byDoc   map[[32]byte]int32
	byOrder map[orderKey]int32
	head    int32 // regs[:head] wait no more
	drawn   bool
	seed    [32]byte
	drawnAt int64
}

// registration is one buyer's wish; never changed but for state and order.
type registration struct {
	join      JoinID
	user      string
	tier      uint16
	qty       uint16
	state     uint8
	at        int64
	order     orderKey // regOffered
	attendees []Attendee
}

// offerEvent is the body of the books' events.
type offerEvent struct {
	lottery  LotteryConfig  // OffersRule
	waitlist WaitlistConfig // OffersRule
	book     OfferBook
	reg      registration // OfferRegistered
	index    int32        // OfferMade, OfferPassed, OfferLeft
	seed     [32]byte     // LotteryDrawn
	reason   uint8        // OfferPassed
	doc      [32]byte     // QueueDocument
}

// offerCommand is a book call's arguments.
type offerCommand struct {
	book OfferBook
	join JoinID
}

func validateOffersConfig(c *SaleConfig) *Rejection {
	l, w := c.LotteryRule(), c.WaitlistRule()
	switch {
	case l != LotteryConfig{} && c.Queue.Mode != 0:
		return reject(CodeInvalidRequest, "a sale sells through its queue or by lottery, not both")
	case l != LotteryConfig{} && (l.RegistrationClosesAtMs <= 0 || l.RegistrationClosesAtMs >= c.ClosesAtMs):
		return reject(CodeInvalidRequest, "queue.registration_closes_at must be before the sale closes")
	case l != LotteryConfig{} && (l.PayWithinMs < OfferPayWithinMsMin || l.PayWithinMs > OfferPayWithinMsMax):
		return reject(CodeInvalidRequest, "queue.pay_within_seconds must be %d to %d", OfferPayWithinMsMin/1000, OfferPayWithinMsMax/1000)
	case w == WaitlistConfig{}:
		return nil
	case !w.Enabled:
		return reject(CodeInvalidRequest, "waitlist: set enabled, or leave the waitlist out")
	case w.MaxQuantity < 1 || w.MaxQuantity > QuantityPerOrderMax:
		return reject(CodeInvalidRequest, "waitlist.max_quantity must be 1 to %d", QuantityPerOrderMax)
	case w.PayWithinMs < OfferPayWithinMsMin || w.PayWithinMs > OfferPayWithinMsMax:
		return reject(CodeInvalidRequest, "waitlist.pay_within_seconds must be %d to %d", OfferPayWithinMsMin/1000, OfferPayWithinMsMax/1000)
	}
	return nil
}

// offersRuleEvent appends the books' rule of a sale being put: SalePut's
// record does not carry it, this event in the same entry does (as the
// queue's rule). A sale that had books keeps their registrations.
func (st *state) offersRuleEvent(evs []event, cfg *SaleConfig) []event {
	sl, _ := st.saleByID(cfg.ID)
	if cfg.Offers == nil && (sl == nil || sl.offers == nil) {
		return evs
	}
	return append(evs, event{kind: evOffersRule, saleID: cfg.ID, offer: &offerEvent{lottery: cfg.LotteryRule(), waitlist: cfg.WaitlistRule()}})
}

// lotteryBlocks refuses an open purchase on a lottery sale before its draw.
func (sl *sale) lotteryBlocks(now int64) *Rejection {
	l := sl.cfg.LotteryRule()
	if l == (LotteryConfig{}) || sl.offers != nil && sl.offers.lottery != nil && sl.offers.lottery.drawn {
		return nil
	}
	return reject(CodeSaleNotOpen, "sale %q sells by lottery: register until %s; what the winners leave goes on sale after the draw",
		sl.cfg.ID, formatMs(l.RegistrationClosesAtMs))
}

func (o *saleOffers) book(b OfferBook) *offerBook {
	if o == nil {
		return nil
	}
	if b == BookLottery {
		return o.lottery
	}
	return o.waitlist
}

// decideOffer decides a registration, a leave, and answers a status.
func (st *state) decideOffer(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	bk := cmd.offer.book
	if bk == BookLottery && sl.cfg.LotteryRule() == (LotteryConfig{}) || bk == BookWaitlist && !sl.cfg.WaitlistRule().Enabled {
		return evs, reject(CodeNotQueued, "sale %q has no %s", cmd.saleID, bk)
	}
	b := sl.offers.book(bk)
	i := int32(-1)
	if b != nil {
		if j, ok := b.byJoin[cmd.offer.join]; ok {
			i = j
		}
	}
	switch cmd.kind {
	case cmdOfferStatus:
		if i < 0 {
			return evs, reject(CodeNotRegistered, "you have not registered for the %s of sale %q", bk, cmd.saleID)
		}
		s := st.offerStatus(sl, bk, i, now)
		res.offer = &s
		return evs, nil
	case cmdOfferLeave:
		if i < 0 || b.regs[i].state != regWaiting {
			return evs, reject(CodeNotRegistered, "you have no waiting registration on the %s of sale %q", bk, cmd.saleID)
		}
		return append(evs, event{kind: evOfferLeft, at: now, saleID: cmd.saleID, offer: &offerEvent{book: bk, index: i}}), nil
	}
	if i >= 0 && (bk == BookLottery || st.regLive(b, i)) { // a register again: the same registration
		s := st.offerStatus(sl, bk, i, now)
		res.offer = &s
		return evs, nil
	}
	t := sl.tierIndex(cmd.tierID)
	maxQty := QuantityPerOrderMax
	if bk == BookWaitlist {
		maxQty = sl.cfg.WaitlistRule().MaxQuantity
	}
	switch {
	case sl.closed || now >= sl.cfg.ClosesAtMs:
		return evs, reject(CodeSaleClosed, "sale %q is closed", cmd.saleID)
	case bk == BookLottery && now >= sl.cfg.LotteryRule().RegistrationClosesAtMs:
		return evs, reject(CodeRegistrationClosed, "the lottery of sale %q closed its registrations at %s", cmd.saleID, formatMs(sl.cfg.LotteryRule().RegistrationClosesAtMs))
	case bk == BookWaitlist && now < sl.cfg.OpensAtMs:
		return evs, reject(CodeSaleNotOpen, "sale %q opens at %s", cmd.saleID, formatMs(sl.cfg.OpensAtMs))
	case t < 0:
		return evs, reject(CodeUnknownTier, "sale %q has no tier %q", cmd.saleID, cmd.tierID)
	case cmd.qty < 1 || cmd.qty > maxQty:
		return evs, reject(CodeInvalidQuantity, "quantity must be 1 to %d", maxQty)
	case int(sl.users[cmd.userID].tickets)+cmd.qty*sl.ticketsPer(t) > sl.cfg.PerUserLimit:
		return evs, reject(CodeLimitExceeded, "at most %d tickets per user; you hold %d", sl.cfg.PerUserLimit, sl.users[cmd.userID].tickets)
	case bk == BookWaitlist && sl.available(t) >= cmd.qty:
		return evs, reject(CodeTicketsAvailable, "tier %q has %d tickets on sale: buy them", cmd.tierID, sl.available(t))
	case b != nil && len(b.regs) >= OfferBookMax:
		return evs, reject(CodeQueueFull, "the %s of sale %q is full", bk, cmd.saleID)
	}
	if rej := st.checkRegistrationDocs(sl, b, cmd); rej != nil {
		return evs, rej
	}
	reg := registration{join: cmd.offer.join, user: cmd.userID, tier: uint16(t), qty: uint16(cmd.qty), state: regWaiting, at: now, attendees: cmd.attendees}
	return append(evs, event{kind: evOfferRegistered, at: now, saleID: cmd.saleID, offer: &offerEvent{book: bk, reg: reg}}), nil
}

// regLive says whether a registration still stands: waiting, or offered
// with its order pending.
func (st *state) regLive(b *offerBook, i int32) bool {
	r := &b.regs[i]
	switch r.state {
	case regWaiting:
		return true
	case regOffered:
		o, _ := st.orderByKey(r.order)
		return o != nil && o.status == StatusPending
	}
	return false
}

// checkRegistrationDocs is the real-name rule for a registration: one
// attendee per ticket, each document once, and no document that holds a
// live registration of the book or its sale's limit already.
func (st *state) checkRegistrationDocs(sl *sale, b *offerBook, cmd *command) *Rejection {
	if !sl.cfg.RealName.Required {
		if len(cmd.attendees) > 0 {
			return reject(CodeAttendeesRequired, "sale %q is not a real-name sale; send no attendees", cmd.saleID)
		}
		return nil
	}
	if len(cmd.attendees) != cmd.qty {
		return reject(CodeAttendeesRequired, "sale %q is a real-name sale: send one attendee per ticket (%d), not %d", cmd.saleID, cmd.qty, len(cmd.attendees))
	}
	si := st.saleIdx[cmd.saleID]
	for i := range cmd.attendees {
		h := cmd.attendees[i].DocumentHash
		for j := range i {
			if cmd.attendees[j].DocumentHash == h {
				return reject(CodeDuplicateDocument, "attendees[%d] and attendees[%d] have the same document; each ticket needs its own attendee", j, i)
			}
		}
		if b != nil {
			if j, ok := b.byDoc[h]; ok && st.regLive(b, j) {
				return reject(CodeDocumentInQueue, "attendees[%d]: this document holds a place in this sale's %s under another buyer", i, cmd.offer.book)
			}
		}
		if have := st.documentTickets(si, h); have >= sl.cfg.RealName.PerDocumentLimit {
			return reject(CodeDocumentLimitExceeded, "attendees[%d]: this document holds %d tickets of the sale already; at most %d per document",
				i, have, sl.cfg.RealName.PerDocumentLimit)
		}
	}
	return nil
}

// answerOffer answers a registration or a leave once applied.
func (st *state) answerOffer(cmd *command, res *result, changed bool) {
	if cmd.kind == cmdOfferStatus || !changed {
		return
	}
	sl, _ := st.saleByID(cmd.saleID)
	b := sl.offers.book(cmd.offer.book)
	s := st.offerStatus(sl, cmd.offer.book, b.byJoin[cmd.offer.join], 0)
	s.Created = cmd.kind == cmdOfferRegister
	res.offer = &s
}

func (st *state) offerStatus(sl *sale, bk OfferBook, i int32, now int64) OfferStatus {
	b := sl.offers.book(bk)
	r := &b.regs[i]
	s := OfferStatus{Book: bk, TierID: sl.cfg.Tiers[r.tier].ID, Quantity: int(r.qty), Rank: int(i), Registered: len(b.regs), Drawn: b.drawn}
	switch r.state {
	case regPassed:
		s.State = OfferPassed
	case regLeft:
		s.State = OfferLeft
	case regOffered:
		o, _ := st.orderByKey(r.order)
		if o == nil { // its sale was archived and brought back without it: the offer is over
			s.State = OfferLapsed
			break
		}
		s.orderKey, s.PayByMs = r.order, o.expiresAt
		switch o.status {
		case StatusPending:
			s.State = OfferOffered
		case StatusPaid, StatusRefunded:
			s.State = OfferBought
		default:
			s.State = OfferLapsed
		}
	default:
		switch {
		case bk == BookLottery && !b.drawn:
			s.State, s.Rank = OfferRegistered, -1
		case bk == BookLottery && (sl.closed || now >= sl.cfg.ClosesAtMs || sl.tiers[r.tier].held == 0 && sl.available(int(r.tier)) < int(r.qty)):
			s.State = OfferNotWon
		default:
			s.State = OfferWaiting
			for j := b.head; j < i && s.Ahead < OfferScanMax; j++ {
				if b.regs[j].state == regWaiting {
					s.Ahead++
				}
			}
		}
	}
	return s
}

// offersDue says whether a tick would draw a lottery.
func (st *state) offersDue(now int64) bool {
	for _, si := range st.offered {
		if st.sales[si].lotteryDue(now) {
			return true
		}
	}
	return false
}

func (sl *sale) lotteryDue(now int64) bool {
	l := sl.cfg.LotteryRule()
	return l != (LotteryConfig{}) && now >= l.RegistrationClosesAtMs && now >= sl.cfg.OpensAtMs &&
		(sl.offers == nil || sl.offers.lottery == nil || !sl.offers.lottery.drawn)
}

// offersTick draws the lotteries that are due and, when the tick freed
// tickets (freed: it expired holds), fills the books. expireDue runs it.
func (st *state) offersTick(now int64, freed bool, evs []event) []event {
	for _, si := range st.offered {
		sl := st.sales[si]
		drew := false
		if sl.lotteryDue(now) {
			evs = append(evs, event{kind: evLotteryDrawn, at: now, saleID: sl.cfg.ID, offer: &offerEvent{book: BookLottery, seed: queueSeed(st.queueSeedKey, sl.cfg.ID)}})
			st.mustApply(&evs[len(evs)-1])
			drew = true
		}
		if drew || freed {
			evs = st.fillOffers(sl, now, evs)
		}
	}
	return evs
}

// offersAfter fills the books of the sale a command changed: a cancel, a
// failed payment, a refund, an exchange or new stock frees tickets, and
// they go to the books in the same entry. execute calls it for commands
// that logged something, only when the shard has a sale with books.
func (st *state) offersAfter(cmd *command, now int64, evs []event) []event {
	switch cmd.kind {
	case cmdPurchase, cmdBoxOfficePurchase, cmdOfferRegister, cmdOfferLeave, cmdQueueJoin:
		return evs // these take tickets or free none
	}
	id := cmd.saleID
	if cmd.kind == cmdPutSale {
		id = cmd.sale.ID
	}
	sl, _ := st.saleByID(id)
	if sl == nil || sl.offers == nil {
		return evs
	}
	return st.fillOffers(sl, now, evs)
}

// fillOffers makes the offers that the sale's available tickets allow, by
// the fill rule, appending and applying each event.
func (st *state) fillOffers(sl *sale, now int64, evs []event) []event {
	if sl.offers == nil || sl.closed || now < sl.cfg.OpensAtMs || now >= sl.cfg.ClosesAtMs {
		return evs
	}
	for _, bk := range [...]OfferBook{BookLottery, BookWaitlist} {
		b := sl.offers.book(bk)
		if b == nil || bk == BookLottery && !b.drawn {
			continue
		}
		scanned := 0
		for i := b.head; int(i) < len(b.regs) && scanned < OfferScanMax; i++ {
			if sl.availableTickets() == 0 {
				return evs
			}
			r := &b.regs[i]
			if r.state != regWaiting {
				continue
			}
			scanned++
			t := int(r.tier)
			if sl.available(t) < int(r.qty) {
				continue
			}
			ev := event{at: now, saleID: sl.cfg.ID, offer: &offerEvent{book: bk, index: i}}
			switch {
			case int(sl.users[r.user].tickets)+int(r.qty)*sl.ticketsPer(t) > sl.cfg.PerUserLimit:
				ev.kind, ev.offer.reason = evOfferPassed, passUserLimit
			case !st.registrationDocsFit(sl, r):
				ev.kind, ev.offer.reason = evOfferPassed, passDocumentLimit
			default:
				evs = st.makeOffer(sl, bk, i, now, evs)
				continue
			}
			evs = append(evs, ev)
			st.mustApply(&evs[len(evs)-1])
		}
	}
	return evs
}

func (st *state) registrationDocsFit(sl *sale, r *registration) bool {
	limit := sl.cfg.RealName.PerDocumentLimit
	if len(r.attendees) == 0 || limit == 0 {
		return true
	}
	si := st.saleIdx[sl.cfg.ID]
	for i := range r.attendees {
		if st.documentTickets(si, r.attendees[i].DocumentHash) >= limit {
			return false
		}
	}
	return true
}

// makeOffer appends and applies an offer's events: its attendees (on a
// real-name sale), its order, and OfferMade, which ties the order to the
// registration and is what the outbox tells the buyer.
func (st *state) makeOffer(sl *sale, bk OfferBook, i int32, now int64, evs []event) []event {
	b := sl.offers.book(bk)
	r := &b.regs[i]
	k := offerOrderKey(st.queueSeedKey, sl.cfg.ID, bk, i)
	if _, taken := st.byKey[k]; taken {
		panic(newInvariantError("offer order key derived twice"))
	}
	payWithin := sl.cfg.LotteryRule().PayWithinMs
	if bk == BookWaitlist {
		payWithin = sl.cfg.WaitlistRule().PayWithinMs
	}
	start := len(evs)
	if len(r.attendees) > 0 {
		evs = append(evs, event{kind: evAttendeesNamed, at: now, saleID: sl.cfg.ID, order: k, attendees: r.attendees})
	}
	evs = append(evs,
		event{kind: evOrderPlaced, at: now, saleID: sl.cfg.ID, order: k, userID: r.user,
			key: "offer " + bk.String() + " " + strconv.Itoa(int(i)), tier: r.tier, qty: r.qty,
			amount: sl.unitPrice(int(r.tier), now) * int64(r.qty), expiresAt: now + payWithin},
		event{kind: evOfferMade, at: now, saleID: sl.cfg.ID, order: k, offer: &offerEvent{book: bk, index: i}})
	for j := start; j < len(evs); j++ {
		st.mustApply(&evs[j])
	}
	return evs
}

func offerOrderKey(key []byte, saleID string, bk OfferBook, i int32) orderKey {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("onsale offer v1\x00"))
	m.Write([]byte(saleID))
	m.Write([]byte{0, byte(bk)})
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(i)))
	var sum [32]byte
	m.Sum(sum[:0])
	return orderKey(sum[:16])
}

// lotteryDraw is the lottery's published draw, in the queue's form.
func (b *offerBook) lotteryDraw() QueueDraw {
	if b == nil || !b.drawn {
		return QueueDraw{}
	}
	order := make([]JoinID, len(b.regs))
	for i := range b.regs {
		order[i] = b.regs[i].join
	}
	return publishedDraw(b.seed, b.drawnAt, order)
}

// applyOffers carries out the books' events.
func (st *state) applyOffers(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil {
		return fmt.Errorf("%w: %s of unknown sale %q", errCorrupt, ev.kind, ev.saleID)
	}
	st.touch(si)
	if ev.kind == evOffersRule {
		sl.cfg.Offers = newOffersConfig(ev.offer.lottery, ev.offer.waitlist)
		st.saleOffers(sl, si)
		return nil
	}
	if ev.kind == evQueueDocument {
		q := st.saleQueue(sl, si)
		if q.docs == nil {
			q.docs = make(map[[32]byte]JoinID)
		}
		q.docs[ev.offer.doc] = ev.offer.reg.join
		return nil
	}
	b := st.offerBook(sl, si, ev.offer.book)
	i := ev.offer.index
	if ev.kind != evOfferRegistered && ev.kind != evLotteryDrawn && (i < 0 || int(i) >= len(b.regs)) {
		return fmt.Errorf("%w: %s of registration %d of %d", errCorrupt, ev.kind, i, len(b.regs))
	}
	switch ev.kind {
	case evOfferRegistered:
		if b.drawn {
			return fmt.Errorf("%w: OfferRegistered after the draw", errCorrupt)
		}
		r := ev.offer.reg
		if int(r.tier) >= len(sl.tiers) || r.qty == 0 {
			return fmt.Errorf("%w: OfferRegistered of an unknown tier", errCorrupt)
		}
		b.regs = append(b.regs, r)
		b.index(int32(len(b.regs) - 1))
	case evLotteryDrawn:
		if b.drawn {
			return fmt.Errorf("%w: LotteryDrawn twice", errCorrupt)
		}
		b.drawn, b.seed, b.drawnAt = true, ev.offer.seed, ev.at
		ids := make([]JoinID, len(b.regs))
		for i := range b.regs {
			ids[i] = b.regs[i].join
		}
		ranked := make([]registration, 0, len(b.regs))
		for _, id := range DrawOrder(b.seed, ids) {
			ranked = append(ranked, b.regs[b.byJoin[id]])
		}
		b.regs = ranked
		b.reindex()
	case evOfferMade:
		r := &b.regs[i]
		if r.state != regWaiting {
			return fmt.Errorf("%w: OfferMade of a registration that does not wait", errCorrupt)
		}
		if _, placed := st.byKey[ev.order]; !placed && !st.replaying {
			return fmt.Errorf("%w: OfferMade before its order", errCorrupt)
		}
		r.state, r.order = regOffered, ev.order
		b.byOrder[ev.order] = i
	case evOfferPassed, evOfferLeft:
		r := &b.regs[i]
		if r.state != regWaiting {
			return fmt.Errorf("%w: %s of a registration that does not wait", errCorrupt, ev.kind)
		}
		r.state = regPassed
		if ev.kind == evOfferLeft {
			r.state = regLeft
		}
	}
	for int(b.head) < len(b.regs) && b.regs[b.head].state != regWaiting {
		b.head++
	}
	return nil
}

func (b *offerBook) index(i int32) {
	r := &b.regs[i]
	b.byJoin[r.join] = i
	for _, a := range r.attendees {
		b.byDoc[a.DocumentHash] = i
	}
	if r.state == regOffered {
		b.byOrder[r.order] = i
	}
}

func (b *offerBook) reindex() {
	b.byJoin = make(map[JoinID]int32, len(b.regs))
	b.byDoc = make(map[[32]byte]int32)
	b.byOrder = make(map[orderKey]int32)
	for i := range b.regs {
		b.index(int32(i))
	}
}

// saleOffers returns sl's books, creating them (and listing the sale
// among the shard's sales with books) on first use.
func (st *state) saleOffers(sl *sale, si int32) *saleOffers {
	if sl.offers == nil {
		sl.offers = &saleOffers{}
		st.offered = append(st.offered, si)
	}
	return sl.offers
}

func (st *state) offerBook(sl *sale, si int32, bk OfferBook) *offerBook {
	o := st.saleOffers(sl, si)
	p := &o.waitlist
	if bk == BookLottery {
		p = &o.lottery
	}
	if *p == nil {
		*p = &offerBook{}
		(*p).reindex()
	}
	return *p
}

// moveOffers takes each sale's books to its new shard.
func moveOffers(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for _, si := range st.offered {
			sl := st.sales[si]
			dst := states[route(sl.cfg.ID)]
			nsl, nsi := dst.saleByID(sl.cfg.ID)
			nsl.offers = sl.offers
			dst.offered = append(dst.offered, nsi)
		}
	}
}

// One place per document in a real-name sale's queue (queue.go): a join
// names the buyer's document (its keyed hash); a document that holds a
// place under another join id is refused. QueueDocument is logged before
// the QueueJoined of the same entry.
func (st *state) decideQueueDocument(sl *sale, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	if !sl.cfg.RealName.Required {
		return evs, nil
	}
	doc := cmd.queue.doc
	if doc == nil {
		return evs, reject(CodeAttendeesRequired, "sale %q is a real-name sale: join its queue with your document", cmd.saleID)
	}
	if sl.queue != nil {
		if _, held := sl.queue.docs[*doc]; held {
			return evs, reject(CodeDocumentInQueue, "this document holds a place in the queue of sale %q under another buyer", cmd.saleID)
		}
	}
	return append(evs, event{kind: evQueueDocument, at: now, saleID: cmd.saleID, offer: &offerEvent{reg: registration{join: cmd.queue.id}, doc: *doc}}), nil
}

// Engine calls.

// OfferRegister registers a buyer in a sale's lottery or waitlist, or
// answers the registration it has.
func (e *Engine) OfferRegister(ctx context.Context, saleID string, bk OfferBook, req OfferRequest) (OfferStatus, error) {
	return e.offerCall(ctx, saleID, command{kind: cmdOfferRegister, saleID: saleID, userID: req.UserID, tierID: req.TierID,
		qty: req.Quantity, attendees: req.Attendees, offer: &offerCommand{book: bk, join: req.JoinID}})
}

// OfferStatusOf answers where a buyer's registration stands.
func (e *Engine) OfferStatusOf(ctx context.Context, saleID string, bk OfferBook, join JoinID) (OfferStatus, error) {
	return e.offerCall(ctx, saleID, command{kind: cmdOfferStatus, saleID: saleID, offer: &offerCommand{book: bk, join: join}})
}

// OfferLeave takes a waiting registration off a sale's waitlist.
func (e *Engine) OfferLeave(ctx context.Context, saleID string, join JoinID) (OfferStatus, error) {
	return e.offerCall(ctx, saleID, command{kind: cmdOfferLeave, saleID: saleID, offer: &offerCommand{book: BookWaitlist, join: join}})
}

func (e *Engine) offerCall(ctx context.Context, saleID string, cmd command) (OfferStatus, error) {
	var out OfferStatus
	err := e.one(ctx, saleID, cmd, func(r *result) { out = *r.offer })
	if err == nil && out.State >= OfferOffered && out.State <= OfferLapsed {
		out.OrderID = formatOrderID(saleID, out.orderKey)
	}
	return out, err
}

// QueueJoinDocument is QueueJoin on a real-name sale: doc is the keyed
// hash of the buyer's document, which may hold one place.
func (e *Engine) QueueJoinDocument(ctx context.Context, saleID string, id JoinID, doc [32]byte) (QueueStatus, error) {
	return e.queueCall(ctx, saleID, command{kind: cmdQueueJoin, saleID: saleID, queue: &queueCommand{id: id, doc: &doc}})
}

// Event bodies (event.go):
//
//	OffersRule       saleID regClosesAt lotteryPayWithin waitlistFlags(1: enabled) maxQty waitlistPayWithin
//	OfferRegistered  at saleID book joinID(16) user tier qty nattendees {attendee}
//	LotteryDrawn     at saleID seed(32)
//	OfferMade        at saleID book index key     (after the OrderPlaced of its order)
//	OfferPassed      at saleID book index reason
//	OfferLeft        at saleID book index
//	QueueDocument    at saleID joinID(16) docHash(32)   (before its QueueJoined)
func appendOfferEvent(b []byte, ev *event) []byte {
	o := ev.offer
	if ev.kind == evOffersRule {
		b = appendString(b, ev.saleID)
		return appendOffersRule(b, o.lottery, o.waitlist)
	}
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.saleID)
	switch ev.kind {
	case evOfferRegistered:
		b = append(b, byte(o.book))
		b = appendRegistration(b, &o.reg)
	case evLotteryDrawn:
		b = append(b, o.seed[:]...)
	case evOfferMade, evOfferPassed, evOfferLeft:
		b = append(b, byte(o.book))
		b = binary.AppendUvarint(b, uint64(o.index))
		switch ev.kind {
		case evOfferMade:
			b = append(b, ev.order[:]...)
		case evOfferPassed:
			b = append(b, o.reason)
		}
	case evQueueDocument:
		b = append(b, o.reg.join[:]...)
		b = append(b, o.doc[:]...)
	}
	return b
}

func appendOffersRule(b []byte, l LotteryConfig, w WaitlistConfig) []byte {
	b = binary.AppendVarint(b, l.RegistrationClosesAtMs)
	b = binary.AppendVarint(b, l.PayWithinMs)
	b = appendBool(b, w.Enabled)
	b = binary.AppendUvarint(b, uint64(w.MaxQuantity))
	return binary.AppendVarint(b, w.PayWithinMs)
}

// appendRegistration writes what a registration was given (not its state).
func appendRegistration(b []byte, r *registration) []byte {
	b = append(b, r.join[:]...)
	b = appendString(b, r.user)
	b = binary.AppendUvarint(b, uint64(r.tier))
	b = binary.AppendUvarint(b, uint64(r.qty))
	if len(r.attendees) == 0 {
		return append(b, 0)
	}
	return appendAttendees(b, r.attendees)
}

func decodeOfferEvent(d *decoder, ev *event) {
	o := &offerEvent{}
	ev.offer = o
	if ev.kind == evOffersRule {
		ev.saleID = d.str(IDLenMax)
		o.lottery, o.waitlist = d.offersRule()
		return
	}
	ev.at = d.varint()
	ev.saleID = d.str(IDLenMax)
	switch ev.kind {
	case evOfferRegistered:
		o.book = d.book()
		o.reg = d.registration()
		o.reg.at, o.reg.state = ev.at, regWaiting
	case evLotteryDrawn:
		o.book = BookLottery
		copy(o.seed[:], d.raw(32))
	case evOfferMade, evOfferPassed, evOfferLeft:
		o.book = d.book()
		o.index = int32(d.uvarint(OfferBookMax))
		switch ev.kind {
		case evOfferMade:
			ev.order = d.key()
		case evOfferPassed:
			o.reason = byte(d.uvarint(passDocumentLimit))
		}
	case evQueueDocument:
		copy(o.reg.join[:], d.raw(16))
		copy(o.doc[:], d.raw(32))
	}
}

func (d *decoder) book() OfferBook {
	bk := OfferBook(d.uvarint(uint64(BookWaitlist)))
	if d.err == nil && bk == 0 {
		d.fail("book 0")
	}
	return bk
}

func (d *decoder) registration() registration {
	var r registration
	copy(r.join[:], d.raw(16))
	r.user = d.str(UserLenMax)
	r.tier = uint16(d.uvarint(TiersPerSaleMax - 1))
	r.qty = uint16(d.uvarint(QuantityPerOrderMax))
	if d.err == nil && len(d.b) > 0 && d.b[0] == 0 {
		d.b = d.b[1:]
	} else {
		r.attendees = d.attendees()
	}
	if d.err == nil && r.qty == 0 {
		d.fail("registration of no ticket")
	}
	return r
}

func (d *decoder) offersRule() (LotteryConfig, WaitlistConfig) {
	l := LotteryConfig{RegistrationClosesAtMs: d.varint(), PayWithinMs: d.varint()}
	w := WaitlistConfig{Enabled: d.bool(), MaxQuantity: int(d.uvarint(QuantityPerOrderMax)), PayWithinMs: d.varint()}
	if d.err == nil && (l != LotteryConfig{} && (l.PayWithinMs < OfferPayWithinMsMin || l.PayWithinMs > OfferPayWithinMsMax) ||
		w != WaitlistConfig{} && (w.PayWithinMs < OfferPayWithinMsMin || w.PayWithinMs > OfferPayWithinMsMax)) {
		d.fail("invalid offers rule")
	}
	return l, w
}

// The offers snapshot section: every sale with books, in the shard's
// order, with its rule and both books.
//
//	nsales | {saleID rule {present(0|1) [drawn seed drawnAt nregs
//	          {registration at state [key]}]}x2}*
//
// The queue-documents section: every queued sale with documents.
//
//	nsales | {saleID ndocs {docHash joinID}}*
func init() {
	registerSnapshotSection(snapshotSection{tag: offersSectionTag, freeze: freezeOffers, restore: restoreOffers})
	registerSnapshotSection(snapshotSection{tag: queueDocsSectionTag, freeze: freezeQueueDocs, restore: restoreQueueDocs})
}

func freezeOffers(st *state) func([]byte) []byte {
	if len(st.offered) == 0 {
		return nil
	}
	type frozenBook struct {
		b    offerBook // regs cloned below: states change in place
		regs []registration
	}
	type frozen struct {
		id    string
		l     LotteryConfig
		w     WaitlistConfig
		books [2]*frozenBook
	}
	fs := make([]frozen, 0, len(st.offered))
	for _, si := range st.offered {
		sl := st.sales[si]
		f := frozen{id: sl.cfg.ID, l: sl.cfg.LotteryRule(), w: sl.cfg.WaitlistRule()}
		for j, b := range [2]*offerBook{sl.offers.lottery, sl.offers.waitlist} {
			if b != nil {
				f.books[j] = &frozenBook{b: *b, regs: slices.Clone(b.regs)}
			}
		}
		fs = append(fs, f)
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(fs)))
		for i := range fs {
			f := &fs[i]
			b = appendString(b, f.id)
			b = appendOffersRule(b, f.l, f.w)
			for _, fb := range f.books {
				b = appendBool(b, fb != nil)
				if fb == nil {
					continue
				}
				b = appendBool(b, fb.b.drawn)
				b = append(b, fb.b.seed[:]...)
				b = binary.AppendVarint(b, fb.b.drawnAt)
				b = binary.AppendUvarint(b, uint64(len(fb.regs)))
				for k := range fb.regs {
					r := &fb.regs[k]
					b = appendRegistration(b, r)
					b = binary.AppendVarint(b, r.at)
					b = append(b, r.state)
					if r.state == regOffered {
						b = append(b, r.order[:]...)
					}
				}
			}
		}
		return b
	}
}

func restoreOffers(st *state, body []byte) error {
	d := decoder{b: body}
	nsales := d.uvarint(uint64(len(st.sales)))
	for range nsales {
		id := d.str(IDLenMax)
		l, w := d.offersRule()
		if d.err != nil {
			break
		}
		sl, si := st.saleByID(id)
		if sl == nil || sl.offers != nil {
			return fmt.Errorf("%w: snapshot has books of a sale it does not hold, or twice", errCorrupt)
		}
		sl.cfg.Offers = newOffersConfig(l, w)
		st.saleOffers(sl, si)
		for _, bk := range [...]OfferBook{BookLottery, BookWaitlist} {
			if !d.bool() || d.err != nil {
				continue
			}
			b := st.offerBook(sl, si, bk)
			b.drawn = d.bool()
			copy(b.seed[:], d.raw(32))
			b.drawnAt = d.varint()
			n := d.uvarint(OfferBookMax)
			for range n {
				r := d.registration()
				r.at = d.varint()
				r.state = byte(d.uvarint(uint64(regLeft)))
				if r.state == regOffered {
					r.order = d.key()
				}
				if d.err != nil {
					break
				}
				if r.state == 0 || int(r.tier) >= len(sl.tiers) {
					d.fail("a registration out of range")
					break
				}
				b.regs = append(b.regs, r)
			}
			b.reindex()
			for int(b.head) < len(b.regs) && b.regs[b.head].state != regWaiting {
				b.head++
			}
		}
		if d.err != nil {
			break
		}
	}
	if err := d.check("offers section"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: offers section: %d bytes left over", errCorrupt, len(d.b))
	}
	return nil
}

func freezeQueueDocs(st *state) func([]byte) []byte {
	type doc struct {
		hash [32]byte
		join JoinID
	}
	type frozen struct {
		id   string
		docs []doc
	}
	var fs []frozen
	for _, si := range st.queued {
		sl := st.sales[si]
		if len(sl.queue.docs) == 0 {
			continue
		}
		f := frozen{id: sl.cfg.ID}
		for h, j := range sl.queue.docs {
			f.docs = append(f.docs, doc{h, j})
		}
		slices.SortFunc(f.docs, func(a, b doc) int { return bytes.Compare(a.hash[:], b.hash[:]) })
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(fs)))
		for _, f := range fs {
			b = appendString(b, f.id)
			b = binary.AppendUvarint(b, uint64(len(f.docs)))
			for _, x := range f.docs {
				b = append(b, x.hash[:]...)
				b = append(b, x.join[:]...)
			}
		}
		return b
	}
}

func restoreQueueDocs(st *state, body []byte) error {
	d := decoder{b: body}
	nsales := d.uvarint(uint64(len(st.sales)))
	for range nsales {
		id := d.str(IDLenMax)
		n := d.uvarint(QueueEntriesMax)
		if d.err != nil || n*48 > uint64(len(d.b)) {
			d.fail("queue documents past the end")
			break
		}
		sl, si := st.saleByID(id)
		if sl == nil {
			return fmt.Errorf("%w: snapshot has queue documents of a sale it does not hold", errCorrupt)
		}
		q := st.saleQueue(sl, si)
		q.docs = make(map[[32]byte]JoinID, n)
		for range n {
			var h [32]byte
			var j JoinID
			copy(h[:], d.raw(32))
			copy(j[:], d.raw(16))
			q.docs[h] = j
		}
	}
	if err := d.check("queue documents section"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: queue documents section: %d bytes left over", errCorrupt, len(d.b))
	}
	return nil
}
