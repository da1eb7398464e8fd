package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// The payment provider signs each webhook call:
//
//	Onsale-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=...]
//
// Several v1 entries may be sent (a provider rotating its secret signs with
// both); one that matches any of our secrets is enough. Other schemes are
// ignored. The timestamp must be within signatureTolerance of our clock,
// both ways, so a captured call cannot be replayed later.
const (
	signatureTolerance = 300 * time.Second
	signaturesMax      = 8 // v1 entries looked at, so a header cannot make us hash without bound
)

var headerSignature = []byte("Onsale-Signature")

type signatureHeader struct {
	timestamp int64
	v1        [signaturesMax][sha256.Size]byte
	n         int
}

var (
	errSignatureMissing   = errors.New("missing Onsale-Signature header")
	errSignatureMalformed = errors.New("malformed Onsale-Signature header; expected t=<unix seconds>,v1=<hex>")
	errSignatureStale     = errors.New("the Onsale-Signature timestamp is more than 300 s away from the server's clock")
	errSignatureMismatch  = errors.New("no v1 signature of the Onsale-Signature header matches")
)

// parseSignatureHeader reads t and the v1 entries.
func parseSignatureHeader(h []byte) (signatureHeader, error) {
	var sh signatureHeader
	if len(h) == 0 {
		return sh, errSignatureMissing
	}
	haveT := false
	for len(h) > 0 {
		var item []byte
		item, h, _ = bytes.Cut(h, []byte{','})
		item = bytes.TrimSpace(item)
		k, v, ok := bytes.Cut(item, []byte{'='})
		if !ok {
			return sh, errSignatureMalformed
		}
		switch string(k) {
		case "t":
			if haveT || len(v) == 0 || len(v) > 12 {
				return sh, errSignatureMalformed
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 || v[0] == '+' {
				return sh, errSignatureMalformed
			}
			sh.timestamp, haveT = n, true
		case "v1":
			if len(v) != 2*sha256.Size {
				return sh, errSignatureMalformed
			}
			if sh.n == signaturesMax {
				continue
			}
			if _, err := hex.Decode(sh.v1[sh.n][:], v); err != nil {
				return sh, errSignatureMalformed
			}
			sh.n++
		}
	}
	if !haveT || sh.n == 0 {
		return sh, errSignatureMalformed
	}
	return sh, nil
}

// verifySignature checks the header against the raw body (tests; the
// server keeps its webhookMACs).
func verifySignature(header, body []byte, secrets [][]byte, now time.Time) error {
	return newWebhookMACs(secrets).verify(header, body, now)
}

// webhookMACs holds, per payment secret, a pool of keyed HMAC states:
// hmac.New per call set up two SHA-256 states from the key and allocated
// four times; Reset returns to the keyed state.
type webhookMACs []*sync.Pool // of *webhookMAC, one pool per secret

type webhookMAC struct {
	mac hash.Hash
	sum []byte
}

func newWebhookMACs(secrets [][]byte) webhookMACs {
	m := make(webhookMACs, len(secrets))
	for i, secret := range secrets {
		key := bytes.Clone(secret)
		m[i] = &sync.Pool{New: func() any {
			return &webhookMAC{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
		}}
	}
	return m
}

// verify checks the header against the raw body.
func (m webhookMACs) verify(header, body []byte, now time.Time) error {
	sh, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	if d := now.Unix() - sh.timestamp; d > int64(signatureTolerance/time.Second) || d < -int64(signatureTolerance/time.Second) {
		return errSignatureStale
	}
	for _, pool := range m {
		st := pool.Get().(*webhookMAC)
		st.mac.Reset()
		st.sum = strconv.AppendInt(st.sum[:0], sh.timestamp, 10)
		st.sum = append(st.sum, '.')
		st.mac.Write(st.sum)
		st.mac.Write(body)
		st.sum = st.mac.Sum(st.sum[:0])
		ok := false
		for i := 0; i < sh.n; i++ {
			ok = ok || hmac.Equal(st.sum, sh.v1[i][:])
		}
		pool.Put(st)
		if ok {
			return nil
		}
	}
	return errSignatureMismatch
}

// SignWebhook returns an Onsale-Signature header value for body, as the
// payment provider computes it. For tests, the bench harness and demos.
func SignWebhook(secret, body []byte, t time.Time) string {
	mac := hmac.New(sha256.New, secret)
	ts := strconv.FormatInt(t.Unix(), 10)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

type webhookBody struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	OrderID     string `json:"order_id"`
	AmountCents *int64 `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// webhook: POST /v1/payments/webhook. The signature is checked on the raw
// bytes before anything is parsed.
func (s *Server) webhook(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	body := ctx.PostBody()
	if err := s.webhookMACs.verify(ctx.Request.Header.PeekBytes(headerSignature), body, s.now()); err != nil {
		writeProblem(ctx, codeUnauthorized, err.Error(), -1)
		return
	}
	var ev webhookBody
	if err := decodeWebhookBody(body, &ev); err != nil { // webhook_body.go
		writeDecodeError(ctx, err)
		return
	}
	p := engine.Payment{EventID: ev.ID, OrderID: ev.OrderID, Currency: ev.Currency}
	switch ev.Type {
	case "payment.succeeded":
		p.Succeeded = true
	case "payment.failed":
	default:
		writeProblem(ctx, codeInvalidRequest, "type must be payment.succeeded or payment.failed", -1)
		return
	}
	switch {
	case ev.ID == "":
		writeProblem(ctx, codeInvalidRequest, "id (the event id) is required", -1)
		return
	case ev.OrderID == "":
		writeProblem(ctx, codeInvalidRequest, "order_id is required", -1)
		return
	case providerPaymentID(ev.ID):
		// Those ids name the provider that took the money, and the refund
		// worker sends refunds there (engine payouts.go).
		writeProblem(ctx, codeInvalidRequest, "an id of the form <provider>:<transaction> (stripe:, alipay:, wechatpay:, unionpay:) is kept for that provider's own route", -1)
		return
	case ev.AmountCents == nil || ev.Currency == "":
		writeProblem(ctx, codeInvalidRequest, "amount_cents and currency are required", -1)
		return
	}
	p.AmountCents = *ev.AmountCents
	o, outcome, err := s.eng.ApplyPayment(s.reqCtx(), p)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if outcome == engine.PaymentMismatch {
		s.log.Warn("money received does not match the order: recorded as a refund to send back",
			"order_id", o.ID, "event_id", p.EventID, "amount_cents", p.AmountCents, "currency", p.Currency)
	}
	if outcome == engine.PaymentDuplicateCharge {
		s.m.duplicateCharges.Inc()
		s.log.Warn("duplicate charge recorded: the buyer paid twice; refund it",
			"order_id", o.ID, "event_id", p.EventID, "amount_cents", p.AmountCents, "currency", p.Currency)
	}
	writePaymentAnswer(ctx, &o, outcome)
}

// writePaymentAnswer answers the provider with the order and what its
// event did: "applied" (the event moved the order) and "duplicate_charge"
// (a success that did not pay for the order, recorded for a refund). Both
// are 200: the event is durably handled and must not be sent again.
func writePaymentAnswer(ctx *fasthttp.RequestCtx, o *engine.Order, outcome engine.PaymentOutcome) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := appendOrder((*buf)[:0], o, viewNoTickets)
	b = append(b[:len(b)-1], `,"applied":`...) // reopen the order object
	b = strconv.AppendBool(b, outcome.Applied())
	b = append(b, `,"duplicate_charge":`...)
	b = strconv.AppendBool(b, outcome.DuplicateCharge())
	b = append(b, `,"mismatch":`...)
	b = strconv.AppendBool(b, outcome.Mismatch())
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

func providerPaymentID(id string) bool {
	p, _ := engine.PaymentProvider(id)
	return p != ""
}
