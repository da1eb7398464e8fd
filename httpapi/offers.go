package httpapi

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// The lottery's and the waitlist's routes (engine/offers.go holds the
// rules):
//
//	POST   /v1/sales/{sale_id}/queue         on a lottery sale: register {tier, quantity, attendees}
//	GET    /v1/sales/{sale_id}/queue/me      on a lottery sale: the registration (schema OfferStatus)
//	GET    /v1/sales/{sale_id}/queue/draw    the lottery's draw, in the queue's form (queue.go)
//	POST   /v1/sales/{sale_id}/waitlist      register {tier, quantity, attendees}
//	GET    /v1/sales/{sale_id}/waitlist/me   the registration
//	DELETE /v1/sales/{sale_id}/waitlist/me   leave (a waiting registration)
//
// A registration is known by the queue's join id (queue.go: a keyed hash
// of the user id), so the published draw names no user. An offer is an
// order of the buyer's (GET /v1/me/orders), paid like any other.

// offerBody is a registration as a buyer sends it.
type offerBody struct {
	Tier      string         `json:"tier"`
	Quantity  int            `json:"quantity"`
	Attendees []attendeeBody `json:"attendees"` // real-name sales (realname.go)
}

// queueJoinBody is a queue join on a real-name sale: the buyer's document.
type queueJoinBody struct {
	DocumentType   string `json:"document_type"`
	DocumentNumber string `json:"document_number"`
}

// waitlistBody is a sale's waitlist as an admin writes it.
type waitlistBody struct {
	Enabled          bool  `json:"enabled"`
	MaxQuantity      int   `json:"max_quantity"`
	PayWithinSeconds int64 `json:"pay_within_seconds"`
}

// offerConfig converts the sale's lottery (a queue of mode "lottery") and
// waitlist; the engine validates the values.
func offerConfig(q *queueBody, w *waitlistBody, cfg *engine.SaleConfig) string {
	if q != nil && q.Mode == "lottery" {
		if q.AdmitRate != 0 || q.AdmissionTTLSeconds != 0 {
			return "queue: a lottery has no admit_rate or admission_ttl_seconds"
		}
		if q.RegistrationClosesAt == nil || q.RegistrationClosesAt.UnixMilli() <= 0 {
			return "queue.registration_closes_at is required for a lottery (RFC 3339)"
		}
		l := engine.LotteryConfig{RegistrationClosesAtMs: q.RegistrationClosesAt.UnixMilli(), PayWithinMs: q.PayWithinSeconds * 1000}
		cfg.Offers = &engine.OffersConfig{Lottery: l}
		if l.PayWithinMs <= 0 || q.PayWithinSeconds > engine.OfferPayWithinMsMax/1000 {
			return fmt.Sprintf("queue.pay_within_seconds must be %d to %d", engine.OfferPayWithinMsMin/1000, engine.OfferPayWithinMsMax/1000)
		}
	} else if q != nil && (q.RegistrationClosesAt != nil || q.PayWithinSeconds != 0) {
		return "queue: registration_closes_at and pay_within_seconds are for mode lottery"
	}
	if w != nil {
		if w.PayWithinSeconds < 0 || w.PayWithinSeconds > engine.OfferPayWithinMsMax/1000 {
			return fmt.Sprintf("waitlist.pay_within_seconds must be %d to %d", engine.OfferPayWithinMsMin/1000, engine.OfferPayWithinMsMax/1000)
		}
		if w.Enabled {
			if cfg.Offers == nil {
				cfg.Offers = &engine.OffersConfig{}
			}
			cfg.Offers.Waitlist = engine.WaitlistConfig{Enabled: true, MaxQuantity: w.MaxQuantity, PayWithinMs: w.PayWithinSeconds * 1000}
		}
	}
	return ""
}

// isLottery says whether a sale's published view is a lottery's.
func (s *Server) isLottery(saleID string) bool {
	v, _ := s.eng.SaleView(saleID)
	return v != nil && v.LotteryRule() != (engine.LotteryConfig{})
}

// offerRegister: POST /v1/sales/{sale_id}/waitlist, and POST .../queue on
// a lottery sale. 201 with a new registration, 200 with the one held.
func (s *Server) offerRegister(ctx *fasthttp.RequestCtx, saleID []byte, who principal, bk engine.OfferBook) {
	if s.overUserRate(ctx, routeQueueJoin, who) || s.overAddrRate(ctx) {
		return
	}
	var body offerBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if body.Tier == "" {
		writeProblem(ctx, codeInvalidRequest, "tier is required", -1)
		return
	}
	id := string(saleID)
	attendees, problem := s.sealAttendees(id, body.Attendees) // realname.go
	if problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		return
	}
	st, err := s.eng.OfferRegister(s.reqCtx(), id, bk, engine.OfferRequest{UserID: who.userID, JoinID: s.queue.joinIDOf(id, who.userID),
		TierID: body.Tier, Quantity: body.Quantity, Attendees: attendees})
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if st.Created {
		status = fasthttp.StatusCreated
	}
	s.writeOfferStatus(ctx, status, id, &st)
}

// offerMe: GET /v1/sales/{sale_id}/waitlist/me, and GET .../queue/me on a
// lottery sale.
func (s *Server) offerMe(ctx *fasthttp.RequestCtx, saleID []byte, who principal, bk engine.OfferBook) {
	id := string(saleID)
	st, err := s.eng.OfferStatusOf(s.reqCtx(), id, bk, s.queue.joinIDOf(id, who.userID))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeOfferStatus(ctx, fasthttp.StatusOK, id, &st)
}

func (s *Server) waitlistJoin(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	s.offerRegister(ctx, saleID, who, engine.BookWaitlist)
}

func (s *Server) waitlistMe(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	s.offerMe(ctx, saleID, who, engine.BookWaitlist)
}

// waitlistLeave: DELETE /v1/sales/{sale_id}/waitlist/me.
func (s *Server) waitlistLeave(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	id := string(saleID)
	st, err := s.eng.OfferLeave(s.reqCtx(), id, s.queue.joinIDOf(id, who.userID))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeOfferStatus(ctx, fasthttp.StatusOK, id, &st)
}

// queueJoinDocument reads the document of a join on a real-name sale: nil
// without a body (the engine refuses that on a real-name sale), false when
// it answered a problem.
func (s *Server) queueJoinDocument(ctx *fasthttp.RequestCtx) (*[32]byte, bool) {
	if len(bytes.TrimSpace(ctx.PostBody())) == 0 {
		return nil, true
	}
	var body queueJoinBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return nil, false
	}
	number, problem := normaliseDocument(body.DocumentType, body.DocumentNumber) // realname.go
	if problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		return nil, false
	}
	h := s.documentHash(body.DocumentType, number)
	return &h, true
}

// writeOfferStatus answers a registration (schema OfferStatus). On a
// lottery an offer is "won".
func (s *Server) writeOfferStatus(ctx *fasthttp.RequestCtx, status int, saleID string, st *engine.OfferStatus) {
	b := append(make([]byte, 0, 384), `{"sale_id":`...)
	b = appendString(b, saleID)
	b = append(b, `,"book":"`...)
	b = append(b, st.Book.String()...)
	b = append(b, `","state":"`...)
	state := st.State.String()
	if st.Book == engine.BookLottery && st.State == engine.OfferOffered {
		state = "won"
	}
	b = append(b, state...)
	b = append(b, `","tier":`...)
	b = appendString(b, st.TierID)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, int64(st.Quantity), 10)
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, int64(st.Rank), 10)
	b = append(b, `,"ahead":`...)
	b = strconv.AppendInt(b, int64(st.Ahead), 10)
	b = append(b, `,"registered":`...)
	b = strconv.AppendInt(b, int64(st.Registered), 10)
	if st.Book == engine.BookLottery {
		b = append(b, `,"drawn":`...)
		b = strconv.AppendBool(b, st.Drawn)
	}
	if st.OrderID != "" {
		b = append(b, `,"order_id":`...)
		b = appendString(b, st.OrderID)
		b = append(b, `,"pay_by":`...)
		b = appendTime(b, st.PayByMs)
	}
	b = append(b, "}\n"...)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// appendOffers appends a sale's lottery (as its queue, mode "lottery")
// and waitlist to its JSON (schema Sale).
func appendOffers(b []byte, sl *engine.Sale) []byte {
	n := sl.QueueCounts // a lottery's registrations are its Joined
	if l := sl.LotteryRule(); l != (engine.LotteryConfig{}) {
		b = append(b, `,"queue":{"mode":"lottery","registration_closes_at":`...)
		b = appendTime(b, l.RegistrationClosesAtMs)
		b = append(b, `,"pay_within_seconds":`...)
		b = strconv.AppendInt(b, l.PayWithinMs/1000, 10)
		if n != nil {
			b = append(b, `,"seed_sha256":"`...)
			b = hex.AppendEncode(b, n.Commitment[:])
			b = append(b, `","registered":`...)
			b = strconv.AppendInt(b, int64(n.Joined), 10)
			b = append(b, `,"drawn":`...)
			b = strconv.AppendBool(b, n.Drawn)
		}
		b = append(b, '}')
	}
	if w := sl.WaitlistRule(); w.Enabled {
		b = append(b, `,"waitlist":{"enabled":true,"max_quantity":`...)
		b = strconv.AppendInt(b, int64(w.MaxQuantity), 10)
		b = append(b, `,"pay_within_seconds":`...)
		b = strconv.AppendInt(b, w.PayWithinMs/1000, 10)
		if n != nil {
			b = append(b, `,"registered":`...)
			b = strconv.AppendInt(b, int64(n.WaitlistRegistered), 10)
		}
		b = append(b, '}')
	}
	return b
}

// offerRoute picks the route of /v1/sales/{sale_id}/waitlist/me by method.
func offerRoute(r route, method []byte) route {
	if r == routeWaitlistMe && bytes.Equal(method, []byte("DELETE")) {
		return routeWaitlistLeave
	}
	return r
}
