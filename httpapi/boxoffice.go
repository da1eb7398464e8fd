package httpapi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Box office: a seller's token on POST /v1/sales/{sale_id}/purchase sells
// for a named buyer, and POST /v1/orders/{order_id}/pay-at-counter takes the
// money. Both are scoped to the seller's sales.
//
// The buyer's name and email are personal data. The order's user id, which
// the log carries and per-user limits count, is "box:" and 20 characters of
// base32 of HMAC(key, normalized email): the same buyer always gets the same
// id, and the id names nobody. The name and email themselves are sealed
// here with AES-256-GCM (key derived from the data key, a random nonce per
// sale, the sale id as associated data) and the engine stores the sealed
// bytes beside the order; only the seller of that sale and the admin read
// them back, on the order.

type boxOfficePurchaseBody struct {
	Tier     string     `json:"tier"`
	Quantity int        `json:"quantity"`
	Buyer    *buyerBody `json:"buyer"`
}

type buyerBody struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Limits of a box-office buyer.
const (
	buyerNameRunesMax = 200
	buyerEmailLenMax  = 254 // RFC 5321's path limit, less the brackets
)

// boxOfficePurchase answers a seller's purchase: as a buyer's (201 new, 200
// replayed with the same Idempotency-Key), with the buyer on the order.
func (s *Server) boxOfficePurchase(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	if !who.allowsSale(string(saleID)) {
		writeProblem(ctx, codeForbidden, fmt.Sprintf("credential %s may not sell for sale %q", who.cred.ID, saleID), -1)
		return
	}
	key := ctx.Request.Header.PeekBytes(headerIdempotencyKey)
	if code, msg := checkIdempotencyKey(key); code != "" {
		writeProblem(ctx, code, msg, -1)
		return
	}
	var body boxOfficePurchaseBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if body.Tier == "" {
		writeProblem(ctx, codeInvalidRequest, "tier is required", -1)
		return
	}
	if body.Buyer == nil {
		writeProblem(ctx, codeInvalidRequest, `a seller names the buyer: "buyer": {"name": ..., "email": ...}`, -1)
		return
	}
	email, problem := checkBuyer(body.Buyer)
	if problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		return
	}
	o, created, err := s.eng.BoxOfficePurchase(s.engineCtx(ctx), engine.PurchaseRequest{
		SaleID: string(saleID), TierID: body.Tier, Quantity: body.Quantity,
		UserID: s.boxOfficeUserID(email), IdempotencyKey: string(key),
	}, who.cred.ID, s.sealContact(string(saleID), body.Buyer.Name, email))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
		s.m.boxOfficeSales.Inc()
	}
	ctx.Response.Header.SetCanonical(headerLocation, []byte("/v1/orders/"+o.ID))
	s.writeOrderWithBuyer(ctx, status, &o)
}

// checkBuyer validates a buyer and returns the normalized email: name 1 to
// 200 characters of text, an email that looks deliverable (one @, a local
// part, a domain with a dot, no spaces or controls). Whether it is the
// buyer's own, no server can tell.
func checkBuyer(b *buyerBody) (email, problem string) {
	name := b.Name
	n := utf8.RuneCountInString(name)
	if n == 0 || n > buyerNameRunesMax || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", fmt.Sprintf("buyer.name must be 1 to %d characters of text", buyerNameRunesMax)
	}
	email, ok := checkEmail(b.Email)
	if !ok {
		return "", "buyer.email must be an email address such as ann@example.com"
	}
	return email, ""
}

// checkEmail normalises an email (trimmed, lower case) and reports whether
// it looks deliverable (one @, a local part, a domain with a dot, no spaces
// or controls). Profiles (profile.go) use it too.
func checkEmail(raw string) (string, bool) {
	email := strings.ToLower(strings.TrimSpace(raw))
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || len(local) > 64 || len(email) > buyerEmailLenMax || strings.Contains(domain, "@") ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") || !utf8.ValidString(email) ||
		strings.IndexFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", false
	}
	return email, true
}

// boxOfficeUserID is the user id of a box-office buyer: the same for every
// spelling of one email, and no email in it.
func (s *Server) boxOfficeUserID(email string) string {
	m := hmac.New(sha256.New, s.credKeys.buyerID)
	m.Write([]byte(email))
	sum := m.Sum(nil)
	return "box:" + credentialIDEncoding.EncodeToString(sum)[:20]
}

// Sealed contact: nonce(12) | AES-256-GCM(uvarint(len(name)) name email),
// with "onsale box office/" + sale id as associated data, so a contact moved
// to another sale's order does not open.
func (s *Server) sealContact(saleID, name, email string) []byte {
	plain := binary.AppendUvarint(nil, uint64(len(name)))
	plain = append(append(plain, name...), email...)
	return sealData(s.credKeys.contact, "onsale box office/"+saleID, plain)
}

var errContactSeal = errors.New("httpapi: cannot open a sealed contact")

func (s *Server) openContact(saleID string, sealed []byte) (name, email string, err error) {
	plain, err := openData(s.credKeys.contact, "onsale box office/"+saleID, sealed)
	if err != nil {
		return "", "", errContactSeal
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || n > uint64(len(plain)-w) {
		return "", "", errContactSeal
	}
	return string(plain[w : w+int(n)]), string(plain[w+int(n):]), nil
}

// sealData encrypts personal data at rest: nonce(12) | AES-256-GCM(plain),
// with a key derived from the data key for one purpose (deriveDataKey) and
// associated data that binds it to its place (a sale, an account), so that
// bytes moved elsewhere do not open. Box-office contacts, attendees' names
// (realname.go) and profiles (profile.go) use it. Sealing is rare next to
// purchases: the cipher is made per use rather than kept.
func sealData(key []byte, ad string, plain []byte) []byte {
	aead := newDataAEAD(key)
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(out) // never fails (Go 1.24+)
	return aead.Seal(out, out, plain, []byte(ad))
}

var errDataSeal = errors.New("httpapi: cannot open sealed data")

// openData opens what sealData sealed with the same key and associated data.
func openData(key []byte, ad string, sealed []byte) ([]byte, error) {
	aead := newDataAEAD(key)
	if len(sealed) < aead.NonceSize() {
		return nil, errDataSeal
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(ad))
	if err != nil {
		return nil, errDataSeal
	}
	return plain, nil
}

func newDataAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("httpapi: data key: %v", err)) // 32 bytes by construction
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("httpapi: data cipher: %v", err))
	}
	return aead
}

// sellerMayTouchOrder answers 403 and returns false when the order's sale
// is not one of the seller's. An order id names its sale before its last
// dot; one without a dot is no order, and the engine says so.
func (s *Server) sellerMayTouchOrder(ctx *fasthttp.RequestCtx, orderID []byte, who principal) bool {
	id := string(orderID)
	dot := strings.LastIndexByte(id, '.')
	if dot < 0 || who.allowsSale(id[:dot]) {
		return true
	}
	writeProblem(ctx, codeForbidden, fmt.Sprintf("credential %s may not act on orders of sale %q", who.cred.ID, id[:dot]), -1)
	return false
}

type counterBody struct {
	Method    string `json:"method"`
	Reference string `json:"reference"`
}

// payAtCounter: POST /v1/orders/{order_id}/pay-at-counter {"method":
// "cash"|"card", "reference": optional}, with an Idempotency-Key. The
// engine decides (decideCounterPay): a pending order becomes paid; a paid
// one is answered as it is; an expired one follows the late-payment rule.
func (s *Server) payAtCounter(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if !s.sellerMayTouchOrder(ctx, id, who) {
		return
	}
	key := ctx.Request.Header.PeekBytes(headerIdempotencyKey)
	if code, msg := checkIdempotencyKey(key); code != "" {
		writeProblem(ctx, code, msg, -1)
		return
	}
	if len(key) > engine.CounterKeyLenMax {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("the Idempotency-Key of a counter payment must be at most %d characters", engine.CounterKeyLenMax), -1)
		return
	}
	var body counterBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if body.Method != "cash" && body.Method != "card" {
		writeProblem(ctx, codeInvalidRequest, `method must be "cash" or "card"`, -1)
		return
	}
	if len(body.Reference) > engine.CounterReferenceLenMax || strings.IndexFunc(body.Reference, unicode.IsControl) >= 0 {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("reference must be at most %d bytes of text", engine.CounterReferenceLenMax), -1)
		return
	}
	o, err := s.eng.PayAtCounter(s.engineCtx(ctx), string(id), string(key), engine.CounterPayment{
		SellerID: who.cred.ID, Method: body.Method, Reference: body.Reference,
	})
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeOrderWithBuyer(ctx, fasthttp.StatusOK, &o)
}

// appendBoxOffice appends an order's channel and, for a box-office order or
// a counter payment, who sold it and how it was paid (never the buyer:
// writeOrderWithBuyer adds that for those who may read it).
func appendBoxOffice(b []byte, bo *engine.BoxOffice) []byte {
	if bo == nil {
		return append(b, `,"channel":"online"`...)
	}
	b = append(b, `,"channel":"`...)
	b = append(b, bo.Channel()...)
	b = append(b, '"')
	if bo.SellerID != "" {
		b = append(b, `,"seller_id":`...)
		b = appendString(b, bo.SellerID)
	}
	if c := bo.Counter; c != nil {
		b = append(b, `,"counter_payment":{"seller_id":`...)
		b = appendString(b, c.SellerID)
		b = append(b, `,"method":`...)
		b = appendString(b, c.Method)
		b = append(b, `,"reference":`...)
		b = appendString(b, c.Reference)
		b = append(b, `,"at":`...)
		b = appendTime(b, c.AtMs)
		b = append(b, '}')
	}
	return b
}

// writeOrderWithBuyer answers with an order and, if it was sold at the box
// office, its buyer's name and email, opened from the sealed contact.
func (s *Server) writeOrderWithBuyer(ctx *fasthttp.RequestCtx, status int, o *engine.Order) {
	b := appendOrder(nil, o, viewWithTickets)
	if o.BoxOffice != nil && len(o.BoxOffice.Contact) > 0 {
		name, email, err := s.openContact(o.SaleID, o.BoxOffice.Contact)
		if err != nil {
			s.log.Error("box-office buyer contact does not open; was the data key changed?", "order", o.ID, "err", err)
		} else {
			b = append(b[:len(b)-1], `,"buyer":{"name":`...)
			b = appendString(b, name)
			b = append(b, `,"email":`...)
			b = appendString(b, email)
			b = append(b, "}}"...)
		}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
