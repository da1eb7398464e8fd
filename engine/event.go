package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// event is an outcome the state machine decided. The log stores events, so
// replay needs neither the clock nor the rules that produced them.
type event struct {
	kind        eventKind
	at          int64
	sale        *SaleConfig // evSalePut
	saleID      string      // evSalePut, evSaleClosed, evOrderPlaced
	closed      bool        // evSaleClosed
	order       orderKey    // every order event
	userID      string      // evOrderPlaced
	key         string      // evOrderPlaced: idempotency key
	tier        uint16      // evOrderPlaced
	qty         uint16      // evOrderPlaced
	amount      int64       // evOrderPlaced, evDuplicateCharge
	expiresAt   int64       // evOrderPlaced
	paymentID   string      // evOrderPaid, evOrderCancelled (payment.failed), evDuplicateCharge
	needsRefund bool        // evOrderPaid: paid, but no ticket could be given
	ticket      uint8       // evTicketCheckedIn, evTicketAdmitted
	kid         uint8       // evTicketKeyAdded, evTicketKeyRetired
	gate        string      // evTicketAdmitted
	scannedAt   int64       // evTicketAdmitted: when the gate scanned it
	cred        *Credential // evCredentialCreated, evCredentialRevoked (ID only)
	box         *BoxOffice  // evBoxOfficeSold, evCounterPaid
	audit       *AuditEntry // evAuditRecorded
	com         *commerce   // evTierRules, evCouponPut, evCouponApplied (pricing.go, coupons.go)

	realName  RealNameRule // evRealNameRule (realname.go)
	attendees []Attendee   // evAttendeesNamed
	hook      *Webhook     // evWebhookPut, evWebhookDeleted (ID only; webhooks.go)

	refund *refundEvent // refundrules.go
	gen    uint32       // evSaleArchived, evSaleUnarchived (archive.go)

	currency string        // evPaymentMismatch (payouts.go)
	payout   *payoutChange // evPayoutUpdated; ticket holds the payout's index
	q        *queueEvent   // the queue's events (queue.go)

	follow *Follow     // evFollowed, evUnfollowed (ID and user only; follows.go)
	offer  *offerEvent // the books' events and QueueDocument (offers.go)
	xs     *xsEvent    // xsession.go
}

type eventKind uint8

const (
	evSalePut eventKind = iota + 1
	evSaleClosed
	evOrderPlaced
	evOrderPaid
	evOrderCancelled
	evOrderExpired
	evOrderRefunded
	evTicketCheckedIn
	evDuplicateCharge
	evOrderRefundedAfterEntry
	evCredentialCreated // credentials.go
	evCredentialRevoked
	evBoxOfficeSold // boxoffice.go
	evCounterPaid
	evTicketKeyAdded // ticketkeys.go
	evTicketKeyRetired
	evTicketAdmitted // checkin.go
	evAuditRecorded  // audit.go
	evTierRules      // pricing.go
	evCouponPut      // coupons.go
	evCouponApplied
	evRealNameRule // realname.go
	evAttendeesNamed
	evWebhookPut // webhooks.go
	evWebhookDeleted
	evRefundRules // refundrules.go
	evRefundRequested
	evRefundRequestRejected
	evRefundSettled
	evOrderExchanged
	evChargeRefunded
	evSaleArchived // archive.go
	evSaleUnarchived
	evPaymentMismatch // payouts.go
	evPayoutUpdated
	evQueueRule // queue.go
	evQueueJoined
	evQueueDrawn
	evQueueAdmitted
	evAdmissionUsed
	evFollowed // follows.go
	evUnfollowed
	evExchangeOpened // exchanges.go
	evOffersRule     // offers.go
	evOfferRegistered
	evLotteryDrawn
	evOfferMade
	evOfferPassed
	evOfferLeft
	evQueueDocument
	evExchangeIn // xsession.go
	evExchangedOut
	evExchangeInSettled
	evExchangeInUndone
	evExchangeInPayments // xsession.go
	evKindEnd
)

// Record format. A log entry is a sequence of records:
//
//	record := uvarint(len(body)+2) | version (1 byte) | kind (1 byte) | body
//
// Bodies are fixed field sequences per kind, integers as (zig-zag) varints,
// strings as uvarint length + bytes, order keys as 16 raw bytes:
//
//	SalePut         id name currency opensAt closesAt holdMs perUserLimit
//	                ntiers {id name priceCents stock}
//	                [version 2 only: event venue city startsAt category
//	                imageURL description]
//	SaleClosed      at saleID closed(0|1)
//	OrderPlaced     at saleID key user idemKey tier qty amount expiresAt
//	OrderPaid       at key paymentID needsRefund(0|1)
//	OrderCancelled  at key paymentID
//	OrderExpired    at key
//	OrderRefunded   at key
//	TicketCheckedIn at key ticket
//	DuplicateCharge at key paymentID amount
//	OrderRefundedAfterEntry at key
//	CredentialCreated, CredentialRevoked: credentials.go
//	BoxOfficeSold, CounterPaid: boxoffice.go
//	TicketKeyAdded      at saleID kid      (kid 1 with the sale's creation; ticketkeys.go)
//	TicketKeyRetired    at saleID kid
//	TicketAdmitted      at key ticket gate scannedAt   (checkin.go)
//	AuditRecorded: audit.go
//	TierRules       saleID ntiers {nphases {untilMs first priceCents}
//	                ncomponents {tierID qty}}   (after its SalePut; pricing.go)
//	CouponPut       at saleID coupon            (coupons.go)
//	CouponApplied   at key code discount        (after its OrderPlaced)
//	RealNameRule, AttendeesNamed: realname.go (AttendeesNamed precedes the
//	                OrderPlaced of its order, in the same entry)
//	WebhookPut, WebhookDeleted: webhooks.go
//	RefundRules, RefundRequested, RefundRequestRejected, RefundSettled,
//	OrderExchanged, ChargeRefunded: refundrules.go
//	SaleArchived    at saleID gen           (archive.go)
//	SaleUnarchived  at saleID gen
//	PaymentMismatch, PayoutUpdated: payouts.go
//	QueueRule, QueueJoined, QueueDrawn, QueueAdmitted, AdmissionUsed:
//	                queue.go (AdmissionUsed precedes the OrderPlaced of its
//	                purchase, in the same entry)
//	Followed, Unfollowed: follows.go
//	ExchangeOpened: exchanges.go (after the OrderPlaced of its new order)
//	OffersRule, OfferRegistered, LotteryDrawn, OfferMade, OfferPassed,
//	OfferLeft, QueueDocument: offers.go (OfferMade follows the OrderPlaced
//	of its order, QueueDocument precedes its QueueJoined)
//
// Every record is version 1 except a SalePut whose sale has a catalogue
// (types.go: Catalogue), which is version 2: its body is version 1's with
// the catalogue appended. A sale without one is still written as version 1,
// so a log without catalogues stays readable by an onsale that predates
// them.
//
// A decoder rejects an unknown version or kind, a version 2 record of any
// other kind, a truncated or over-long body, and values outside the limits
// in types.go, with an error.
const (
	recordVersion          = 1
	recordVersionCatalogue = 2 // SalePut with a Catalogue
)

var errCorrupt = errors.New("engine: corrupt log record")

func appendEvent(b []byte, ev *event) []byte {
	start := len(b)
	b = append(b, 0, 0, 0) // room for the length; fixed up below
	body := len(b)
	version := byte(recordVersion)
	if ev.kind == evSalePut && ev.sale.Catalogue != (Catalogue{}) {
		version = recordVersionCatalogue
	}
	b = append(b, version, byte(ev.kind))
	switch ev.kind {
	case evSalePut:
		b = appendSaleConfig(b, ev.sale)
		if version == recordVersionCatalogue {
			b = appendCatalogue(b, &ev.sale.Catalogue)
		}
	case evSaleClosed:
		b = binary.AppendVarint(b, ev.at)
		b = appendString(b, ev.saleID)
		b = appendBool(b, ev.closed)
	case evOrderPlaced:
		b = binary.AppendVarint(b, ev.at)
		b = appendString(b, ev.saleID)
		b = append(b, ev.order[:]...)
		b = appendString(b, ev.userID)
		b = appendString(b, ev.key)
		b = binary.AppendUvarint(b, uint64(ev.tier))
		b = binary.AppendUvarint(b, uint64(ev.qty))
		b = binary.AppendVarint(b, ev.amount)
		b = binary.AppendVarint(b, ev.expiresAt)
	case evOrderPaid:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
		b = appendString(b, ev.paymentID)
		b = appendBool(b, ev.needsRefund)
	case evOrderCancelled:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
		b = appendString(b, ev.paymentID)
	case evOrderExpired, evOrderRefunded, evOrderRefundedAfterEntry:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
	case evDuplicateCharge:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
		b = appendString(b, ev.paymentID)
		b = binary.AppendVarint(b, ev.amount)
	case evTicketCheckedIn:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
		b = append(b, ev.ticket)
	case evCredentialCreated, evCredentialRevoked:
		b = appendCredentialEvent(b, ev)
	case evBoxOfficeSold, evCounterPaid:
		b = appendBoxOfficeEvent(b, ev)
	case evRealNameRule, evAttendeesNamed:
		b = appendRealNameEvent(b, ev)
	case evQueueRule, evQueueJoined, evQueueDrawn, evQueueAdmitted, evAdmissionUsed:
		b = appendQueueEvent(b, ev)
	case evTicketKeyAdded, evTicketKeyRetired:
		b = binary.AppendVarint(b, ev.at)
		b = appendString(b, ev.saleID)
		b = binary.AppendUvarint(b, uint64(ev.kid))
	case evTicketAdmitted:
		b = binary.AppendVarint(b, ev.at)
		b = append(b, ev.order[:]...)
		b = binary.AppendUvarint(b, uint64(ev.ticket))
		b = appendString(b, ev.gate)
		b = binary.AppendVarint(b, ev.scannedAt)
	case evAuditRecorded:
		b = appendAuditEvent(b, ev)
	case evTierRules, evCouponPut, evCouponApplied:
		b = appendCommerceEvent(b, ev)
	case evWebhookPut, evWebhookDeleted:
		b = appendWebhookEvent(b, ev)
	case evRefundRules, evRefundRequested, evRefundRequestRejected, evRefundSettled, evOrderExchanged, evChargeRefunded, evExchangeOpened:
		b = appendRefundEvent(b, ev)
	case evSaleArchived, evSaleUnarchived:
		b = appendArchiveEvent(b, ev) // archive.go
	case evExchangeIn, evExchangedOut, evExchangeInSettled, evExchangeInUndone, evExchangeInPayments:
		b = appendXSessionEvent(b, ev) // xsession.go
	case evPaymentMismatch, evPayoutUpdated:
		b = appendPayoutEvent(b, ev)
	case evFollowed, evUnfollowed:
		b = appendFollowEvent(b, ev)
	case evOffersRule, evOfferRegistered, evLotteryDrawn, evOfferMade, evOfferPassed, evOfferLeft, evQueueDocument:
		b = appendOfferEvent(b, ev) // offers.go
	default:
		panic(fmt.Sprintf("engine: appendEvent: unknown kind %d", ev.kind))
	}
	// The length prefix is written as a 3-byte uvarint (padded with
	// continuation bits), which bounds a record to 2 MiB; a SalePut is the
	// largest record and stays far below that.
	n := len(b) - body
	if n >= 1<<21 {
		panic("engine: record over 2 MiB")
	}
	b[start] = byte(n) | 0x80
	b[start+1] = byte(n>>7) | 0x80
	b[start+2] = byte(n >> 14)
	return b
}

func appendSaleConfig(b []byte, c *SaleConfig) []byte {
	b = appendString(b, c.ID)
	b = appendString(b, c.Name)
	b = appendString(b, c.Currency)
	b = binary.AppendVarint(b, c.OpensAtMs)
	b = binary.AppendVarint(b, c.ClosesAtMs)
	b = binary.AppendVarint(b, c.HoldMs)
	b = binary.AppendUvarint(b, uint64(c.PerUserLimit))
	b = binary.AppendUvarint(b, uint64(len(c.Tiers)))
	for _, t := range c.Tiers {
		b = appendString(b, t.ID)
		b = appendString(b, t.Name)
		b = binary.AppendVarint(b, t.PriceCents)
		b = binary.AppendUvarint(b, uint64(t.Stock))
	}
	return b
}

// appendCatalogue writes a catalogue after its sale's config: in a
// version 2 SalePut, and in the catalogue's snapshot section.
func appendCatalogue(b []byte, c *Catalogue) []byte {
	b = appendString(b, c.Event)
	b = appendString(b, c.Venue)
	b = appendString(b, c.City)
	b = binary.AppendVarint(b, c.StartsAtMs)
	b = appendString(b, c.Category)
	b = appendString(b, c.ImageURL)
	return appendString(b, c.Description)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// decodeEntry calls fn for each event of a log entry. The event is valid only
// during the call (it is reused), but its strings are fresh copies.
func decodeEntry(entry []byte, fn func(*event) error) error {
	return decodeEntryInterned(entry, nil, fn)
}

// decodeEntryInterned is decodeEntry sharing one copy of each user id
// through users (nil: no sharing); replay of a million orders by a hundred
// thousand users allocates a hundred thousand strings, not a million.
func decodeEntryInterned(entry []byte, users map[string]string, fn func(*event) error) error {
	d := entryDecoder{users: users}
	return d.decode(entry, fn)
}

// entryDecoder decodes entry after entry into one event and one sale
// config, which decodeEntry allocates per entry: a replay (decodeLog)
// keeps one for the whole log. users interns user and sale ids (nil: no
// sharing).
type entryDecoder struct {
	ev    event
	cfg   SaleConfig
	users map[string]string
}

// decode is decodeEntryInterned; the event passed to fn is reused by the
// next call too.
func (d *entryDecoder) decode(entry []byte, fn func(*event) error) error {
	for len(entry) > 0 {
		n, w := binary.Uvarint(entry)
		if w <= 0 || n < 2 || n > uint64(len(entry)-w) {
			return fmt.Errorf("%w: bad record length", errCorrupt)
		}
		if err := decodeRecord(entry[w:w+int(n)], &d.ev, &d.cfg, d.users); err != nil {
			return err
		}
		if err := fn(&d.ev); err != nil {
			return err
		}
		entry = entry[w+int(n):]
	}
	return nil
}

func decodeRecord(rec []byte, ev *event, cfg *SaleConfig, users map[string]string) error {
	switch {
	case rec[0] == recordVersion:
	case rec[0] == recordVersionCatalogue && eventKind(rec[1]) == evSalePut:
	default:
		return fmt.Errorf("%w: version %d not understood", errCorrupt, rec[0])
	}
	*ev = event{kind: eventKind(rec[1])}
	d := decoder{b: rec[2:], users: users}
	switch ev.kind {
	case evSalePut:
		d.saleConfig(cfg)
		if rec[0] == recordVersionCatalogue {
			d.catalogue(&cfg.Catalogue)
		}
		ev.sale = cfg
		ev.saleID = cfg.ID
	case evSaleClosed:
		ev.at = d.varint()
		ev.saleID = d.str(IDLenMax)
		ev.closed = d.bool()
	case evOrderPlaced:
		ev.at = d.varint()
		ev.saleID = d.interned(IDLenMax) // the same few sales: no copy per order in replay
		ev.order = d.key()
		ev.userID = d.user()
		ev.key = d.str(IdempotencyKeyLenMax)
		ev.tier = uint16(d.uvarint(TiersPerSaleMax - 1))
		ev.qty = uint16(d.uvarint(QuantityPerOrderMax))
		ev.amount = d.varint()
		ev.expiresAt = d.varint()
	case evOrderPaid:
		ev.at = d.varint()
		ev.order = d.key()
		ev.paymentID = d.str(PaymentIDLenMax)
		ev.needsRefund = d.bool()
	case evOrderCancelled:
		ev.at = d.varint()
		ev.order = d.key()
		ev.paymentID = d.str(PaymentIDLenMax)
	case evOrderExpired, evOrderRefunded, evOrderRefundedAfterEntry:
		ev.at = d.varint()
		ev.order = d.key()
	case evDuplicateCharge:
		ev.at = d.varint()
		ev.order = d.key()
		ev.paymentID = d.str(PaymentIDLenMax)
		ev.amount = d.varint()
	case evTicketCheckedIn:
		ev.at = d.varint()
		ev.order = d.key()
		ev.ticket = uint8(d.uvarint(QuantityPerOrderMax - 1))
	case evCredentialCreated, evCredentialRevoked:
		decodeCredentialEvent(&d, ev)
	case evBoxOfficeSold, evCounterPaid:
		decodeBoxOfficeEvent(&d, ev)
	case evRealNameRule, evAttendeesNamed:
		decodeRealNameEvent(&d, ev)
	case evQueueRule, evQueueJoined, evQueueDrawn, evQueueAdmitted, evAdmissionUsed:
		decodeQueueEvent(&d, ev)
	case evTicketKeyAdded, evTicketKeyRetired:
		ev.at = d.varint()
		ev.saleID = d.str(IDLenMax)
		ev.kid = uint8(d.uvarint(TicketKeysPerSaleMax))
		if ev.kid == 0 {
			d.fail("key id 0")
		}
	case evTicketAdmitted:
		ev.at = d.varint()
		ev.order = d.key()
		ev.ticket = uint8(d.uvarint(QuantityPerOrderMax - 1))
		ev.gate = d.str(GateLenMax)
		ev.scannedAt = d.varint()
	case evAuditRecorded:
		decodeAuditEvent(&d, ev)
	case evTierRules, evCouponPut, evCouponApplied:
		decodeCommerceEvent(&d, ev)
	case evWebhookPut, evWebhookDeleted:
		decodeWebhookEvent(&d, ev)
	case evRefundRules, evRefundRequested, evRefundRequestRejected, evRefundSettled, evOrderExchanged, evChargeRefunded, evExchangeOpened:
		decodeRefundEvent(&d, ev)
	case evSaleArchived, evSaleUnarchived:
		decodeArchiveEvent(&d, ev) // archive.go
	case evExchangeIn, evExchangedOut, evExchangeInSettled, evExchangeInUndone, evExchangeInPayments:
		decodeXSessionEvent(&d, ev) // xsession.go
	case evPaymentMismatch, evPayoutUpdated:
		decodePayoutEvent(&d, ev)
	case evFollowed, evUnfollowed:
		decodeFollowEvent(&d, ev)
	case evOffersRule, evOfferRegistered, evLotteryDrawn, evOfferMade, evOfferPassed, evOfferLeft, evQueueDocument:
		decodeOfferEvent(&d, ev) // offers.go
	default:
		return fmt.Errorf("%w: kind %d not understood", errCorrupt, rec[1])
	}
	if d.err != nil {
		return fmt.Errorf("%w: %s record: %v", errCorrupt, ev.kind, d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %s record: %d bytes left over", errCorrupt, ev.kind, len(d.b))
	}
	return nil
}

var kindNames = [...]string{
	evSalePut: "SalePut", evSaleClosed: "SaleClosed", evOrderPlaced: "OrderPlaced",
	evOrderPaid: "OrderPaid", evOrderCancelled: "OrderCancelled", evOrderExpired: "OrderExpired",
	evOrderRefunded: "OrderRefunded", evTicketCheckedIn: "TicketCheckedIn",
	evDuplicateCharge: "DuplicateCharge", evOrderRefundedAfterEntry: "OrderRefundedAfterEntry",
	evCredentialCreated: "CredentialCreated", evCredentialRevoked: "CredentialRevoked",
	evBoxOfficeSold: "BoxOfficeSold", evCounterPaid: "CounterPaid",
	evTicketKeyAdded: "TicketKeyAdded", evTicketKeyRetired: "TicketKeyRetired", evTicketAdmitted: "TicketAdmitted",
	evAuditRecorded: "AuditRecorded",
	evTierRules:     "TierRules", evCouponPut: "CouponPut", evCouponApplied: "CouponApplied",
	evRealNameRule: "RealNameRule", evAttendeesNamed: "AttendeesNamed",
	evWebhookPut: "WebhookPut", evWebhookDeleted: "WebhookDeleted",
	evRefundRules: "RefundRules", evRefundRequested: "RefundRequested", evRefundRequestRejected: "RefundRequestRejected",
	evRefundSettled: "RefundSettled", evOrderExchanged: "OrderExchanged", evChargeRefunded: "ChargeRefunded",
	evSaleArchived: "SaleArchived", evSaleUnarchived: "SaleUnarchived",
	evPaymentMismatch: "PaymentMismatch", evPayoutUpdated: "PayoutUpdated",
	evQueueRule: "QueueRule", evQueueJoined: "QueueJoined", evQueueDrawn: "QueueDrawn",
	evQueueAdmitted: "QueueAdmitted", evAdmissionUsed: "AdmissionUsed",
	evFollowed: "Followed", evUnfollowed: "Unfollowed",
	evExchangeOpened: "ExchangeOpened",
	evOffersRule:     "OffersRule", evOfferRegistered: "OfferRegistered", evLotteryDrawn: "LotteryDrawn",
	evOfferMade: "OfferMade", evOfferPassed: "OfferPassed", evOfferLeft: "OfferLeft", evQueueDocument: "QueueDocument",
	evExchangeIn: "ExchangeIn", evExchangedOut: "ExchangedOut", evExchangeInSettled: "ExchangeInSettled", evExchangeInUndone: "ExchangeInUndone",
	evExchangeInPayments: "ExchangeInPayments",
}

func (k eventKind) String() string {
	if k > 0 && k < evKindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// decoder reads fields and remembers the first error, so a record decodes as
// a straight sequence of calls.
type decoder struct {
	b     []byte
	err   error
	users map[string]string // interned user and sale ids; nil: none
}

func (d *decoder) user() string {
	return d.interned(UserLenMax)
}

// interned reads a string of at most maxLen bytes, shared through d.users
// with every equal one read before.
func (d *decoder) interned(maxLen int) string {
	n := d.uvarint(uint64(maxLen))
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string past the end")
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	if d.users == nil {
		return string(b)
	}
	if s, ok := d.users[string(b)]; ok {
		return s
	}
	s := string(b)
	d.users[s] = s
	return s
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.b = nil
}

func (d *decoder) uvarint(maxValue uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	if v > maxValue {
		d.fail(fmt.Sprintf("value %d over %d", v, maxValue))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(maxLen int) string {
	n := d.uvarint(uint64(maxLen))
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string past the end")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// raw returns the next n bytes, shared with the input.
func (d *decoder) raw(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("bytes past the end")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) saleConfig(cfg *SaleConfig) {
	*cfg = SaleConfig{
		ID: d.str(IDLenMax), Name: d.str(NameLenMax), Currency: d.str(3),
		OpensAtMs: d.varint(), ClosesAtMs: d.varint(), HoldMs: d.varint(),
		PerUserLimit: int(d.uvarint(math.MaxInt32)),
	}
	nt := d.uvarint(TiersPerSaleMax)
	cfg.Tiers = make([]TierConfig, 0, nt)
	for range nt {
		cfg.Tiers = append(cfg.Tiers, TierConfig{
			ID: d.str(IDLenMax), Name: d.str(NameLenMax), PriceCents: d.varint(),
			Stock: int(d.uvarint(StockPerTierMax)),
		})
	}
}

// catalogue reads what appendCatalogue wrote. An empty catalogue is
// refused: the encoder writes none, so an empty one is not a record onsale
// made (and a re-encoding would differ).
func (d *decoder) catalogue(c *Catalogue) {
	*c = Catalogue{
		Event: d.str(IDLenMax), Venue: d.str(VenueLenMax), City: d.str(CityLenMax),
		StartsAtMs: d.varint(), Category: d.str(16), ImageURL: d.str(ImageURLLenMax),
		Description: d.str(DescriptionLenMax),
	}
	if d.err == nil && *c == (Catalogue{}) {
		d.fail("empty catalogue")
	}
}

func (d *decoder) bool() bool {
	if len(d.b) < 1 || d.b[0] > 1 {
		d.fail("bad bool")
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *decoder) key() orderKey {
	var k orderKey
	if len(d.b) < len(k) {
		d.fail("order key past the end")
		return k
	}
	copy(k[:], d.b)
	d.b = d.b[len(k):]
	return k
}
