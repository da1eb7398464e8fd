package httpapi

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

type purchaseBody struct {
	Tier     string `json:"tier"`
	Quantity int    `json:"quantity"`
	Coupon   string `json:"coupon"` // optional (coupons.go)

	Attendees []attendeeBody `json:"attendees"` // real-name sales (realname.go)
}

var (
	headerIdempotencyKey = []byte("Idempotency-Key")
	headerLocation       = []byte("Location")
	locationOrderPrefix  = []byte("/v1/orders/")
)

// purchase: POST /v1/sales/{sale_id}/purchase, the hot path. 201 with a new
// pending order, 200 with the order an earlier request with the same
// Idempotency-Key made. A seller's token sells at the box office instead
// (boxoffice.go).
func (s *Server) purchase(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	if who.kind == principalSeller {
		s.boxOfficePurchase(ctx, saleID, who)
		return
	}
	if s.overUserRate(ctx, routePurchase, who) {
		s.m.purchase(codeRateLimited)
		return
	}
	key := ctx.Request.Header.PeekBytes(headerIdempotencyKey)
	if code, msg := checkIdempotencyKey(key); code != "" {
		writeProblem(ctx, code, msg, -1)
		s.m.purchase(code)
		return
	}
	var body purchaseBody
	if err := decodePurchaseBody(ctx.PostBody(), &body); err != nil {
		s.m.purchase(writeDecodeError(ctx, err))
		return
	}
	if body.Tier == "" {
		writeProblem(ctx, codeInvalidRequest, "tier is required", -1)
		s.m.purchase(codeInvalidRequest)
		return
	}
	attendees, problem := s.sealAttendees(string(saleID), body.Attendees) // realname.go
	if problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		s.m.purchase(codeInvalidRequest)
		return
	}
	admission, ok := s.purchaseAdmission(ctx, saleID, who.userID) // queue.go
	if !ok {
		writeProblem(ctx, string(engine.CodeAdmissionInvalid), "the Onsale-Admission token is not one this sale gave you", -1)
		s.m.purchase(string(engine.CodeAdmissionInvalid))
		return
	}
	o, created, err := s.eng.Purchase(s.reqCtx(), engine.PurchaseRequest{
		SaleID:         string(saleID), // copies: the engine keeps it past this request
		TierID:         body.Tier,
		Quantity:       body.Quantity,
		UserID:         who.userID,
		IdempotencyKey: string(key),
		Coupon:         body.Coupon,
		Attendees:      attendees,
		Admission:      admission,
	})
	if err != nil {
		s.m.purchase(s.writeError(ctx, err))
		return
	}
	status := fasthttp.StatusOK
	if created {
		status = fasthttp.StatusCreated
		s.m.purchase(outcomeCreated)
	} else {
		s.m.purchase(outcomeReplayed)
	}
	buf := getBuffer()
	loc := append(append((*buf)[:0], locationOrderPrefix...), o.ID...)
	ctx.Response.Header.SetCanonical(headerLocation, loc)
	putBuffer(buf, loc)
	writeOrder(ctx, status, &o, viewWithTickets)
}

// checkIdempotencyKey returns the problem code and sentence of what is
// wrong with an Idempotency-Key, or "" twice: a missing key is 400 (as the
// IETF Idempotency-Key draft says), a malformed one 422.
func checkIdempotencyKey(key []byte) (code, msg string) {
	if len(key) == 0 {
		return codeIdempotencyKeyMissing, "the Idempotency-Key header is required: a unique string per purchase, reused only to retry it"
	}
	if len(key) > engine.IdempotencyKeyLenMax {
		return codeInvalidRequest, fmt.Sprintf("the Idempotency-Key must be at most %d characters", engine.IdempotencyKeyLenMax)
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return codeInvalidRequest, "the Idempotency-Key must be printable ASCII without spaces"
		}
	}
	return "", ""
}

// getOrder: GET /v1/orders/{order_id}; a buyer sees only their own orders
// (another's is reported exactly like a missing one), a seller the orders
// of its sales (another sale's is 403), the admin any. Sellers and the
// admin see a box-office buyer's name and email.
func (s *Server) getOrder(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if who.kind == principalSeller && !s.sellerMayTouchOrder(ctx, id, who) {
		return
	}
	o, err := s.eng.Order(s.reqCtx(), string(id))
	if err == nil && who.kind == principalBuyer && o.UserID != who.userID {
		err = &engine.Rejection{Code: engine.CodeUnknownOrder, Message: fmt.Sprintf("no order %q", id)}
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if who.kind == principalSeller || who.kind == principalAdmin {
		s.writeOrderWithBuyer(ctx, fasthttp.StatusOK, &o)
		return
	}
	writeOrder(ctx, fasthttp.StatusOK, &o, viewWithTickets)
}

// cancelOrder: POST /v1/orders/{order_id}/cancel, by its buyer or the admin.
// A buyer's cancels take from the same bucket as their purchases.
func (s *Server) cancelOrder(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if s.overUserRate(ctx, routeCancelOrder, who) {
		return
	}
	o, err := s.eng.Cancel(s.engineCtx(ctx), string(id), who.userID) // "" for the admin
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeOrder(ctx, fasthttp.StatusOK, &o, viewWithTickets)
}

// myOrders: GET /v1/me/orders[?sale_id=], newest first.
func (s *Server) myOrders(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	orders, err := s.eng.UserOrders(s.reqCtx(), who.userID, string(ctx.QueryArgs().Peek("sale_id")))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeOrders(ctx, orders, nil)
}

type refundBody struct {
	// Force refunds an order whose tickets were checked in: the money goes
	// back, the used tickets stay sold.
	Force bool `json:"force"`
}

// refund: POST /v1/admin/orders/{order_id}/refund, body optional:
// {"force": true}.
func (s *Server) refund(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	var body refundBody
	if raw := ctx.PostBody(); len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, &body); err != nil {
			writeProblem(ctx, codeInvalidRequest, err.Error(), -1)
			return
		}
	}
	o, err := s.eng.Refund(s.engineCtx(ctx), string(id), body.Force)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeOrder(ctx, fasthttp.StatusOK, &o, viewWithTickets)
}

// writeOrdersCSV answers an export page as CSV; the next page's cursor is
// in the Next-Cursor header (absent on the last page).
func writeOrdersCSV(ctx *fasthttp.RequestCtx, orders []engine.Order, next string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	if next != "" {
		ctx.Response.Header.Set("Next-Cursor", next)
	}
	w := csv.NewWriter(ctx.Response.BodyWriter())
	w.Write(orderCSVHeader)
	for i := range orders {
		writeOrderCSV(w, &orders[i])
	}
	w.Flush()
}

var orderCSVHeader = []string{"order_id", "status", "needs_refund", "sale_id", "tier", "quantity", "amount_cents",
	"currency", "user_id", "created_at", "expires_at", "updated_at", "checked_in", "duplicate_charges"}

// writeOrderCSV writes one order's row; the paged export and the streaming
// one (exports.go) share it.
func writeOrderCSV(w *csv.Writer, o *engine.Order) {
	var checked []string
	for t := 0; t < o.Quantity && t < 64; t++ {
		if o.CheckedIn&(1<<t) != 0 {
			checked = append(checked, strconv.Itoa(t))
		}
	}
	var charges []string
	for _, c := range o.DuplicateCharges {
		charges = append(charges, csvSafe(c.EventID)+"="+strconv.FormatInt(c.AmountCents, 10)+"@"+formatTime(c.AtMs))
	}
	w.Write([]string{
		o.ID, o.Status.String(), strconv.FormatBool(o.NeedsRefund), o.SaleID, o.TierID,
		strconv.Itoa(o.Quantity), strconv.FormatInt(o.AmountCents, 10), o.Currency, csvSafe(o.UserID),
		formatTime(o.CreatedAtMs), formatTime(o.ExpiresAtMs), formatTime(o.UpdatedAtMs),
		strings.Join(checked, " "), strings.Join(charges, " "),
	})
}

// csvSafe defuses a value a spreadsheet would run as a formula (user ids
// come from tokens, which frontends mint).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
