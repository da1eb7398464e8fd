package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Coupons: per-sale codes that take money off a purchase. A coupon is
// state of its sale, decided by the sale's shard like the stock:
//
//   - A use is taken by the purchase that names the code, in the same log
//     entry (OrderPlaced, then CouponApplied), so racing buyers can never
//     take more uses than the cap: the shard decides them one by one.
//   - A use is given back when its order is cancelled or expires (no event
//     of its own: applying the cancel or expiry does it). It is kept when a
//     paid order is refunded: the discount was given, and a refund does not
//     make a limited offer available again.
//   - Late money for an expired or cancelled order takes the use again; if
//     the coupon has no use left for it (total or per buyer), the order is
//     paid with needs_refund, as when its tickets are gone.
//
// Discounts: percent off (1-100) of the order's amount, rounded half down
// in minor units (a discount of 12.5 cents is 12: the half cent goes to the
// seller), or a fixed amount off the order (not per ticket), never more
// than the order: an amount never goes below 0.
//
// Codes are 3 to 32 characters of A-Z 0-9 and '-', matched without regard
// to case (stored and shown in upper case).

// Limits and codes of coupons.
const (
	CouponCodeLenMin  = 3
	CouponCodeLenMax  = 32
	CouponsPerSaleMax = 1000
	couponsSectionTag = 41

	CodeCouponUnknown       Code = "coupon_unknown"
	CodeCouponNotYetValid   Code = "coupon_not_yet_valid"
	CodeCouponExpired       Code = "coupon_expired"
	CodeCouponDisabled      Code = "coupon_disabled"
	CodeCouponExhausted     Code = "coupon_exhausted"
	CodeCouponNotApplicable Code = "coupon_not_applicable"
	CodeCouponExists        Code = "coupon_exists"
	CodeCouponCapBelowUses  Code = "coupon_cap_below_uses"
)

// CouponConfig is a coupon as an admin writes it. Zero means "no limit" for
// the caps, the window and the minimum.
type CouponConfig struct {
	Code            string
	PercentOff      int   // 1-100; or
	AmountOffCents  int64 // a fixed amount off the order
	Tiers           []string
	UsesMax         int // uses in all
	UsesPerBuyerMax int
	ValidFromMs     int64
	ValidUntilMs    int64 // exclusive
	MinQuantity     int   // tickets (or packages) in the order
	Disabled        bool
}

// Coupon is a coupon as queried: its config and the uses taken.
type Coupon struct {
	CouponConfig
	Uses int
}

// CouponPatch changes a coupon: nil fields stay as they are.
type CouponPatch struct {
	UsesMax         *int
	UsesPerBuyerMax *int
	ValidFromMs     *int64
	ValidUntilMs    *int64
	Disabled        *bool
}

// saleCoupons is a sale's coupons and the uses its orders hold.
type saleCoupons struct {
	list   []*coupon // in creation order
	byCode map[string]int32
	orders map[orderKey]couponUse
}

type coupon struct {
	cfg    CouponConfig // replaced whole on a change: views share its Tiers
	uses   int
	byUser map[string]int32
}

type couponUse struct {
	coupon   int32
	discount int64
	held     bool // the order holds a use now
}

type couponCommand struct {
	put   *CouponConfig
	code  string
	patch CouponPatch
}

// NormalizeCouponCode returns a code in upper case, and whether it is a
// code at all.
func NormalizeCouponCode(code string) (string, bool) {
	if !validCouponCode(strings.ToUpper(code)) {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if 'a' <= code[i] && code[i] <= 'z' {
			return strings.ToUpper(code), true
		}
	}
	return code, true
}

func validCouponCode(s string) bool {
	if len(s) < CouponCodeLenMin || len(s) > CouponCodeLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// decideCoupon checks cmd's coupon against the order about to be placed
// and returns the code and the discount, or why not.
func (st *state) decideCoupon(sl *sale, t int, cmd *command, now, amount int64) (string, int64, *Rejection) {
	c := sl.coupon(cmd.coupon)
	switch {
	case c == nil:
		return "", 0, reject(CodeCouponUnknown, "sale %q has no coupon %q", sl.cfg.ID, cmd.coupon)
	case c.cfg.Disabled:
		return "", 0, reject(CodeCouponDisabled, "coupon %q is disabled", c.cfg.Code)
	case now < c.cfg.ValidFromMs:
		return "", 0, reject(CodeCouponNotYetValid, "coupon %q is valid from %s", c.cfg.Code, formatMs(c.cfg.ValidFromMs))
	case c.cfg.ValidUntilMs != 0 && now >= c.cfg.ValidUntilMs:
		return "", 0, reject(CodeCouponExpired, "coupon %q expired at %s", c.cfg.Code, formatMs(c.cfg.ValidUntilMs))
	case len(c.cfg.Tiers) > 0 && !slices.Contains(c.cfg.Tiers, sl.cfg.Tiers[t].ID):
		return "", 0, reject(CodeCouponNotApplicable, "coupon %q is for tiers %s only", c.cfg.Code, strings.Join(c.cfg.Tiers, ", "))
	case cmd.qty < c.cfg.MinQuantity:
		return "", 0, reject(CodeCouponNotApplicable, "coupon %q needs at least %d tickets in the order", c.cfg.Code, c.cfg.MinQuantity)
	}
	if rej := c.takeable(cmd.userID); rej != nil {
		return "", 0, rej
	}
	return c.cfg.Code, c.discount(amount), nil
}

// takeable says whether user may take one more use.
func (c *coupon) takeable(user string) *Rejection {
	if c.cfg.UsesMax > 0 && c.uses >= c.cfg.UsesMax {
		return reject(CodeCouponExhausted, "coupon %q has no uses left", c.cfg.Code)
	}
	if c.cfg.UsesPerBuyerMax > 0 && int(c.byUser[user]) >= c.cfg.UsesPerBuyerMax {
		return reject(CodeCouponExhausted, "coupon %q is used at most %d times per buyer", c.cfg.Code, c.cfg.UsesPerBuyerMax)
	}
	return nil
}

// discount is what the coupon takes off an amount: percent rounded half
// down, or a fixed amount, never more than the amount.
func (c *coupon) discount(amount int64) int64 {
	if c.cfg.PercentOff > 0 {
		return (amount*int64(c.cfg.PercentOff) + 49) / 100
	}
	return min(c.cfg.AmountOffCents, amount)
}

func (sl *sale) coupon(code string) *coupon {
	if sl.coupons == nil {
		return nil
	}
	i, ok := sl.coupons.byCode[code]
	if !ok {
		return nil
	}
	return sl.coupons.list[i]
}

// orderCoupon is the code of o's coupon, "" without one: a retry of the
// purchase must name the same.
func (sl *sale) orderCoupon(o *order) string {
	if sl.coupons == nil {
		return ""
	}
	u, ok := sl.coupons.orders[o.key]
	if !ok {
		return ""
	}
	return sl.coupons.list[u.coupon].cfg.Code
}

// couponRetakable says whether late money for an expired or cancelled
// order can take its coupon's use again.
func (st *state) couponRetakable(sl *sale, o *order) bool {
	if sl.coupons == nil {
		return true
	}
	u, ok := sl.coupons.orders[o.key]
	if !ok || u.held {
		return true
	}
	return sl.coupons.list[u.coupon].takeable(o.userID) == nil
}

func (st *state) retakeCoupon(sl *sale, o *order)   { st.moveCouponUse(sl, o, true) }
func (st *state) giveBackCoupon(sl *sale, o *order) { st.moveCouponUse(sl, o, false) }

func (st *state) moveCouponUse(sl *sale, o *order, held bool) {
	if sl.coupons == nil {
		return
	}
	u, ok := sl.coupons.orders[o.key]
	if !ok || u.held == held {
		return
	}
	u.held = held
	sl.coupons.orders[o.key] = u
	c := sl.coupons.list[u.coupon]
	d := 1
	if !held {
		d = -1
	}
	c.uses += d
	c.byUser[o.userID] += int32(d)
	if c.byUser[o.userID] == 0 {
		delete(c.byUser, o.userID)
	}
}

// decideCouponCommand decides the admin's coupon commands.
func (st *state) decideCouponCommand(cmd *command, now int64, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	switch cmd.kind {
	case cmdPutCoupon:
		cfg := cmd.coupons.put
		if sl.coupon(cfg.Code) != nil {
			return evs, reject(CodeCouponExists, "sale %q has a coupon %q already; change it with PATCH", cmd.saleID, cfg.Code)
		}
		if sl.coupons != nil && len(sl.coupons.list) >= CouponsPerSaleMax {
			return evs, reject(CodeInvalidRequest, "a sale has at most %d coupons", CouponsPerSaleMax)
		}
		for _, id := range cfg.Tiers {
			if sl.tierIndex(id) < 0 {
				return evs, reject(CodeUnknownTier, "sale %q has no tier %q", cmd.saleID, id)
			}
		}
		return append(evs, event{kind: evCouponPut, at: now, saleID: cmd.saleID, com: &commerce{coupon: cfg}}), nil
	case cmdPatchCoupon:
		c := sl.coupon(cmd.coupons.code)
		if c == nil {
			return evs, reject(CodeCouponUnknown, "sale %q has no coupon %q", cmd.saleID, cmd.coupons.code)
		}
		cfg, p := c.cfg, &cmd.coupons.patch
		if p.UsesMax != nil {
			if *p.UsesMax > 0 && *p.UsesMax < c.uses { // 0 is no cap
				return evs, reject(CodeCouponCapBelowUses, "coupon %q has %d uses taken; its cap cannot go below that", cfg.Code, c.uses)
			}
			cfg.UsesMax = *p.UsesMax
		}
		if p.UsesPerBuyerMax != nil {
			cfg.UsesPerBuyerMax = *p.UsesPerBuyerMax
		}
		if p.ValidFromMs != nil {
			cfg.ValidFromMs = *p.ValidFromMs
		}
		if p.ValidUntilMs != nil {
			cfg.ValidUntilMs = *p.ValidUntilMs
		}
		if p.Disabled != nil {
			cfg.Disabled = *p.Disabled
		}
		if rej := validateCouponConfig(&cfg); rej != nil {
			return evs, rej
		}
		if samePatchable(&cfg, &c.cfg) {
			return evs, nil
		}
		return append(evs, event{kind: evCouponPut, at: now, saleID: cmd.saleID, com: &commerce{coupon: &cfg}}), nil
	}
	return evs, nil // cmdCoupons reads
}

func samePatchable(a, b *CouponConfig) bool {
	return a.UsesMax == b.UsesMax && a.UsesPerBuyerMax == b.UsesPerBuyerMax && a.ValidFromMs == b.ValidFromMs &&
		a.ValidUntilMs == b.ValidUntilMs && a.Disabled == b.Disabled // what a patch can change
}

func (st *state) answerCoupons(cmd *command, res *result) {
	sl, _ := st.saleByID(cmd.saleID)
	if sl.coupons == nil {
		return
	}
	for _, c := range sl.coupons.list {
		if cmd.kind == cmdCoupons || c.cfg.Code == cmd.coupons.code || cmd.coupons.put != nil && c.cfg.Code == cmd.coupons.put.Code {
			res.coupons = append(res.coupons, Coupon{CouponConfig: c.cfg, Uses: c.uses})
		}
	}
}

func (st *state) applyCouponPut(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil {
		return fmt.Errorf("%w: CouponPut of unknown sale %q", errCorrupt, ev.saleID)
	}
	st.touch(si)
	cfg := *ev.com.coupon
	cfg.Tiers = slices.Clone(cfg.Tiers)
	if c := sl.coupon(cfg.Code); c != nil {
		c.cfg = cfg
		return nil
	}
	sl.addCoupon(cfg)
	return nil
}

func (sl *sale) addCoupon(cfg CouponConfig) *coupon {
	if sl.coupons == nil {
		sl.coupons = &saleCoupons{byCode: make(map[string]int32), orders: make(map[orderKey]couponUse)}
	}
	c := &coupon{cfg: cfg, byUser: make(map[string]int32)}
	sl.coupons.byCode[cfg.Code] = int32(len(sl.coupons.list))
	sl.coupons.list = append(sl.coupons.list, c)
	return c
}

// applyCouponUse records the coupon of an order just placed and takes its
// use.
func (st *state) applyCouponUse(ev *event) error {
	idx, ok := st.byKey[ev.order]
	if !ok {
		return fmt.Errorf("%w: CouponApplied of unknown order", errCorrupt)
	}
	o := st.orders.at(idx)
	sl := st.sales[o.sale]
	c := sl.coupon(ev.com.code)
	if c == nil {
		return fmt.Errorf("%w: CouponApplied of unknown coupon %q", errCorrupt, ev.com.code)
	}
	if _, dup := sl.coupons.orders[o.key]; dup || o.status != StatusPending {
		return fmt.Errorf("%w: CouponApplied twice or to a %s order", errCorrupt, o.status)
	}
	st.touch(o.sale)
	sl.coupons.orders[o.key] = couponUse{coupon: sl.coupons.byCode[c.cfg.Code], discount: ev.com.discount}
	st.moveCouponUse(sl, o, true)
	return nil
}

// validateCouponConfig checks what a coupon must satisfy on its own.
func validateCouponConfig(c *CouponConfig) *Rejection {
	switch {
	case !validCouponCode(c.Code):
		return reject(CodeInvalidRequest, "code must be %d to %d characters of A-Z 0-9 -", CouponCodeLenMin, CouponCodeLenMax)
	case (c.PercentOff == 0) == (c.AmountOffCents == 0):
		return reject(CodeInvalidRequest, "set one of percent_off and amount_off_cents")
	case c.PercentOff < 0 || c.PercentOff > 100:
		return reject(CodeInvalidRequest, "percent_off must be 1 to 100")
	case c.AmountOffCents < 0 || c.AmountOffCents > PriceCentsMax*QuantityPerOrderMax:
		return reject(CodeInvalidRequest, "amount_off_cents must be 1 to %d", int64(PriceCentsMax*QuantityPerOrderMax))
	case len(c.Tiers) > TiersPerSaleMax:
		return reject(CodeInvalidRequest, "a coupon names at most %d tiers", TiersPerSaleMax)
	case c.UsesMax < 0 || c.UsesMax > 1<<30, c.UsesPerBuyerMax < 0 || c.UsesPerBuyerMax > 1<<30:
		return reject(CodeInvalidRequest, "uses caps must be 0 (none) to %d", 1<<30)
	case c.ValidFromMs < 0 || c.ValidFromMs > StartsAtMsMax || c.ValidUntilMs < 0 || c.ValidUntilMs > StartsAtMsMax:
		return reject(CodeInvalidRequest, "valid_from and valid_until must be between 1970 and 9999")
	case c.ValidUntilMs != 0 && c.ValidUntilMs <= c.ValidFromMs:
		return reject(CodeInvalidRequest, "valid_until must be after valid_from")
	case c.MinQuantity < 0 || c.MinQuantity > QuantityPerOrderMax:
		return reject(CodeInvalidRequest, "min_quantity must be 0 to %d", QuantityPerOrderMax)
	}
	for i, id := range c.Tiers {
		if !validID(id) || slices.Contains(c.Tiers[:i], id) {
			return reject(CodeInvalidRequest, "tiers[%d]: a tier id, once", i)
		}
	}
	return nil
}

// purchaseCoupon is a purchase's coupon code in upper case.
func purchaseCoupon(code string) (string, *Rejection) {
	if code == "" {
		return "", nil
	}
	norm, ok := NormalizeCouponCode(code)
	if !ok {
		return "", reject(CodeCouponUnknown, "a coupon code is %d to %d characters of A-Z 0-9 -", CouponCodeLenMin, CouponCodeLenMax)
	}
	return norm, nil
}

// PutCoupon creates a coupon of a sale.
func (e *Engine) PutCoupon(ctx context.Context, saleID string, cfg CouponConfig) (Coupon, error) {
	code, ok := NormalizeCouponCode(cfg.Code)
	if ok {
		cfg.Code = code
	}
	if rej := validateCouponConfig(&cfg); rej != nil {
		return Coupon{}, rej
	}
	return e.couponCall(ctx, saleID, command{kind: cmdPutCoupon, saleID: saleID, coupons: &couponCommand{put: &cfg}})
}

// PatchCoupon changes a coupon's caps, window or state.
func (e *Engine) PatchCoupon(ctx context.Context, saleID, code string, p CouponPatch) (Coupon, error) {
	code, ok := NormalizeCouponCode(code)
	if !ok {
		return Coupon{}, reject(CodeCouponUnknown, "sale %q has no coupon %q", saleID, code)
	}
	return e.couponCall(ctx, saleID, command{kind: cmdPatchCoupon, saleID: saleID, coupons: &couponCommand{code: code, patch: p}})
}

// Coupons lists a sale's coupons with their uses, in creation order.
func (e *Engine) Coupons(ctx context.Context, saleID string) ([]Coupon, error) {
	var out []Coupon
	err := e.one(ctx, saleID, command{kind: cmdCoupons, saleID: saleID}, func(r *result) { out = r.coupons })
	return out, err
}

func (e *Engine) couponCall(ctx context.Context, saleID string, cmd command) (Coupon, error) {
	var out Coupon
	err := e.one(ctx, saleID, cmd, func(r *result) {
		if len(r.coupons) == 1 {
			out = r.coupons[0]
		}
	})
	return out, err
}

// Event bodies (event.go):
//
//	CouponPut     at saleID coupon
//	CouponApplied at key code discount
//
// coupon := code percentOff amountOffCents ntiers {tierID} usesMax
// usesPerBuyerMax validFromMs validUntilMs minQuantity disabled(0|1)
func appendCouponConfig(b []byte, c *CouponConfig) []byte {
	b = appendString(b, c.Code)
	b = binary.AppendUvarint(b, uint64(c.PercentOff))
	b = binary.AppendVarint(b, c.AmountOffCents)
	b = binary.AppendUvarint(b, uint64(len(c.Tiers)))
	for _, id := range c.Tiers {
		b = appendString(b, id)
	}
	b = binary.AppendUvarint(b, uint64(c.UsesMax))
	b = binary.AppendUvarint(b, uint64(c.UsesPerBuyerMax))
	b = binary.AppendVarint(b, c.ValidFromMs)
	b = binary.AppendVarint(b, c.ValidUntilMs)
	b = binary.AppendUvarint(b, uint64(c.MinQuantity))
	return appendBool(b, c.Disabled)
}

func (d *decoder) couponConfig() *CouponConfig {
	c := &CouponConfig{Code: d.str(CouponCodeLenMax), PercentOff: int(d.uvarint(100)), AmountOffCents: d.varint()}
	for range d.uvarint(TiersPerSaleMax) {
		c.Tiers = append(c.Tiers, d.str(IDLenMax))
	}
	c.UsesMax, c.UsesPerBuyerMax = int(d.uvarint(1<<30)), int(d.uvarint(1<<30))
	c.ValidFromMs, c.ValidUntilMs = d.varint(), d.varint()
	c.MinQuantity = int(d.uvarint(QuantityPerOrderMax))
	c.Disabled = d.bool()
	if d.err == nil {
		if rej := validateCouponConfig(c); rej != nil {
			d.fail(rej.Message)
		}
	}
	return c
}

// The coupons' snapshot section: per sale with coupons, its coupons and
// the coupon of every order that has one. Uses are recounted from the
// orders that hold one.
//
//	nsales | {saleIndex ncoupons {coupon} norders {key couponIndex discount held(0|1)}}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag:     couponsSectionTag,
		freeze:  freezeCoupons,
		restore: restoreCoupons,
	})
}

func freezeCoupons(st *state) func([]byte) []byte {
	type keyed struct {
		k orderKey
		u couponUse
	}
	type frozen struct {
		sale    int
		coupons []CouponConfig
		orders  []keyed
	}
	var sales []frozen
	for i, sl := range st.sales {
		if sl.coupons == nil {
			continue
		}
		f := frozen{sale: i}
		for _, c := range sl.coupons.list {
			f.coupons = append(f.coupons, c.cfg) // Tiers never modified: shared
		}
		for k, u := range sl.coupons.orders {
			f.orders = append(f.orders, keyed{k, u})
		}
		slices.SortFunc(f.orders, func(a, b keyed) int { return bytes.Compare(a.k[:], b.k[:]) })
		sales = append(sales, f)
	}
	if len(sales) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(sales)))
		for _, f := range sales {
			b = binary.AppendUvarint(b, uint64(f.sale))
			b = binary.AppendUvarint(b, uint64(len(f.coupons)))
			for i := range f.coupons {
				b = appendCouponConfig(b, &f.coupons[i])
			}
			b = binary.AppendUvarint(b, uint64(len(f.orders)))
			for _, x := range f.orders {
				b = append(b, x.k[:]...)
				b = binary.AppendUvarint(b, uint64(x.u.coupon))
				b = binary.AppendVarint(b, x.u.discount)
				b = appendBool(b, x.u.held)
			}
		}
		return b
	}
}

func restoreCoupons(st *state, body []byte) error {
	d := decoder{b: body}
	n := d.uvarint(uint64(len(st.sales)))
	for range n {
		sl := st.sales[d.uvarint(uint64(max(len(st.sales)-1, 0)))]
		nc := d.uvarint(CouponsPerSaleMax)
		if nc == 0 {
			d.fail("a sale without coupons")
			break
		}
		for range nc {
			cfg := d.couponConfig()
			if d.err != nil {
				break
			}
			if sl.coupon(cfg.Code) != nil {
				d.fail("a coupon twice")
				break
			}
			sl.addCoupon(*cfg)
		}
		for range d.uvarint(1 << 31) {
			k, ci, disc, held := d.key(), d.uvarint(nc-1), d.varint(), d.bool()
			idx, ok := st.byKey[k]
			if d.err != nil || !ok || st.orders.at(idx).sale != st.saleIdx[sl.cfg.ID] || disc < 0 {
				d.fail("a coupon use of an order not in its sale")
				break
			}
			if _, dup := sl.coupons.orders[k]; dup {
				d.fail("an order's coupon twice")
				break
			}
			sl.coupons.orders[k] = couponUse{coupon: int32(ci), discount: disc}
			if held {
				st.moveCouponUse(sl, st.orders.at(idx), true)
			}
		}
		if d.err != nil {
			break
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes left over", len(d.b)))
	}
	if d.err != nil {
		return fmt.Errorf("%w: snapshot coupons section: %v", errCorrupt, d.err)
	}
	return nil
}
