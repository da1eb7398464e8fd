package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Audit trail, the HTTP side. A mutation asked by the admin token, the
// door token, a staff or a seller credential carries an engine.AuditEntry
// (who, what, target, from where, request id) into the engine, which
// records it in the same log entry as the action (engine/audit.go). Buyers
// are not audited, and their routes do no audit work at all: the audit
// starts after authorization, for the routes below and non-buyers only.
// GET /v1/admin/audit lists the entries.
//
// Request ids: an audited request keeps a sane X-Request-Id (1 to 128
// bytes of [A-Za-z0-9._:-]) or gets a generated one; either is echoed in
// the response's X-Request-Id and recorded.

// auditedRoutes are the mutations recorded when a non-buyer asks them.
var auditedRoutes = [routeCount]bool{
	routeAdminPutSale: true, routeAdminCloseSale: true, routeAdminReopenSale: true, routeAdminLoadSales: true,
	routeAdminRefund: true, routeCancelOrder: true, routeCheckIn: true, routeCheckInSync: true,
	routeAdminCreateCredential: true, routeAdminRevokeCredential: true, routePayAtCounter: true,
	routePurchase: true, routeAdminRotateKey: true, routeAdminRetireKey: true, routeAdminBackup: true,
	routeAdminCreateCoupon: true, routeAdminPatchCoupon: true,
	routeAdminCreateWebhook: true, routeAdminDeleteWebhook: true, routeAdminRedeliver: true, // webhooks.go
	routeAdminSettleRefund: true, // refundrules.go
	routeAdminArchiveSale:  true, routeAdminUnarchiveSale: true,
}

// auditUserValue is the RequestCtx user value holding the request's entry.
const auditUserValue = "onsale.audit"

const requestIDLenMax = 128

// startAudit attaches the audit entry of an audited request by a
// non-buyer, and its request id. It runs after authorization.
func (s *Server) startAudit(ctx *fasthttp.RequestCtx, r route, param []byte, who principal) {
	if !auditedRoutes[r] {
		return
	}
	a := &engine.AuditEntry{Action: routes[r].name, Target: string(param), Remote: ctx.RemoteIP().String()}
	switch who.kind {
	case principalAdmin:
		a.Actor, a.Role = "admin", "admin"
	case principalDoor:
		a.Actor, a.Role = "door", "door"
	case principalStaff:
		a.Actor, a.Role = who.cred.ID, "staff"
	case principalSeller:
		a.Actor, a.Role = who.cred.ID, "seller"
	default:
		return // buyers
	}
	id := ctx.Request.Header.Peek("X-Request-Id")
	if saneRequestID(id) {
		a.RequestID = string(id)
	} else {
		var b [12]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		a.RequestID = hex.EncodeToString(b[:])
	}
	ctx.Response.Header.Set("X-Request-Id", a.RequestID)
	ctx.SetUserValue(auditUserValue, a)
}

func saneRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > requestIDLenMax {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// engineCtx is reqCtx carrying the request's audit entry, if it has one:
// what an audited handler passes to the engine.
func (s *Server) engineCtx(ctx *fasthttp.RequestCtx) context.Context {
	if a, ok := ctx.UserValue(auditUserValue).(*engine.AuditEntry); ok {
		return engine.WithAudit(s.reqCtx(), a)
	}
	return s.reqCtx()
}

// auditOf returns the request's audit entry, or nil.
func auditOf(ctx *fasthttp.RequestCtx) *engine.AuditEntry {
	a, _ := ctx.UserValue(auditUserValue).(*engine.AuditEntry)
	return a
}

// GET /v1/admin/audit?actor=&action=&target=&from=&to=&cursor=&limit=
func (s *Server) listAudit(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	args := ctx.QueryArgs()
	q := engine.AuditQuery{
		Actor: string(args.Peek("actor")), Action: string(args.Peek("action")), Target: string(args.Peek("target")),
		Cursor: string(args.Peek("cursor")), Limit: 100,
	}
	for _, t := range []struct {
		name string
		dst  *int64
	}{{"from", &q.FromMs}, {"to", &q.ToMs}} {
		if v := args.Peek(t.name); len(v) > 0 {
			at, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				writeProblem(ctx, codeInvalidQuery, t.name+" must be an RFC 3339 time such as 2026-03-01T12:00:00Z", -1)
				return
			}
			*t.dst = at.UnixMilli()
		}
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > engine.AuditPageMax {
			writeProblem(ctx, codeInvalidQuery, "limit must be 1 to "+strconv.Itoa(engine.AuditPageMax), -1)
			return
		}
		q.Limit = n
	}
	entries, next, err := s.eng.Audit(s.reqCtx(), q)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	b := append([]byte(nil), `{"entries":[`...)
	for i := range entries {
		a := &entries[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"at":`...)
		b = appendString(b, formatTime(a.AtMs))
		for _, f := range []struct{ k, v string }{
			{"actor", a.Actor}, {"role", a.Role}, {"action", a.Action}, {"target", a.Target},
			{"outcome", a.Outcome}, {"remote_addr", a.Remote}, {"request_id", a.RequestID},
		} {
			b = append(b, `,"`...)
			b = append(b, f.k...)
			b = append(b, `":`...)
			b = appendString(b, f.v)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, next)
	}
	b = append(b, "}\n"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
