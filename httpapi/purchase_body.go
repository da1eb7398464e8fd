package httpapi

import "unicode/utf8"

// decodePurchaseBody decodes a purchase's body into p. The body every
// frontend sends, {"tier":"...","quantity":n} with a plain string and an
// integer, is read by hand: go-json's strict decode cost more than the
// rest of the request's JSON and two allocations, one of them p, which
// passing it as an interface moves to the heap. Any other body, valid or
// not, goes to decodeStrict, which decides and words the error, so the
// shortcut only ever accepts what decodeStrict accepts, read the same way
// (FuzzPurchaseBody).
func decodePurchaseBody(body []byte, p *purchaseBody) error {
	if tier, qty, coupon, ok := scanPurchaseBody(body); ok {
		*p = purchaseBody{Tier: string(tier), Quantity: qty}
		if coupon != nil { // a second allocation, only for a purchase with a coupon
			p.Coupon = string(coupon)
		}
		return nil
	}
	var slow purchaseBody // on the heap, but only here
	err := decodeStrict(body, &slow)
	*p = slow
	return err
}

// scanPurchaseBody reads the plain form of a purchase body, without
// writing to it (fasthttp's buffer, which decodeStrict may read next):
// members named exactly "tier", "quantity" and "coupon" (optional), at
// most once each, strings without escapes and an integer of up to 18
// digits. ok is false on anything else.
func scanPurchaseBody(b []byte) (tier []byte, qty int, coupon []byte, ok bool) {
	s := jsonScan{b: b}
	if !s.consume('{') {
		return nil, 0, nil, false
	}
	var haveTier, haveQty, haveCoupon bool
	for first := true; ; first = false {
		if s.consume('}') {
			return tier, qty, coupon, s.end()
		}
		if !first && !s.consume(',') {
			return nil, 0, nil, false
		}
		name, ok := s.plainString()
		if !ok || !s.consume(':') {
			return nil, 0, nil, false
		}
		switch string(name) {
		case "tier":
			tier, ok = s.plainString()
			ok = ok && !haveTier && utf8.Valid(tier)
			haveTier = true
		case "quantity":
			qty, ok = s.plainInt()
			ok = ok && !haveQty
			haveQty = true
		case "coupon":
			coupon, ok = s.plainString()
			ok = ok && !haveCoupon && utf8.Valid(coupon)
			haveCoupon = true
		default:
			ok = false
		}
		if !ok {
			return nil, 0, nil, false
		}
	}
}

// plainString reads a string without escapes and returns its bytes, in
// place and unchanged.
func (s *jsonScan) plainString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// plainInt reads an integer of 1 to 18 digits, no "-0", no fraction or
// exponent.
func (s *jsonScan) plainInt() (int, bool) {
	s.ws()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' && s.i-start < 19 {
		n = n*10 + int(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	switch {
	case digits == 0 || digits > 18 || s.b[start] == '0' && (digits > 1 || neg):
		return 0, false
	case s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E'):
		return 0, false
	case neg:
		return -n, true
	}
	return n, true
}
