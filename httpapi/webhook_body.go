package httpapi

import "unicode/utf8"

// decodeWebhookBody decodes a payment event into ev. The body a provider
// sends, {"id":"...","type":"...","order_id":"...","amount_cents":n,
// "currency":"..."} with plain strings and an integer, is read by hand like
// a purchase's (purchase_body.go): in the sustained run the webhook cost
// twice a purchase's handler time, a third of it in go-json's strict
// decode. Any other body, valid or not, goes to decodeStrict, which decides
// and words the error, so the shortcut only ever accepts what decodeStrict
// accepts, read the same way (FuzzWebhookBody).
func decodeWebhookBody(body []byte, ev *webhookBody) error {
	if f, ok := scanWebhookBody(body); ok {
		// One allocation for the three strings the engine keeps.
		all := string(f.id) + string(f.orderID) + string(f.currency)
		n1, n2 := len(f.id), len(f.id)+len(f.orderID)
		amount := f.amount
		*ev = webhookBody{ID: all[:n1], Type: webhookType(f.typ), OrderID: all[n1:n2], Currency: all[n2:]}
		if f.haveAmount {
			ev.AmountCents = &amount
		}
		return nil
	}
	var slow webhookBody // on the heap, but only here
	err := decodeStrict(body, &slow)
	*ev = slow
	return err
}

// webhookFields are the members of a plain webhook body, in place in the
// request's buffer.
type webhookFields struct {
	id, typ, orderID, currency []byte
	amount                     int64
	haveAmount                 bool
}

// webhookType is the event type as a string, without an allocation for the
// two types there are.
func webhookType(b []byte) string {
	switch string(b) {
	case "payment.succeeded":
		return "payment.succeeded"
	case "payment.failed":
		return "payment.failed"
	}
	return string(b)
}

// scanWebhookBody reads the plain form of a webhook body, without writing
// to it: members named exactly "id", "type", "order_id", "amount_cents" and
// "currency", each at most once and each optional (the handler says what
// is missing), strings without escapes and an integer of up to 18 digits.
// ok is false on anything else.
func scanWebhookBody(b []byte) (f webhookFields, ok bool) {
	s := jsonScan{b: b}
	if !s.consume('{') {
		return f, false
	}
	var seen [5]bool
	for first := true; ; first = false {
		if s.consume('}') {
			return f, s.end() && f.valid()
		}
		if !first && !s.consume(',') {
			return f, false
		}
		name, ok := s.plainString()
		if !ok || !s.consume(':') {
			return f, false
		}
		var field int
		switch string(name) {
		case "id":
			field = 0
			f.id, ok = s.plainString()
		case "type":
			field = 1
			f.typ, ok = s.plainString()
		case "order_id":
			field = 2
			f.orderID, ok = s.plainString()
		case "currency":
			field = 3
			f.currency, ok = s.plainString()
		case "amount_cents":
			field = 4
			var n int
			n, ok = s.plainInt()
			f.amount, f.haveAmount = int64(n), true
		default:
			return f, false
		}
		if !ok || seen[field] {
			return f, false
		}
		seen[field] = true
	}
}

// valid reports whether every string member is UTF-8, as decodeStrict
// requires; checked once, after the scan.
func (f *webhookFields) valid() bool {
	return utf8.Valid(f.id) && utf8.Valid(f.typ) && utf8.Valid(f.orderID) && utf8.Valid(f.currency)
}
