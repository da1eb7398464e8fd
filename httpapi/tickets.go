package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Tickets: signed codes (engine/ticketcode.go), the sales' public keys, key
// rotation and retirement, an order's tickets, the revocation feed. The
// private keys are derived from the data key on demand and never leave the
// process; the engine knows only their ids.

// ticketKeys derives the sales' ticket keys and keeps them: deriving one
// costs a scalar multiplication, verifying a code should not.
type ticketKeys struct {
	dataKey []byte
	mu      sync.RWMutex
	keys    map[ticketKeyID]ed25519.PrivateKey
}

type ticketKeyID struct {
	sale string
	kid  uint8
}

// ticketKeysMax bounds the cache; a full cache is emptied and refilled.
// Only keys of sales that exist are derived, so it holds every key of
// hundreds of sales.
const ticketKeysMax = 1 << 16

func newTicketKeys(dataKey []byte) *ticketKeys {
	return &ticketKeys{dataKey: dataKey, keys: make(map[ticketKeyID]ed25519.PrivateKey)}
}

func (k *ticketKeys) private(saleID string, kid uint8) ed25519.PrivateKey {
	id := ticketKeyID{saleID, kid}
	k.mu.RLock()
	key, ok := k.keys[id]
	k.mu.RUnlock()
	if ok {
		return key
	}
	key = engine.DeriveTicketKey(k.dataKey, saleID, int(kid))
	k.mu.Lock()
	if len(k.keys) >= ticketKeysMax {
		clear(k.keys)
	}
	k.keys[id] = key
	k.mu.Unlock()
	return key
}

func (k *ticketKeys) public(saleID string, kid uint8) ed25519.PublicKey {
	return k.private(saleID, kid).Public().(ed25519.PublicKey)
}

// verifyCode checks a scanned code's signature; the key is derived only for
// a sale that exists, so made-up codes cannot fill the cache.
func (s *Server) verifyCode(code string) (engine.TicketPayload, error) {
	return engine.VerifyTicketCode(code, func(saleID string, kid uint8) ed25519.PublicKey {
		if _, err := s.eng.SaleView(saleID); err != nil {
			return nil
		}
		return s.ticketKeys.public(saleID, kid)
	})
}

// checkInKey: GET /v1/sales/{sale_id}/checkin-key, public: the keys that
// verify the sale's codes. Scanners cache it.
func (s *Server) checkInKey(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	keys, err := s.eng.TicketKeys(s.reqCtx(), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
	s.writeTicketKeys(ctx, string(id), keys)
}

// rotateCheckInKey: POST /v1/admin/sales/{sale_id}/checkin-keys:rotate.
func (s *Server) rotateCheckInKey(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	keys, err := s.eng.RotateTicketKey(s.engineCtx(ctx), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeTicketKeys(ctx, string(id), keys)
}

// retireCheckInKey: POST /v1/admin/sales/{sale_id}/checkin-keys/{kid}:retire;
// param is "{sale_id}/checkin-keys/{kid}".
func (s *Server) retireCheckInKey(ctx *fasthttp.RequestCtx, param []byte, _ principal) {
	saleID, kidText, _ := bytes.Cut(param, checkInKeysSegment[1:])
	saleID = bytes.TrimSuffix(saleID, []byte("/"))
	kid, err := strconv.Atoi(string(kidText))
	if err != nil || kid < 1 || kid > engine.TicketKeysPerSaleMax || strconv.Itoa(kid) != string(kidText) {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("a key id is a number from 1 to %d", engine.TicketKeysPerSaleMax), -1)
		return
	}
	keys, err := s.eng.RetireTicketKey(s.engineCtx(ctx), string(saleID), kid)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeTicketKeys(ctx, string(saleID), keys)
}

func (s *Server) writeTicketKeys(ctx *fasthttp.RequestCtx, saleID string, keys []engine.TicketKey) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"sale_id":`...)
	b = appendString(b, saleID)
	b = append(b, `,"keys":[`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"kid":`...)
		b = strconv.AppendInt(b, int64(k.Kid), 10)
		b = append(b, `,"alg":"Ed25519","public_key":"`...)
		b = base64.RawURLEncoding.AppendEncode(b, s.ticketKeys.public(saleID, uint8(k.Kid)))
		b = append(b, '"')
		if k.CreatedAtMs != 0 {
			b = append(b, `,"created_at":`...)
			b = appendTime(b, k.CreatedAtMs)
		}
		if k.RetiredAtMs != 0 {
			b = append(b, `,"retired_at":`...)
			b = appendTime(b, k.RetiredAtMs)
		}
		b = append(b, `,"current":`...)
		b = strconv.AppendBool(b, k.Current)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// orderTickets: GET /v1/orders/{order_id}/tickets, by the buyer (another's
// order is reported like a missing one) or the admin. Valid and checked-in
// tickets carry their signed code; revoked ones none.
func (s *Server) orderTickets(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	ot, ok := s.readableTickets(ctx, id, who) // ticketprint.go
	if !ok {
		return
	}
	o := &ot.Order
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"order_id":`...)
	b = appendString(b, o.ID)
	b = append(b, `,"status":"`...)
	b = append(b, o.Status.String()...)
	b = append(b, `","sale_id":`...)
	b = appendString(b, o.SaleID)
	b = append(b, `,"sale_name":`...)
	b = appendString(b, ot.SaleName)
	b = append(b, `,"tier":`...)
	b = appendString(b, o.TierID)
	b = append(b, `,"tier_name":`...)
	b = appendString(b, ot.TierName)
	b = append(b, `,"holder":`...)
	b = appendString(b, s.holder(o))
	b = append(b, `,"tickets":[`...)
	for i := range ot.Tickets {
		t := &ot.Tickets[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ticket_id":`...)
		b = appendString(b, t.ID)
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(t.N), 10)
		b = append(b, `,"state":"`...)
		b = append(b, t.State.String()...)
		b = append(b, `","kid":`...)
		b = strconv.AppendInt(b, int64(t.Kid), 10)
		b = append(b, `,"issued_at":`...)
		b = appendTime(b, t.IssuedAtMs)
		b = s.appendAttendee(b, o, t.N) // realname.go
		if t.State != engine.TicketRevoked {
			b = append(b, `,"code":"`...)
			b = append(b, s.signedCode(&ot, i)...)
			b = append(b, '"')
		}
		switch {
		case t.State == engine.TicketCheckedIn:
			if t.Gate != "" {
				b = append(b, `,"gate":`...)
				b = appendString(b, t.Gate)
			}
			if t.AtMs != 0 {
				b = append(b, `,"checked_in_at":`...)
				b = appendTime(b, t.AtMs)
			}
		case t.State == engine.TicketRevoked && t.AtMs != 0:
			b = append(b, `,"revoked_at":`...)
			b = appendTime(b, t.AtMs)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// revocations: GET /v1/sales/{sale_id}/revocations?since=&limit=, door
// staff and admins: the sale's revoked tickets from a cursor on, and the
// cursor to poll from next.
func (s *Server) revocations(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if !who.allowsSale(string(id)) {
		writeProblem(ctx, codeForbidden, fmt.Sprintf("your credentials do not cover sale %q", id), -1)
		return
	}
	args := ctx.QueryArgs()
	limit := 1000
	if l := args.Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n < 1 || n > engine.RevocationsPerPageMax {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("limit must be 1 to %d", engine.RevocationsPerPageMax), -1)
			return
		}
		limit = n
	}
	list, next, err := s.eng.Revocations(s.reqCtx(), string(id), string(args.Peek("since")), limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"sale_id":`...)
	b = appendString(b, string(id))
	b = append(b, `,"revocations":[`...)
	for i := range list {
		r := &list[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ticket_id":`...)
		b = appendString(b, r.TicketID)
		b = append(b, `,"order_id":`...)
		b = appendString(b, r.OrderID)
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(r.Ticket), 10)
		b = append(b, `,"revoked_at":`...)
		b = appendTime(b, r.AtMs)
		b = append(b, '}')
	}
	b = append(b, `],"next":`...)
	b = appendString(b, next)
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}
