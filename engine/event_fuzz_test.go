package engine

import (
	"reflect"
	"testing"
)

// seedEvents are one event of every kind, for the fuzz corpora.
func seedEvents() []event {
	cfg := &SaleConfig{ID: "s1", Name: "Sale", Currency: "EUR", OpensAtMs: 1, ClosesAtMs: 2, HoldMs: 1000, PerUserLimit: 4,
		Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 10}}}
	described := *cfg
	described.ID = "s2"
	described.Catalogue = Catalogue{Event: "tour-2027", Venue: "Olympia", City: "Paris", StartsAtMs: 3,
		Category: "concert", ImageURL: "https://img.example/s2.jpg", Description: "Two hours.\nNo support act."}
	k := orderKey{1, 2, 3}
	return []event{
		{kind: evSalePut, sale: cfg, saleID: "s1"},
		{kind: evSalePut, sale: &described, saleID: "s2"},
		{kind: evSaleClosed, at: 5, saleID: "s1", closed: true},
		{kind: evOrderPlaced, at: 6, saleID: "s1", order: k, userID: "u1", key: "k1", tier: 0, qty: 2, amount: 10000, expiresAt: 1006},
		{kind: evOrderPaid, at: 7, order: k, paymentID: "evt_1", needsRefund: true},
		{kind: evOrderCancelled, at: 8, order: k, paymentID: "evt_2"},
		{kind: evOrderExpired, at: 9, order: k},
		{kind: evOrderRefunded, at: 10, order: k},
		{kind: evTicketCheckedIn, at: 11, order: k, ticket: 1},
		{kind: evDuplicateCharge, at: 12, order: k, paymentID: "evt_3", amount: 10000},
		{kind: evOrderRefundedAfterEntry, at: 13, order: k},
		{kind: evCredentialCreated, at: 14, cred: &Credential{ID: "cred1", Name: "Door A", Role: RoleStaff,
			Sales: []string{"s1", "s2"}, TokenHash: [32]byte{9}, CreatedAtMs: 14, ExpiresAtMs: 99}},
		{kind: evCredentialRevoked, at: 15, cred: &Credential{ID: "cred1"}},
		{kind: evBoxOfficeSold, at: 16, order: k, box: &BoxOffice{SellerID: "sel1", Contact: []byte("sealed")}},
		{kind: evCounterPaid, at: 17, order: k, paymentID: "counter:sel1:cash:k", needsRefund: true,
			box: &BoxOffice{Counter: &CounterPayment{SellerID: "sel1", Method: "cash", Reference: "r1"}}},
		{kind: evTicketKeyAdded, at: 14, saleID: "s1", kid: 2},
		{kind: evTicketKeyRetired, at: 15, saleID: "s1", kid: 1},
		{kind: evTicketAdmitted, at: 16, order: k, ticket: 1, gate: "north-3", scannedAt: 12},
		{kind: evTierRules, saleID: "s1", com: &commerce{
			phases:     [][]PricePhase{{{UntilMs: 1_800_000_000_000, PriceCents: 3000}, {First: 100, PriceCents: 4000}}, nil},
			components: [][]PackageComponent{nil, {{TierID: "floor", Quantity: 2}}}}},
		{kind: evCouponPut, at: 17, saleID: "s1", com: &commerce{coupon: &CouponConfig{Code: "EARLY-10", PercentOff: 10,
			Tiers: []string{"floor"}, UsesMax: 10, UsesPerBuyerMax: 1, ValidFromMs: 1, ValidUntilMs: 99, MinQuantity: 2, Disabled: true}}},
		{kind: evCouponApplied, at: 18, order: k, com: &commerce{code: "EARLY-10", discount: 1000}},
		{kind: evRealNameRule, saleID: "s1", realName: RealNameRule{Required: true, PerDocumentLimit: 2}},
		{kind: evAttendeesNamed, at: 17, saleID: "s1", order: orderKey{4}, attendees: []Attendee{
			{DocumentHash: [32]byte{1, 2}, DocumentLast4: "123X", SealedName: []byte("sealed name")},
			{DocumentHash: [32]byte{3}, DocumentLast4: "9", SealedName: []byte{0}}}},
		{kind: evWebhookPut, at: 19, hook: &Webhook{ID: "wh_1", URL: "https://hooks.example/onsale",
			Events: []string{"order.paid", "order.created"}, SecretSealed: []byte("sealed"), CreatedAtMs: 19}},
		{kind: evWebhookDeleted, at: 20, hook: &Webhook{ID: "wh_1", CreatedAtMs: 20}},
		{kind: evRefundRules, saleID: "s1", refund: &refundEvent{ // refundrules.go
			refund:   RefundRule{SelfService: true, UntilBeforeStartMs: 3_600_000, FeePercent: 10, FeeCents: 200, Approval: RefundApprovalAdmin},
			exchange: ExchangeRule{Allowed: true, UntilBeforeStartMs: 60_000, FeeCents: 300}}},
		{kind: evRefundRequested, at: 19, order: k, refund: &refundEvent{amount: 5000, fee: 700, text: "ill"}},
		{kind: evRefundSettled, at: 20, order: k, refund: &refundEvent{source: RefundApproved, amount: 5000, fee: 700, text: "ok"}},
		{kind: evRefundRequestRejected, at: 21, order: k, refund: &refundEvent{text: "no"}},
		{kind: evOrderExchanged, at: 22, order: k, refund: &refundEvent{to: orderKey{5}, amount: -700, fee: 300}},
		{kind: evChargeRefunded, at: 23, order: k, refund: &refundEvent{charge: 0, text: "cash"}},
		{kind: evFollowed, at: 24, follow: &Follow{ID: "fol_1", UserID: "u1", Kind: "venue", Value: "arena", CreatedAtMs: 24}}, // follows.go
		{kind: evUnfollowed, at: 25, follow: &Follow{ID: "fol_1", UserID: "u1", CreatedAtMs: 25}},
	}
}

func TestEventRoundTrip(t *testing.T) {
	var entry []byte
	evs := seedEvents()
	boundary := map[int]bool{}
	for i := range evs {
		entry = appendEvent(entry, &evs[i])
		boundary[len(entry)] = true
	}
	var got []event
	if err := decodeEntry(entry, func(ev *event) error {
		c := *ev
		if c.sale != nil {
			s := *c.sale
			c.sale = &s
		}
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, evs)
	}
	// A cut entry decodes only if the cut falls between records.
	for cut := 1; cut < len(entry); cut++ {
		err := decodeEntry(entry[:cut], func(*event) error { return nil })
		if (err == nil) != boundary[cut] {
			t.Fatalf("entry cut at %d of %d: err %v, on a record boundary: %v", cut, len(entry), err, boundary[cut])
		}
	}
}

// FuzzDecodeEntry: the decoder never panics, and what it accepts encodes
// back to an entry that decodes to the same events.
func FuzzDecodeEntry(f *testing.F) {
	evs := seedEvents()
	for i := range evs {
		f.Add(appendEvent(nil, &evs[i]))
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		var first []event
		var again []byte
		err := decodeEntry(entry, func(ev *event) error {
			again = appendEvent(again, ev)
			c := *ev
			if c.sale != nil {
				s := *c.sale
				c.sale = &s
			}
			first = append(first, c)
			return nil
		})
		if err != nil {
			return
		}
		var kinds []eventKind
		eachEventKind(entry, func(k eventKind) bool { kinds = append(kinds, k); return true })
		if len(kinds) != len(first) {
			t.Fatalf("eachEventKind read %d records, the decoder %d", len(kinds), len(first))
		}
		hooks := false
		for i, ev := range first {
			if kinds[i] != ev.kind {
				t.Fatalf("record %d: eachEventKind read %d, the decoder %d", i, kinds[i], ev.kind)
			}
			hooks = hooks || ev.kind == evWebhookPut || ev.kind == evWebhookDeleted
		}
		if got := ChangesWebhooks(entry); got != hooks {
			t.Fatalf("ChangesWebhooks %v, want %v", got, hooks)
		}
		var second []event
		if err := decodeEntry(again, func(ev *event) error {
			c := *ev
			if c.sale != nil {
				s := *c.sale
				c.sale = &s
			}
			second = append(second, c)
			return nil
		}); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("re-encoded entry decodes differently:\n%+v\n%+v", first, second)
		}
	})
}

// FuzzRecover: whatever a log entry holds, recovery returns an error or a
// consistent state; it never panics.
func FuzzRecover(f *testing.F) {
	evs := seedEvents()
	var valid []byte
	for i := range evs[:3] {
		valid = appendEvent(valid, &evs[i])
	}
	f.Add(valid)
	for i := range evs {
		f.Add(appendEvent(nil, &evs[i]))
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		j := newMemJournal()
		j.layout = 1
		j.entries[0] = []memEntry{{1, entry}}
		states, _, err := recoverStates(j, 1, quietLogger)
		if err == nil {
			states[0].checkState()
		}
	})
}
