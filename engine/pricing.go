package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Price phases (阶梯价): a tier may sell at other prices before its own.
// Phases are tried in order; the first one in force prices the order:
//
//   - UntilMs (if set): the phase ends at that instant, exclusive. An order
//     decided at UntilMs - 1 is in the phase, one decided at UntilMs is not.
//   - First (if set): the phase covers the tier's first First tickets,
//     counted as sold + held when the order is decided (a hold that expires
//     gives its place back to the phase).
//
// After every phase, the tier's PriceCents. An order is priced as one
// decision: all its tickets at the price in force for its first ticket,
// even if it runs past a phase's First (the 99th ticket's buyer taking 4
// gets 4 at that price). So an order has one unit price, recorded on it as
// (AmountCents + DiscountCents) / Quantity, and a buyer never sees a
// mixed-price order.
//
// Phases and package components (packages.go) are the tier rules: a
// SalePut record keeps its version 1 layout, and a TierRules record right
// after it in the same entry carries the rules of every tier of the sale, so
// a log or snapshot without rules reads as before.

// Limits of tier rules.
const (
	PhasesPerTierMax    = 8
	tierRulesSectionTag = 40
)

// PricePhase is one step of a tier's price ladder. At least one of UntilMs
// and First is set.
type PricePhase struct {
	UntilMs    int64 // unix ms; 0: no end in time
	First      int   // tickets of the tier (sold + held); 0: no bound in tickets
	PriceCents int64
}

// commerce is the payload of the events of pricing, packages and coupons,
// behind one pointer so that other events pay 8 bytes for it.
type commerce struct {
	phases     [][]PricePhase       // evTierRules: per tier of the sale
	components [][]PackageComponent // evTierRules: per tier of the sale
	coupon     *CouponConfig        // evCouponPut
	code       string               // evCouponApplied
	discount   int64                // evCouponApplied
}

// unitPrice is the price of one ticket of tier t in an order decided at now.
func (sl *sale) unitPrice(t int, now int64) int64 {
	tc := &sl.cfg.Tiers[t]
	if len(tc.Phases) == 0 {
		return tc.PriceCents
	}
	taken := sl.committed(t)
	for _, p := range tc.Phases {
		if (p.UntilMs == 0 || now < p.UntilMs) && (p.First == 0 || taken < p.First) {
			return p.PriceCents
		}
	}
	return tc.PriceCents
}

// placeOrder is decidePurchase's last step, once the sale, the tier, the
// limits and the stock said yes: the price in force, the coupon if any
// (coupons.go), and the events that place the order.
func (st *state) placeOrder(sl *sale, t int, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	amount := sl.unitPrice(t, now) * int64(cmd.qty)
	var discount int64
	var code string
	if cmd.coupon != "" {
		var rej *Rejection
		if code, discount, rej = st.decideCoupon(sl, t, cmd, now, amount); rej != nil {
			return evs, rej
		}
	}
	evs = append(evs, event{
		kind: evOrderPlaced, at: now, saleID: cmd.saleID, order: cmd.newOrder,
		userID: cmd.userID, key: cmd.key, tier: uint16(t), qty: uint16(cmd.qty),
		amount: amount - discount, expiresAt: now + sl.cfg.HoldMs,
	})
	if code != "" {
		evs = append(evs, event{kind: evCouponApplied, at: now, order: cmd.newOrder,
			com: &commerce{code: code, discount: discount}})
	}
	return evs, nil
}

// fillPrice completes an order's view with its unit price and coupon.
func (st *state) fillPrice(o *order, v *Order) {
	if sl := st.sales[o.sale]; sl.coupons != nil {
		if u, ok := sl.coupons.orders[o.key]; ok {
			v.Coupon, v.DiscountCents = sl.coupons.list[u.coupon].cfg.Code, u.discount
		}
	}
	v.UnitPriceCents = (v.AmountCents + v.DiscountCents) / int64(max(v.Quantity, 1))
}

// validateTierRules checks the phases and components of a sale's tiers.
func validateTierRules(c *SaleConfig) *Rejection {
	for i, t := range c.Tiers {
		if len(t.Phases) > PhasesPerTierMax {
			return reject(CodeInvalidRequest, "tiers[%d]: at most %d phases", i, PhasesPerTierMax)
		}
		var until int64
		first := 0
		for j, p := range t.Phases {
			switch {
			case p.UntilMs == 0 && p.First == 0:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: set until, first or both", i, j)
			case p.UntilMs < 0 || p.UntilMs > StartsAtMsMax:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: until must be between 1970 and 9999", i, j)
			case p.First < 0 || p.First > StockPerTierMax:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: first must be 1 to %d", i, j, StockPerTierMax)
			case p.PriceCents < 0 || p.PriceCents > PriceCentsMax:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: price_cents must be 0 to %d", i, j, int64(PriceCentsMax))
			case p.UntilMs != 0 && p.UntilMs <= until:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: until must be after the previous phase's", i, j)
			case p.First != 0 && p.First <= first:
				return reject(CodeInvalidRequest, "tiers[%d].phases[%d]: first must be more than the previous phase's", i, j)
			}
			until, first = max(until, p.UntilMs), max(first, p.First)
		}
	}
	return validatePackages(c) // packages.go
}

func hasTierRules(c *SaleConfig) bool {
	for i := range c.Tiers {
		if len(c.Tiers[i].Phases) > 0 || len(c.Tiers[i].Components) > 0 {
			return true
		}
	}
	return false
}

// decideTierRules follows a decided SalePut (the last event of evs) with
// the TierRules record of its tiers, if any has rules, after checking the
// rules against the sale's orders (packages.go).
func (st *state) decideTierRules(evs []event) ([]event, *Rejection) {
	cfg := evs[len(evs)-1].sale
	if rej := st.decidePackageChange(cfg); rej != nil {
		return evs, rej
	}
	if !hasTierRules(cfg) {
		return evs, nil
	}
	com := &commerce{phases: make([][]PricePhase, len(cfg.Tiers)), components: make([][]PackageComponent, len(cfg.Tiers))}
	for t := range cfg.Tiers {
		com.phases[t], com.components[t] = cfg.Tiers[t].Phases, cfg.Tiers[t].Components
	}
	return append(evs, event{kind: evTierRules, saleID: cfg.ID, com: com}), nil
}

// applyTierRules gives a sale's tiers their rules. The tier slice is
// replaced, never modified: published views share it.
func (st *state) applyTierRules(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil || len(ev.com.phases) != len(sl.cfg.Tiers) {
		return fmt.Errorf("%w: TierRules of unknown sale %q or for another tier count", errCorrupt, ev.saleID)
	}
	st.touch(si)
	return st.setTierRules(sl, ev.com.phases, ev.com.components)
}

func (st *state) setTierRules(sl *sale, phases [][]PricePhase, components [][]PackageComponent) error {
	tiers := slices.Clone(sl.cfg.Tiers)
	for t := range tiers {
		tiers[t].Phases = slices.Clone(phases[t])
		tiers[t].Components = slices.Clone(components[t])
	}
	sl.cfg.Tiers = tiers
	return st.indexPackages(sl) // packages.go
}

// appendCommerceEvent and decodeCommerceEvent write the records of
// pricing, packages and coupons (formats in event.go).
func appendCommerceEvent(b []byte, ev *event) []byte {
	switch ev.kind {
	case evTierRules:
		b = appendString(b, ev.saleID)
		return appendTierRules(b, ev.com.phases, ev.com.components)
	case evCouponPut:
		b = binary.AppendVarint(b, ev.at)
		b = appendString(b, ev.saleID)
		return appendCouponConfig(b, ev.com.coupon)
	}
	b = binary.AppendVarint(b, ev.at)
	b = append(b, ev.order[:]...)
	b = appendString(b, ev.com.code)
	return binary.AppendVarint(b, ev.com.discount)
}

func decodeCommerceEvent(d *decoder, ev *event) {
	ev.com = &commerce{}
	switch ev.kind {
	case evTierRules:
		ev.saleID = d.str(IDLenMax)
		ev.com.phases, ev.com.components = d.tierRules()
		return
	case evCouponPut:
		ev.at = d.varint()
		ev.saleID = d.str(IDLenMax)
		ev.com.coupon = d.couponConfig()
		return
	}
	ev.at = d.varint()
	ev.order = d.key()
	ev.com.code = d.str(CouponCodeLenMax)
	ev.com.discount = d.varint()
	if d.err == nil && (ev.com.discount < 0 || !validCouponCode(ev.com.code)) {
		d.fail("bad coupon use")
	}
}

func appendTierRules(b []byte, phases [][]PricePhase, components [][]PackageComponent) []byte {
	b = binary.AppendUvarint(b, uint64(len(phases)))
	for t := range phases {
		b = binary.AppendUvarint(b, uint64(len(phases[t])))
		for _, p := range phases[t] {
			b = binary.AppendVarint(b, p.UntilMs)
			b = binary.AppendUvarint(b, uint64(p.First))
			b = binary.AppendVarint(b, p.PriceCents)
		}
		b = binary.AppendUvarint(b, uint64(len(components[t])))
		for _, c := range components[t] {
			b = appendString(b, c.TierID)
			b = binary.AppendUvarint(b, uint64(c.Quantity))
		}
	}
	return b
}

// tierRules reads what appendTierRules wrote; empty lists read as nil, as
// a config without rules holds them.
func (d *decoder) tierRules() ([][]PricePhase, [][]PackageComponent) {
	n := d.uvarint(TiersPerSaleMax)
	phases, components := make([][]PricePhase, n), make([][]PackageComponent, n)
	for t := uint64(0); t < n && d.err == nil; t++ {
		for range d.uvarint(PhasesPerTierMax) {
			phases[t] = append(phases[t], PricePhase{UntilMs: d.varint(), First: int(d.uvarint(StockPerTierMax)), PriceCents: d.varint()})
		}
		for range d.uvarint(ComponentsPerPackageMax) {
			components[t] = append(components[t], PackageComponent{TierID: d.str(IDLenMax), Quantity: int(d.uvarint(QuantityPerOrderMax))})
		}
	}
	return phases, components
}

// The tier rules' snapshot section: the rules of every sale that has any,
// by index in the snapshot's sale list (whose SaleConfig has none).
//
//	nsales | {saleIndex ntiers {nphases {untilMs first priceCents} ncomponents {tierID qty}}}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag:     tierRulesSectionTag,
		freeze:  freezeTierRules,
		restore: restoreTierRules,
	})
}

func freezeTierRules(st *state) func([]byte) []byte {
	type ruled struct {
		sale  int
		tiers []TierConfig // replaced on change, never modified: shared
	}
	var sales []ruled
	for i, sl := range st.sales {
		if hasTierRules(&sl.cfg) {
			sales = append(sales, ruled{i, sl.cfg.Tiers})
		}
	}
	if len(sales) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(sales)))
		for _, s := range sales {
			b = binary.AppendUvarint(b, uint64(s.sale))
			phases, components := make([][]PricePhase, len(s.tiers)), make([][]PackageComponent, len(s.tiers))
			for t := range s.tiers {
				phases[t], components[t] = s.tiers[t].Phases, s.tiers[t].Components
			}
			b = appendTierRules(b, phases, components)
		}
		return b
	}
}

func restoreTierRules(st *state, body []byte) error {
	d := decoder{b: body}
	n := d.uvarint(uint64(len(st.sales)))
	for range n {
		si := d.uvarint(uint64(max(len(st.sales)-1, 0)))
		phases, components := d.tierRules()
		if d.err != nil {
			break
		}
		sl := st.sales[si]
		if len(phases) != len(sl.cfg.Tiers) {
			d.fail("tier rules for another tier count")
			break
		}
		if err := st.setTierRules(sl, phases, components); err != nil {
			return err
		}
		st.restorePackageTickets(sl) // packages.go
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes left over", len(d.b)))
	}
	if d.err != nil {
		return fmt.Errorf("%w: snapshot tier rules section: %v", errCorrupt, d.err)
	}
	return nil
}
