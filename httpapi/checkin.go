package httpapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// The door. A scanner sends the code it read; the handler verifies the
// signature (outside the shards: a forged or malformed code never reaches
// one) and checks that the caller may scan the sale the code names; the
// sale's shard decides (engine/checkin.go). An offline scanner uploads its
// scans with the time of each (POST /v1/checkin:sync).

type checkInBody struct {
	Code   string `json:"code"`
	Gate   string `json:"gate"`
	Ticket string `json:"ticket"` // a plain ticket id: the admin token only
}

// syncScansMax bounds an upload so that it fits the general body limit
// (a scan is under 300 bytes of JSON); the engine takes up to
// engine.ScansPerBatchMax.
const syncScansMax = 200

// checkIn: POST /v1/checkin {"code", "gate"}: 200 admitted; 409
// already_checked_in (with the first gate and time), ticket_revoked or
// exchange_in_progress (engine/xsession.go); 422
// invalid_ticket for a code that does not verify; 403 for a sale the
// caller may not scan. The admin may still send {"ticket": "<order_id>.<n>"}.
func (s *Server) checkIn(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	var body checkInBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	switch {
	case body.Ticket != "" && body.Code != "":
		writeProblem(ctx, codeInvalidRequest, "send code or ticket, not both", -1)
	case body.Ticket != "":
		s.checkInTicket(ctx, &body, who)
	case body.Code == "":
		writeProblem(ctx, codeInvalidRequest, "code is required: the text of the ticket's QR code", -1)
	default:
		s.checkInCode(ctx, &body, who)
	}
}

func (s *Server) checkInCode(ctx *fasthttp.RequestCtx, body *checkInBody, who principal) {
	if !engine.ValidGate(body.Gate) {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("gate is required: 1 to %d bytes naming where the scan was made", engine.GateLenMax), -1)
		return
	}
	p, err := s.verifyCode(body.Code)
	if err != nil {
		writeProblem(ctx, string(engine.CodeInvalidTicket), "this is not a ticket of this server: "+codeProblem(err), -1)
		return
	}
	if !who.allowsSale(p.SaleID) {
		writeProblem(ctx, codeForbidden, fmt.Sprintf("your credentials do not cover sale %q", p.SaleID), -1)
		return
	}
	a, err := s.eng.CheckInCode(s.engineCtx(ctx), body.Gate, engine.Scan{Code: p})
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := appendAdmission(append((*buf)[:0], '{'), &a)
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// codeProblem words a code's parse or signature error for the door.
func codeProblem(err error) string {
	const prefix = "engine: ticket code: "
	msg := err.Error()
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

// appendAdmission appends an admitted scan's members (schema Admission).
func appendAdmission(b []byte, a *engine.Admission) []byte {
	b = append(b, `"admitted":true,"ticket_id":`...)
	b = appendString(b, a.TicketID)
	b = append(b, `,"order_id":`...)
	b = appendString(b, a.OrderID)
	b = append(b, `,"ticket_index":`...)
	b = strconv.AppendInt(b, int64(a.Ticket), 10)
	b = append(b, `,"tier":`...)
	b = appendString(b, a.TierID)
	b = append(b, `,"tier_name":`...)
	b = appendString(b, a.TierName)
	b = append(b, `,"holder":`...)
	b = appendString(b, a.UserID)
	b = append(b, `,"gate":`...)
	b = appendString(b, a.Gate)
	b = append(b, `,"checked_in_at":`...)
	b = appendTime(b, a.AtMs)
	if a.Repeated {
		b = append(b, `,"repeated":true`...)
	}
	return b
}

// appendFirstAdmission appends, to an already_checked_in problem, where and
// when the ticket was first admitted (unknown for admissions logged before
// gates were recorded).
func appendFirstAdmission(b []byte, first *engine.Admission) []byte {
	if first.Gate != "" {
		b = append(b, `,"first_gate":`...)
		b = appendString(b, first.Gate)
	}
	if first.AtMs != 0 {
		b = append(b, `,"first_checked_in_at":`...)
		b = appendTime(b, first.AtMs)
	}
	return b
}

// checkInTicket admits a plain ticket id, for the admin only: door staff
// scan signed codes, which a plain id is not.
func (s *Server) checkInTicket(ctx *fasthttp.RequestCtx, body *checkInBody, who principal) {
	if who.kind != principalAdmin {
		writeProblem(ctx, codeForbidden, "plain ticket ids are for the admin token; scan the ticket's code", -1)
		return
	}
	c, err := s.eng.CheckInTicket(s.engineCtx(ctx), body.Ticket, body.Gate)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"ticket":`...)
	b = appendString(b, body.Ticket)
	b = append(b, `,"ticket_index":`...)
	b = strconv.AppendInt(b, int64(c.Ticket), 10)
	b = append(b, `,"order":`...)
	b = appendOrder(b, &c.Order, viewNoTickets)
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

type syncBody struct {
	Gate  string     `json:"gate"`
	Scans []syncScan `json:"scans"`
}

type syncScan struct {
	Code      string `json:"code"`
	ScannedAt string `json:"scanned_at"`
}

// checkInSync: POST /v1/checkin:sync {"gate", "scans": [{"code",
// "scanned_at"}]}: an offline scanner's scans, decided in order, each at its
// own time; one answer per scan, in order. Sending the same upload again
// (after a lost answer) gives the same answers.
func (s *Server) checkInSync(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	var body syncBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	switch {
	case !engine.ValidGate(body.Gate):
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("gate is required: 1 to %d bytes naming where the scans were made", engine.GateLenMax), -1)
		return
	case len(body.Scans) > syncScansMax:
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("at most %d scans per upload; send the rest in the next", syncScansMax), -1)
		return
	}
	results := make([]engine.ScanResult, len(body.Scans))
	scans := make([]engine.Scan, 0, len(body.Scans))
	sent := make([]int, 0, len(body.Scans)) // scans[i] is body.Scans[sent[i]]
	for i, sc := range body.Scans {
		at, err := time.Parse(time.RFC3339Nano, sc.ScannedAt)
		if err != nil || at.UnixMilli() <= 0 {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("scans[%d].scanned_at must be an RFC 3339 time", i), -1)
			return
		}
		p, err := s.verifyCode(sc.Code)
		switch {
		case err != nil:
			results[i].Err = &engine.Rejection{Code: engine.CodeInvalidTicket, Message: "this is not a ticket of this server: " + codeProblem(err)}
		case !who.allowsSale(p.SaleID):
			results[i].Err = &engine.Rejection{Code: codeForbidden, Message: fmt.Sprintf("your credentials do not cover sale %q", p.SaleID)}
		default:
			scans = append(scans, engine.Scan{Code: p, ScannedAtMs: at.UnixMilli()})
			sent = append(sent, i)
		}
	}
	decided, err := s.eng.CheckInBatch(s.engineCtx(ctx), body.Gate, scans)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	for j, r := range decided {
		results[sent[j]] = r
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	buf := getBuffer()
	b := append((*buf)[:0], `{"gate":`...)
	b = appendString(b, body.Gate)
	b = append(b, `,"results":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		if rej := results[i].Err; rej != nil {
			b = append(b, `"admitted":false,"code":`...)
			b = appendString(b, string(rej.Code))
			b = append(b, `,"detail":`...)
			b = appendString(b, rej.Message)
			if rej.First != nil {
				b = appendFirstAdmission(b, rej.First)
			}
		} else {
			b = appendAdmission(b, &results[i].Admission)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}
