package httpapi

import (
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/httpapi/console"
)

// consolePage: GET /console/{file}, the web page for admins, ops and door
// staff (httpapi/console). It is public: the page's files hold no secret,
// and everything it shows it asks of the API with the token its user types.
func (s *Server) consolePage(ctx *fasthttp.RequestCtx, name []byte, _ principal) {
	if name == nil { // "/console": relative links need the slash
		ctx.Response.Header.Set("Location", "/console/")
		ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
		return
	}
	console.Serve(ctx, name)
}
