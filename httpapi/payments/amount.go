package payments

import "errors"

// amountMinorMax bounds a parsed amount: 10^15 minor units, far above any
// ticket order and far below int64's limit, so the digit loop cannot
// overflow.
const amountMinorMax = 1_000_000_000_000_000

var errAmount = errors.New("not a plain decimal amount")

// ParseDecimalMinor parses a decimal amount in major units with at most two
// decimals ("0.10", "19999.99", "5", "5.5") into minor units (10, 1999999,
// 500, 550) without floating point. It refuses signs, exponents, spaces,
// leading zeros other than a single "0" before the point, more than two
// decimals, a bare point, and amounts above amountMinorMax.
func ParseDecimalMinor(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if len(frac) == 0 || len(frac) > 2 {
				return 0, errAmount
			}
			break
		}
	}
	if len(intPart) == 0 || len(intPart) > 1 && intPart[0] == '0' {
		return 0, errAmount
	}
	var n int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		n = n*10 + int64(c-'0')
		if n > amountMinorMax/100 {
			return 0, errAmount
		}
	}
	n *= 100
	scale := int64(10)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, errAmount
		}
		n += int64(c-'0') * scale
		scale /= 10
	}
	if n > amountMinorMax {
		return 0, errAmount
	}
	return n, nil
}
