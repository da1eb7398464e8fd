package httpapi

import (
	"strconv"
	"time"

	"github.com/onsale/onsale/engine"
)

// A tier's price phases and package components in JSON (engine/pricing.go,
// engine/packages.go).

type phaseBody struct {
	Until      *time.Time `json:"until"`
	First      int        `json:"first"`
	PriceCents *int64     `json:"price_cents"`
}

type componentBody struct {
	Tier     string `json:"tier"`
	Quantity int    `json:"quantity"`
}

// tierRules converts a tier's phases and components; the engine validates
// the values.
func (t *tierBody) tierRules(i int, tc *engine.TierConfig) string {
	for j, p := range t.Phases {
		if p.PriceCents == nil {
			return "tiers[" + strconv.Itoa(i) + "].phases[" + strconv.Itoa(j) + "]: price_cents is required"
		}
		ph := engine.PricePhase{First: p.First, PriceCents: *p.PriceCents}
		if p.Until != nil {
			if ph.UntilMs = p.Until.UnixMilli(); ph.UntilMs <= 0 {
				return "tiers[" + strconv.Itoa(i) + "].phases[" + strconv.Itoa(j) + "]: until must be after 1970"
			}
		}
		tc.Phases = append(tc.Phases, ph)
	}
	for _, c := range t.Components {
		tc.Components = append(tc.Components, engine.PackageComponent{TierID: c.Tier, Quantity: c.Quantity})
	}
	return ""
}

// appendTierRules appends a tier's phases and components, if any, inside
// its object.
func appendTierRules(b []byte, t *engine.TierConfig) []byte {
	if len(t.Phases) > 0 {
		b = append(b, `,"phases":[`...)
		for j, p := range t.Phases {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"price_cents":`...)
			b = strconv.AppendInt(b, p.PriceCents, 10)
			if p.UntilMs != 0 {
				b = append(b, `,"until":`...)
				b = appendTime(b, p.UntilMs)
			}
			if p.First != 0 {
				b = append(b, `,"first":`...)
				b = strconv.AppendInt(b, int64(p.First), 10)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(t.Components) > 0 {
		b = append(b, `,"components":[`...)
		for j, c := range t.Components {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"tier":`...)
			b = appendString(b, c.TierID)
			b = append(b, `,"quantity":`...)
			b = strconv.AppendInt(b, int64(c.Quantity), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return b
}

// tierStock is the stock a tier shows: a package has none of its own.
func tierStock(t *engine.TierConfig) int {
	if len(t.Components) > 0 {
		return 0
	}
	return t.Stock
}
