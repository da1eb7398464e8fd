package httpapi

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-json/jsontext"
	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// strictJSON decodes a request body: one JSON value and nothing after it,
// member names matched case-sensitively, unknown members, duplicate names
// and invalid UTF-8 rejected. (These are github.com/goccy/go-json/v2's
// defaults plus RejectUnknownMembers; decode_test.go proves each.)
var strictJSON = jsonv2.JoinOptions(
	jsonv2.RejectUnknownMembers(true),
	jsonv2.MatchCaseInsensitiveNames(false),
)

// decodeStrict decodes body into v (a pointer to a plain struct). Its
// error is a *decodeError that says which of two things went wrong: the
// body is not JSON (400 malformed_json: empty, not UTF-8, broken or
// trailing syntax, nested past the decoder's depth limit), or it is JSON
// that does not fit v (422 invalid_request: another type, an unknown
// member, a duplicate name, a number out of range).
func decodeStrict(body []byte, v any) error {
	if len(body) == 0 {
		return &decodeError{codeMalformedJSON, "the request body is empty, not JSON; a JSON object is expected"}
	}
	if err := jsonv2.Unmarshal(body, v, strictJSON); err != nil {
		// The decoder stops at its first error, which for a body both
		// broken and unfit may be either kind, so the syntax is checked
		// on its own (on this error path only). Duplicate names are
		// valid JSON (RFC 8259 says names SHOULD be unique): refused as
		// unfit, like unknown members.
		var raw jsontext.Value
		if synErr := jsonv2.Unmarshal(body, &raw, jsontext.AllowDuplicateNames(true)); synErr != nil {
			return &decodeError{codeMalformedJSON, "the request body is not JSON: " + describeJSONError(synErr)}
		}
		return &decodeError{codeInvalidRequest, "invalid JSON body: " + describeJSONError(err)}
	}
	return nil
}

// decodeError is decodeStrict's error: the problem code and the sentence.
type decodeError struct{ code, detail string }

func (e *decodeError) Error() string { return e.detail }

// writeDecodeError answers an error of decodeStrict and returns its code.
func writeDecodeError(ctx *fasthttp.RequestCtx, err error) string {
	code := codeInvalidRequest
	var de *decodeError
	if errors.As(err, &de) {
		code = de.code
	}
	writeProblem(ctx, code, err.Error(), -1)
	return code
}

// describeJSONError words a decoding error for the client, without Go type
// names.
func describeJSONError(err error) string {
	var sem *jsonv2.SemanticError
	if errors.As(err, &sem) {
		at := string(sem.JSONPointer)
		if at == "" {
			at = "/"
		}
		if sem.Err == jsonv2.ErrUnknownName {
			return fmt.Sprintf("unknown member %q at %s", sem.JSONPointer.LastToken(), at)
		}
		want := "a value of another type"
		if sem.GoType != nil {
			want = describeGoType(sem.GoType)
		}
		return fmt.Sprintf("%s must be %s", at, want)
	}
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "json: "), "jsontext: ")
}

func describeGoType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a value of another type"
}

// writeJSON answers with v encoded by go-json. For the cold paths; the
// order is written by hand (appendOrder).
func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := jsonv2.Marshal(v)
	if err != nil {
		s.log.Error("cannot encode response", "path", string(ctx.Path()), "err", err)
		writeProblem(ctx, codeInternal, "cannot encode the response", -1)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// Response bodies are appended into pooled buffers, then copied into the
// response: no allocation per request once the pool is warm.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

// putBuffer returns buf to the pool with b, its grown contents.
func putBuffer(buf *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return // let a rare huge buffer go
	}
	*buf = b[:0]
	bufferPool.Put(buf)
}

// timeLayout is RFC 3339 with milliseconds, always in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends ms as a JSON string in timeLayout. Every order carries
// three times, so the common years are written digit by digit rather than
// through time.AppendFormat's layout interpreter (7% of a purchase's CPU).
func appendTime(b []byte, ms int64) []byte {
	t := time.UnixMilli(ms).UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, timeLayout)
		return append(b, '"')
	}
	hour, minute, sec := t.Clock()
	milli := t.Nanosecond() / 1e6
	return append(b, '"',
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z', '"')
}

func formatTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(timeLayout) }

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, and <>& as go-json writes them
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// orderView says who sees an order: buyers and admins see the ticket codes
// of a paid order; the payment provider and door staff do not.
type orderView uint8

const (
	viewWithTickets orderView = iota
	viewNoTickets
)

// appendOrder appends the JSON of an order (schema Order in openapi.json).
func appendOrder(b []byte, o *engine.Order, view orderView) []byte {
	b = append(b, `{"order_id":`...)
	b = appendString(b, o.ID)
	b = append(b, `,"provider_order_no":"`...)
	b = engine.AppendProviderOrderNumber(b, o.ID) // ordernumber.go
	b = append(b, '"')
	b = append(b, `,"status":"`...)
	b = append(b, o.Status.String()...)
	b = append(b, `","sale_id":`...)
	b = appendString(b, o.SaleID)
	b = append(b, `,"tier":`...)
	b = appendString(b, o.TierID)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, int64(o.Quantity), 10)
	b = append(b, `,"amount_cents":`...)
	b = strconv.AppendInt(b, o.AmountCents, 10)
	b = appendOrderPrice(b, o) // coupons.go
	b = append(b, `,"currency":`...)
	b = appendString(b, o.Currency)
	b = append(b, `,"needs_refund":`...)
	b = strconv.AppendBool(b, o.NeedsRefund)
	b = append(b, `,"user_id":`...)
	b = appendString(b, o.UserID)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, o.CreatedAtMs)
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, o.ExpiresAtMs)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, o.UpdatedAtMs)
	b = append(b, `,"checked_in":[`...)
	first := true
	for i := 0; i < o.Quantity && i < 64; i++ {
		if o.CheckedIn&(1<<i) != 0 {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = strconv.AppendInt(b, int64(i), 10)
		}
	}
	b = append(b, `],"duplicate_charges":[`...)
	for i := range o.DuplicateCharges {
		c := &o.DuplicateCharges[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event_id":`...)
		b = appendString(b, c.EventID)
		b = append(b, `,"amount_cents":`...)
		b = strconv.AppendInt(b, c.AmountCents, 10)
		b = append(b, `,"at":`...)
		b = appendTime(b, c.AtMs)
		b = appendChargeRefunded(b, c) // refundrules.go
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendOrderRefunds(b, o) // refundrules.go
	b = appendRefunds(b, o)      // refunds.go
	if view == viewWithTickets && o.Status == engine.StatusPaid && !o.NeedsRefund {
		b = append(b, `,"tickets":[`...)
		for i := 0; i < o.Quantity; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			// engine.TicketCode spelled without its allocation; ids are
			// [A-Za-z0-9_-.], nothing to escape.
			b = append(b, '"')
			b = append(b, o.ID...)
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if view == viewWithTickets { // not for the payment provider and the door
		b = appendBoxOffice(b, o.BoxOffice) // boxoffice.go
	}
	return append(b, '}')
}

// writeOrder answers with one order.
func writeOrder(ctx *fasthttp.RequestCtx, status int, o *engine.Order, view orderView) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := appendOrder((*buf)[:0], o, view)
	b = append(b, '\n')
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// writeOrders answers with {"orders":[...]} and, when next is not nil, a
// "next_cursor" member.
func writeOrders(ctx *fasthttp.RequestCtx, orders []engine.Order, next *string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"orders":[`...)
	for i := range orders {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOrder(b, &orders[i], viewWithTickets)
	}
	b = append(b, ']')
	if next != nil {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, *next)
	}
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}
