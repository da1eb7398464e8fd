package engine

import (
	"fmt"
	"slices"
)

// Packages (套餐价): a package tier sells a bundle of other tiers' tickets
// of the same sale at its own price, say a family pack of two adult and two
// child seats. It has no stock of its own: an order of n packages holds
// n × qty tickets of every component, all or nothing, and gives them all
// back together on cancel, expiry or refund.
//
// The counts stay per order tier: a package tier's held and sold count
// packages, and a component tier's committed tickets are its own orders'
// plus, for each package that draws on it, qty × that package's held and
// sold. So every path that moves an order's tier count (apply, refunds,
// restore, the recount) moves a package's components with it, with no
// event of its own, and sold + held <= stock is checked on the components
// (checkTier). Availability of a package is the minimum over its components
// of available / qty.
//
// Against the per-buyer limit a package counts the tickets it holds
// (qty × the package's ticket count). At the door an order of n packages
// has n ticket codes, each admitting one bundle.
//
// A package's components cannot change once its sale has orders (its held
// packages would give back other tickets than they took): add a new package
// tier instead. Stored configs give a package tier the stock
// PackageStock, a bound its components always reach first, so that the
// package's own count in packages passes the plain tier checks; views and
// the JSON show its availability instead.

// Limits of packages.
const (
	ComponentsPerPackageMax = 8
	// PackageStock is the stock a package tier is stored with.
	PackageStock = StockPerTierMax
)

// PackageComponent is one tier's share of a package.
type PackageComponent struct {
	TierID   string
	Quantity int
}

// salePackages indexes a sale's packages by tier position; a sale without
// packages has none (sale.pk nil), and pays one nil check for it.
type salePackages struct {
	parts  [][]packagePart // per tier: a package's components; nil for a plain tier
	usedBy [][]packagePart // per tier: the packages that draw on it
	per    []int           // per tier: tickets per unit (1 for a plain tier)
}

type packagePart struct {
	tier int
	qty  int
}

// indexPackages rebuilds sl.pk from the sale's config.
func (st *state) indexPackages(sl *sale) error {
	n := len(sl.cfg.Tiers)
	var pk *salePackages
	for t := range sl.cfg.Tiers {
		comps := sl.cfg.Tiers[t].Components
		if len(comps) == 0 {
			continue
		}
		if pk == nil {
			pk = &salePackages{parts: make([][]packagePart, n), usedBy: make([][]packagePart, n), per: make([]int, n)}
		}
		for _, c := range comps {
			ct := sl.tierIndex(c.TierID)
			if ct < 0 || ct == t || len(sl.cfg.Tiers[ct].Components) > 0 || c.Quantity < 1 {
				return fmt.Errorf("%w: package %q of sale %q names tier %q", errCorrupt, sl.cfg.Tiers[t].ID, sl.cfg.ID, c.TierID)
			}
			pk.parts[t] = append(pk.parts[t], packagePart{ct, c.Quantity})
			pk.usedBy[ct] = append(pk.usedBy[ct], packagePart{t, c.Quantity})
			pk.per[t] += c.Quantity
		}
	}
	if pk != nil {
		for t := range pk.per {
			pk.per[t] = max(pk.per[t], 1)
		}
	}
	sl.pk = pk
	for t := range sl.tiers {
		checkTier(sl, t)
	}
	return nil
}

// committed is how many tickets of tier t are sold or held, those held
// through packages included; for a package, how many packages.
func (sl *sale) committed(t int) int {
	n := sl.tiers[t].held + sl.tiers[t].sold
	if sl.pk != nil {
		for _, p := range sl.pk.usedBy[t] {
			n += p.qty * (sl.tiers[p.tier].held + sl.tiers[p.tier].sold)
		}
	}
	return n
}

// packageAvailable is sale.available for a sale with packages.
func (sl *sale) packageAvailable(t int) int {
	if parts := sl.pk.parts[t]; len(parts) > 0 {
		n := PackageStock
		for _, p := range parts {
			n = min(n, sl.available(p.tier)/p.qty)
		}
		return n
	}
	return sl.cfg.Tiers[t].Stock - sl.committed(t)
}

// ticketsPer is how many tickets one unit of tier t holds: its package's,
// or 1.
func (sl *sale) ticketsPer(t int) int {
	if sl.pk == nil {
		return 1
	}
	return sl.pk.per[t]
}

// tierCounts is what a view shows of tier t: a component's counts include
// what packages hold of it.
func (sl *sale) tierCounts(t int) TierCounts {
	tc := sl.tiers[t]
	c := TierCounts{Held: tc.held, Sold: tc.sold, Available: sl.available(t)}
	if sl.pk != nil {
		for _, p := range sl.pk.usedBy[t] {
			c.Held += p.qty * sl.tiers[p.tier].held
			c.Sold += p.qty * sl.tiers[p.tier].sold
		}
	}
	return c
}

// checkPackage checks the components of package tier t (checkTier).
func checkPackage(sl *sale, t int) {
	if sl.pk == nil {
		return
	}
	for _, p := range sl.pk.parts[t] {
		checkTier(sl, p.tier)
	}
}

// packageStock gives the package tiers of a config to be stored their
// stock (PackageStock), before decide compares stock with what is sold.
func packageStock(c *SaleConfig) {
	for t := range c.Tiers {
		if len(c.Tiers[t].Components) > 0 {
			c.Tiers[t].Stock = PackageStock
		}
	}
}

// validatePackages checks the components of a config's package tiers.
func validatePackages(c *SaleConfig) *Rejection {
	for i, t := range c.Tiers {
		if len(t.Components) == 0 {
			continue
		}
		if len(t.Components) > ComponentsPerPackageMax {
			return reject(CodeInvalidRequest, "tiers[%d]: a package has 1 to %d components", i, ComponentsPerPackageMax)
		}
		if t.Stock != 0 && t.Stock != PackageStock {
			return reject(CodeInvalidRequest, "tiers[%d]: a package has no stock of its own; leave stock out", i)
		}
		tickets := 0
		for j, comp := range t.Components {
			k := slices.IndexFunc(c.Tiers, func(u TierConfig) bool { return u.ID == comp.TierID })
			switch {
			case k < 0:
				return reject(CodeInvalidRequest, "tiers[%d].components[%d]: no tier %q in this sale", i, j, comp.TierID)
			case k == i || len(c.Tiers[k].Components) > 0:
				return reject(CodeInvalidRequest, "tiers[%d].components[%d]: tier %q is a package; a package holds plain tiers", i, j, comp.TierID)
			case comp.Quantity < 1 || comp.Quantity > QuantityPerOrderMax:
				return reject(CodeInvalidRequest, "tiers[%d].components[%d]: quantity must be 1 to %d", i, j, QuantityPerOrderMax)
			case slices.ContainsFunc(t.Components[:j], func(u PackageComponent) bool { return u.TierID == comp.TierID }):
				return reject(CodeInvalidRequest, "tiers[%d].components[%d]: tier %q appears twice", i, j, comp.TierID)
			}
			tickets += comp.Quantity
		}
		if tickets > QuantityPerOrderMax {
			return reject(CodeInvalidRequest, "tiers[%d]: a package holds at most %d tickets", i, QuantityPerOrderMax)
		}
	}
	return nil
}

// decidePackageChange refuses a sale update that changes a package's
// components (or makes a tier a package, or a package plain) once the
// sale has orders.
func (st *state) decidePackageChange(cfg *SaleConfig) *Rejection {
	sl, _ := st.saleByID(cfg.ID)
	if sl == nil || sl.orders == 0 {
		return nil
	}
	for t := range sl.cfg.Tiers { // existing tiers come first, in place
		if !slices.Equal(sl.cfg.Tiers[t].Components, cfg.Tiers[t].Components) {
			return reject(CodeInvalidRequest, "tier %q: a package's components cannot change once the sale has orders; add a new package tier",
				sl.cfg.Tiers[t].ID)
		}
	}
	return nil
}

// restorePackageTickets completes the users' ticket counts of a restored
// sale with packages: restore counted a package order as one ticket per
// package, before the rules were known.
func (st *state) restorePackageTickets(sl *sale) {
	if sl.pk == nil {
		return
	}
	si := st.saleIdx[sl.cfg.ID]
	for i := int32(0); i < st.orders.n; i++ {
		o := st.orders.at(i)
		if o.sale != si || sl.pk.per[o.tier] == 1 {
			continue
		}
		u := sl.users[o.userID]
		u.tickets += int32(o.ticketsTaken() * (sl.pk.per[o.tier] - 1))
		sl.users[o.userID] = u
	}
}
