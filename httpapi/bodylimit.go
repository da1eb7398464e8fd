package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/valyala/fasthttp"
)

// Body limits are decided from the request head, before fasthttp reads the
// body: every request gets MaxBodyBytes, and only POST /v1/admin/sales:load
// and POST /v1/admin/reconciliation (a settlement file, reconcile.go)
// carrying the admin token get MaxLoadBodyBytes. A body announced over its
// limit (Content-Length, or a chunk crossing it) is refused without reading
// it, so nobody without the admin token can make the server read more than
// MaxBodyBytes.

// loadPath is the one path of the larger limit, spelled exactly: another
// spelling of it (percent-encoded, absolute-form) gets the general limit.
var loadPath = []byte("/v1/admin/sales:load")

// headerReceived is fasthttp's hook between the head and the body.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if s.loadBodyAllowed(h) {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxLoadBodyBytes}
	}
	return fasthttp.RequestConfig{}
}

// loadBodyAllowed says whether a request may send a body up to
// MaxLoadBodyBytes. The path and the method are compared first: the hash
// of the token is computed for the load route only.
func (s *Server) loadBodyAllowed(h *fasthttp.RequestHeader) bool {
	return h.IsPost() && isLoadPath(h.RequestURI()) && s.isAdminBearer(h.Peek(fasthttp.HeaderAuthorization))
}

// isLoadPath says whether a request-target is the load route, with or
// without a query.
func isLoadPath(uri []byte) bool {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return bytes.Equal(uri, loadPath) || bytes.Equal(uri, reconciliationPath)
}

// isAdminBearer says whether an Authorization header is "Bearer <admin
// token>", compared in constant time as authenticate does.
func (s *Server) isAdminBearer(auth []byte) bool {
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !bytes.EqualFold(auth[:len(scheme)], []byte(scheme)) {
		return false
	}
	digest := sha256.Sum256(bytes.TrimSpace(auth[len(scheme):]))
	return subtle.ConstantTimeCompare(digest[:], s.adminDigest[:]) == 1
}

// answerBodyTooLarge answers a request whose body is over its limit. On the
// load route a caller without the admin token is told so (401 or 403, as
// the handler would), not that its body exceeds the general limit.
func (s *Server) answerBodyTooLarge(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	limit := s.cfg.MaxBodyBytes
	switch {
	case s.loadBodyAllowed(h):
		limit = s.cfg.MaxLoadBodyBytes
	case isLoadPath(h.RequestURI()):
		if _, ok := s.authorize(ctx, accessAdmin); !ok {
			return
		}
	}
	writeProblem(ctx, codeBodyTooLarge, fmt.Sprintf("the request body is larger than the limit (%d bytes)", limit), -1)
}
