package httpapi

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/eticket"
)

// Printed tickets: an order's tickets as QR images and as an e-ticket PDF,
// for whoever may read the order's tickets (its buyer, a seller of its sale,
// the admin). The codes are signed here, as GET .../tickets signs them; the
// drawing is eticket's.

const (
	qrSizeDefault = 512 // pixels a side: sharp on a phone, small to send
	// ticketsCacheControl: a ticket's image is the ticket; no shared cache
	// may keep it.
	ticketsCacheControl = "private, no-store"
)

var (
	segmentTickets = []byte("/tickets/")
	suffixQRPNG    = []byte("/qr.png")
)

// readableTickets returns an order's tickets if the caller may read them,
// or answers the request itself and returns false.
func (s *Server) readableTickets(ctx *fasthttp.RequestCtx, orderID []byte, who principal) (engine.OrderTickets, bool) {
	if who.kind == principalSeller && !s.sellerMayTouchOrder(ctx, orderID, who) {
		return engine.OrderTickets{}, false // a box office prints the tickets of its own sales only
	}
	ot, err := s.eng.Tickets(s.reqCtx(), string(orderID))
	if err == nil && who.kind == principalBuyer && ot.Order.UserID != who.userID {
		err = &engine.Rejection{Code: engine.CodeUnknownOrder, Message: fmt.Sprintf("no order %q", orderID)}
	}
	if err != nil {
		s.writeError(ctx, err)
		return ot, false
	}
	return ot, true
}

// holder is the name a ticket shows: the named buyer of a box-office sale,
// else the buyer's account id.
func (s *Server) holder(o *engine.Order) string {
	if o.BoxOffice != nil && len(o.BoxOffice.Contact) > 0 {
		if name, _, err := s.openContact(o.SaleID, o.BoxOffice.Contact); err == nil {
			return name
		}
	}
	return o.UserID
}

// ticketHolder is the name ticket n shows: its attendee on a real-name
// sale (realname.go), else the order's holder.
func (s *Server) ticketHolder(o *engine.Order, n int, holder string) string {
	if n < len(o.Attendees) {
		if name := s.attendeeName(o.SaleID, &o.Attendees[n]); name != "" {
			return name
		}
	}
	return holder
}

// signedCode is ticket i's code, signed with its sale's key.
func (s *Server) signedCode(ot *engine.OrderTickets, i int) string {
	p := ot.Payload(i)
	return engine.SignTicketCode(p, s.ticketKeys.private(p.SaleID, p.Kid))
}

// ticketQR: GET /v1/orders/{order_id}/tickets/{n}/qr.png[?size=px]. The
// parameter is "{order_id}/tickets/{n}".
func (s *Server) ticketQR(ctx *fasthttp.RequestCtx, param []byte, who principal) {
	orderID, nText, _ := bytes.Cut(param, segmentTickets)
	n, err := strconv.Atoi(string(nText))
	if err != nil || n < 0 || n >= engine.QuantityPerOrderMax || strconv.Itoa(n) != string(nText) {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("a ticket number is 0 to %d", engine.QuantityPerOrderMax-1), -1)
		return
	}
	size := qrSizeDefault
	if raw := ctx.QueryArgs().Peek("size"); len(raw) > 0 {
		if size, err = strconv.Atoi(string(raw)); err != nil {
			writeProblem(ctx, codeInvalidRequest, "size is a number of pixels", -1)
			return
		}
	}
	ot, ok := s.readableTickets(ctx, orderID, who)
	if !ok {
		return
	}
	if n >= len(ot.Tickets) {
		writeProblem(ctx, string(engine.CodeUnknownTicket), fmt.Sprintf("order %s has %d tickets issued", orderID, len(ot.Tickets)), -1)
		return
	}
	if ot.Tickets[n].State == engine.TicketRevoked {
		writeProblem(ctx, string(engine.CodeTicketRevoked), "this ticket was revoked; it has no code", -1)
		return
	}
	img, err := eticket.PNG(s.signedCode(&ot, n), size)
	if err != nil {
		writeProblem(ctx, codeInvalidRequest, err.Error(), -1)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("image/png")
	ctx.Response.Header.Set("Cache-Control", ticketsCacheControl)
	ctx.SetBody(img)
}

// ticketsPDF: GET /v1/orders/{order_id}/tickets.pdf, one page per valid or
// checked-in ticket.
func (s *Server) ticketsPDF(ctx *fasthttp.RequestCtx, orderID []byte, who principal) {
	ot, ok := s.readableTickets(ctx, orderID, who)
	if !ok {
		return
	}
	pages := s.ticketPages(&ot)
	if len(pages) == 0 {
		writeProblem(ctx, string(engine.CodeTicketRevoked),
			fmt.Sprintf("order %s is %s: it has no valid ticket to print", ot.Order.ID, ot.Order.Status), -1)
		return
	}
	var out bytes.Buffer
	if err := eticket.PDF(&out, pages); err != nil {
		s.log.Error("cannot render tickets PDF", "order_id", ot.Order.ID, "err", err)
		writeProblem(ctx, codeInternal, "the tickets could not be rendered", -1)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/pdf")
	ctx.Response.Header.Set("Cache-Control", ticketsCacheControl)
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="tickets-`+ot.Order.ID+`.pdf"`)
	ctx.SetBody(out.Bytes())
}

// ticketPages are the pages of an order's valid tickets (also mailed by
// the notifier, webhooks.go).
func (s *Server) ticketPages(ot *engine.OrderTickets) []eticket.Ticket {
	holder := s.holder(&ot.Order)
	var venue string
	var startsAt time.Time
	if sl, err := s.eng.SaleView(ot.Order.SaleID); err == nil {
		venue = sl.Venue
		if sl.City != "" {
			venue = strings.TrimPrefix(venue+", "+sl.City, ", ")
		}
		if sl.StartsAtMs != 0 {
			startsAt = time.UnixMilli(sl.StartsAtMs).UTC()
		}
	}
	var pages []eticket.Ticket
	for i := range ot.Tickets {
		t := &ot.Tickets[i]
		if t.State == engine.TicketRevoked {
			continue
		}
		pages = append(pages, eticket.Ticket{
			Code: s.signedCode(ot, i), OrderID: ot.Order.ID, N: t.N,
			Event: ot.SaleName, Tier: ot.TierName, Holder: s.ticketHolder(&ot.Order, t.N, holder), Venue: venue, StartsAt: startsAt,
			IssuedAt: time.UnixMilli(t.IssuedAtMs).UTC(),
		})
	}
	return pages
}
