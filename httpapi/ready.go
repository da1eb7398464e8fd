package httpapi

import (
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// The gate in front of the API, and readiness.
//
// A Server serves before it has an engine: main opens the port first, so
// that while the log is replayed probes and load balancers see a live
// process (/healthz 200) that is not ready (/readyz 503), and clients get
// 503 unavailable with Retry-After rather than a refused connection. Attach
// hands over the engine and the user store; SetReady(true) then turns
// /readyz green.
//
// While the disk under the log runs low (RefuseWrites), the server stays up
// and serves reads, but every route that writes to the log answers 503
// unavailable (the payment webhook too: the provider retries it later), and
// /readyz is red so that a balancer sends buyers elsewhere. The ops routes
// (/healthz, /readyz, /metrics, /openapi.json) are never gated.
//
// The hot path pays one atomic load: gate.closed is 0 once attached with
// writes accepted.

// Reasons the gate is closed, bits of gate.closed.
const (
	gateStarting      uint32 = 1 << iota // no engine yet: every API route answers 503
	gateWritesRefused                    // writes answer 503; reads are served
)

// Seconds a client is asked to wait (Retry-After) when the gate refuses it.
const (
	retryStartingSec = 1  // recovery takes seconds at most
	retryDiskLowSec  = 10 // freeing disk space takes a person or a job
)

type gate struct {
	closed        atomic.Uint32
	refusalDetail atomic.Pointer[string] // the problem detail while gateWritesRefused
}

// Attach hands the server its engine and user store once recovery is done,
// for a Server made without them. Until then every API route answers 503
// unavailable. It panics if called twice or with nil: a wiring bug.
func (s *Server) Attach(eng *engine.Engine, users UserStore) {
	if eng == nil || users == nil {
		panic("httpapi: Attach needs an engine and a user store")
	}
	if s.gate.closed.Load()&gateStarting == 0 {
		panic("httpapi: Attach called on a server that has its engine")
	}
	// Written before the atomic store below, read by handlers only after
	// their load of gate.closed saw gateStarting cleared.
	s.eng = eng
	s.cfg.Engine, s.cfg.Users = eng, users
	for {
		old := s.gate.closed.Load()
		if s.gate.closed.CompareAndSwap(old, old&^gateStarting) {
			return
		}
	}
}

// RefuseWrites makes every route that writes answer 503 unavailable with
// detail (and /readyz red) until it is called with "". main calls it when
// the data directory's disk is nearly full, and again when space is back.
func (s *Server) RefuseWrites(detail string) {
	if detail != "" {
		s.gate.refusalDetail.Store(&detail)
	}
	for {
		old := s.gate.closed.Load()
		next := old &^ gateWritesRefused
		if detail != "" {
			next = old | gateWritesRefused
		}
		if s.gate.closed.CompareAndSwap(old, next) {
			return
		}
	}
}

// admit answers 503 unavailable and returns false when the gate keeps
// route r closed.
func (s *Server) admit(ctx *fasthttp.RequestCtx, r route) bool {
	closed := s.gate.closed.Load()
	if closed == 0 || alwaysOpen(r) {
		return true
	}
	switch {
	case closed&gateStarting != 0:
		writeProblem(ctx, codeUnavailable, "starting: the log is being recovered; retry in a second", -1)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryStartingSec))
	case writes(r):
		writeProblem(ctx, codeUnavailable, *s.gate.refusalDetail.Load(), -1)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryDiskLowSec))
	default:
		return true
	}
	if r == routePurchase {
		s.m.purchase(codeUnavailable)
	}
	return false
}

// alwaysOpen are the routes of probes and tools, answered in every state.
func alwaysOpen(r route) bool {
	switch r {
	case routeHealthz, routeReadyz, routeMetrics, routeOpenAPI:
		return true
	}
	return false
}

// writes reports whether a route may write to the log. Every route but GET
// does (purchases, cancels, the payment webhook, refunds, check-ins, sales,
// registrations), except logging in, which only reads an account: a new
// route is refused on a full disk unless it is listed here as a read.
func writes(r route) bool {
	return routes[r].method != "GET" && r != routeLogin
}

// readyz: 200 once recovered, with writes accepted and not draining; 503
// with the reason otherwise.
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	closed := s.gate.closed.Load()
	switch {
	case closed&gateStarting != 0:
		writeProblem(ctx, codeUnavailable, "not ready: recovering the log", -1)
	case closed&gateWritesRefused != 0:
		writeProblem(ctx, codeUnavailable, "not ready: "+*s.gate.refusalDetail.Load(), -1)
	case !s.ready.Load():
		writeProblem(ctx, codeUnavailable, "not ready: starting or draining", -1)
	default:
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ready"}` + "\n")
	}
}
