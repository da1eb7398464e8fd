package engine

import (
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// validateSaleConfig checks what a sale config must satisfy on its own,
// before any shard sees it. Rules that depend on the sale's orders (stock
// below sold + held, removed tiers, currency) are decide's.
func validateSaleConfig(c *SaleConfig) *Rejection {
	switch {
	case !validID(c.ID):
		return reject(CodeInvalidRequest, "sale id must be 1 to %d characters of A-Z a-z 0-9 _ -", IDLenMax)
	case !validName(c.Name):
		return reject(CodeInvalidRequest, "name must be 1 to %d bytes of UTF-8 text", NameLenMax)
	case !validCurrency(c.Currency):
		return reject(CodeInvalidRequest, "currency must be an ISO 4217 code such as EUR")
	case c.ClosesAtMs <= c.OpensAtMs:
		return reject(CodeInvalidRequest, "closes_at must be after opens_at")
	case c.HoldMs < 1000 || c.HoldMs > HoldMsMax:
		return reject(CodeInvalidRequest, "hold must be 1 s to 24 h")
	case c.PerUserLimit < 1 || c.PerUserLimit > 1_000_000:
		return reject(CodeInvalidRequest, "per_user_limit must be 1 to 1000000")
	case len(c.Tiers) == 0 || len(c.Tiers) > TiersPerSaleMax:
		return reject(CodeInvalidRequest, "a sale has 1 to %d tiers", TiersPerSaleMax)
	}
	for i, t := range c.Tiers {
		switch {
		case !validID(t.ID):
			return reject(CodeInvalidRequest, "tiers[%d]: id must be 1 to %d characters of A-Z a-z 0-9 _ -", i, IDLenMax)
		case !validName(t.Name):
			return reject(CodeInvalidRequest, "tiers[%d]: name must be 1 to %d bytes of UTF-8 text", i, NameLenMax)
		case t.PriceCents < 0 || t.PriceCents > PriceCentsMax:
			return reject(CodeInvalidRequest, "tiers[%d]: price_cents must be 0 to %d", i, int64(PriceCentsMax))
		case t.Stock < 0 || t.Stock > StockPerTierMax:
			return reject(CodeInvalidRequest, "tiers[%d]: stock must be 0 to %d", i, StockPerTierMax)
		}
		for _, u := range c.Tiers[:i] {
			if u.ID == t.ID {
				return reject(CodeInvalidRequest, "tiers[%d]: tier id %q appears twice", i, t.ID)
			}
		}
	}
	if rej := validateTierRules(c); rej != nil { // pricing.go
		return rej
	}
	if rej := validateQueueConfig(c.Queue); rej != nil { // queue.go
		return rej
	}
	if rej := validateOffersConfig(c); rej != nil { // offers.go
		return rej
	}
	if rej := validateRealNameRule(c.RealName); rej != nil { // realname.go
		return rej
	}
	if rej := validateRefundRules(c); rej != nil { // refundrules.go
		return rej
	}
	return validateCatalogue(&c.Catalogue)
}

// validateCatalogue checks the optional catalogue fields; empty is valid.
func validateCatalogue(c *Catalogue) *Rejection {
	switch {
	case c.Event != "" && !validID(c.Event):
		return reject(CodeInvalidRequest, "event must be 1 to %d characters of A-Z a-z 0-9 _ -", IDLenMax)
	case !validText(c.Venue, VenueLenMax, false):
		return reject(CodeInvalidRequest, "venue must be up to %d bytes of UTF-8 text on one line", VenueLenMax)
	case !validText(c.City, CityLenMax, false):
		return reject(CodeInvalidRequest, "city must be up to %d bytes of UTF-8 text on one line", CityLenMax)
	case c.StartsAtMs < 0 || c.StartsAtMs > StartsAtMsMax:
		return reject(CodeInvalidRequest, "starts_at must be between 1970 and 9999")
	case c.Category != "" && !slices.Contains(Categories, c.Category):
		return reject(CodeInvalidRequest, "category must be one of %s", strings.Join(Categories, ", "))
	case c.ImageURL != "" && !validImageURL(c.ImageURL):
		return reject(CodeInvalidRequest, "image_url must be an absolute https URL of up to %d bytes, without credentials", ImageURLLenMax)
	case !validText(c.Description, DescriptionLenMax, true):
		return reject(CodeInvalidRequest, "description must be up to %d bytes of UTF-8 text", DescriptionLenMax)
	}
	return nil
}

// validText: up to maxLen bytes of UTF-8 without control characters (tab
// and newlines allowed where multiline), so that a listing page or a log
// line cannot be garbled by what an admin typed.
func validText(s string, maxLen int, multiline bool) bool {
	if len(s) > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && !(multiline && (r == '\n' || r == '\r' || r == '\t')) || r == 0x7f {
			return false
		}
	}
	return true
}

// validImageURL: a page shows it in an <img>: https only (no mixed content,
// no javascript: or data:), a host, no user:password, nothing a browser
// would have to repair.
func validImageURL(s string) bool {
	if len(s) > ImageURLLenMax || !validText(s, ImageURLLenMax, false) || strings.ContainsAny(s, " \\<>\"") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && u.Opaque == ""
}

func validName(s string) bool {
	return len(s) > 0 && len(s) <= NameLenMax && utf8.ValidString(s)
}

func validCurrency(s string) bool {
	return len(s) == 3 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z' && 'A' <= s[2] && s[2] <= 'Z'
}
