package httpapi

import (
	"github.com/valyala/fasthttp"
)

// Archiving finished sales (engine/archive.go): two admin routes.
//
//	POST /v1/admin/sales/{sale_id}:archive    the sale moves out of memory; 200 with its final view, status "archived"
//	POST /v1/admin/sales/{sale_id}:unarchive  it comes back; 200 with its live view
//
// Both are idempotent and audited. An archived sale stays readable through
// every read route; GET /v1/sales/{sale_id} and GET /v1/admin/sales show
// it with status "archived"; the public catalogue (GET /v1/sales) lists it
// too, with that status, so that a link to a past event still resolves.

func (s *Server) archiveSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	sl, err := s.eng.Archive(s.engineCtx(ctx), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeSale(ctx, fasthttp.StatusOK, &sl)
}

func (s *Server) unarchiveSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	sl, err := s.eng.Unarchive(s.engineCtx(ctx), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeSale(ctx, fasthttp.StatusOK, &sl)
}
