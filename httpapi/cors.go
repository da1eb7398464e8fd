package httpapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// Cross-origin requests (CORS). A frontend served from another origin
// (https://tickets.example calling https://api.example) may call the API
// only when its origin is in Config.CORSOrigins; with none listed, only
// pages of the API's own origin can (browsers need no CORS for those).
//
// Every answer to a listed origin, errors included, names that origin in
// Access-Control-Allow-Origin (so a page can read a 409 sold_out as well as
// a 201) and exposes the headers a client acts on. Preflights (OPTIONS with
// Access-Control-Request-Method) are answered before authentication, since
// browsers send them without credentials: 204 with the route's method and
// the request headers the API reads, or 403 for an origin not listed.
// Access-Control-Allow-Credentials is never sent: the API authenticates
// with bearer tokens in the Authorization header, not cookies, so pages
// need no credentialed mode, and "*" is never combined with it.

const (
	corsAllowHeaders  = "Authorization, Idempotency-Key, Content-Type, Last-Event-ID"
	corsExposeHeaders = "Location, Retry-After, Next-Cursor"
	// corsMaxAgeSeconds lets a browser reuse a preflight for ten minutes:
	// a buyer's purchases during a sale cost one preflight, not one each.
	corsMaxAgeSeconds = "600"
)

const (
	errCORSOriginNotAllowed = "cross-origin requests from this origin are not allowed; the server lists the allowed ones in -cors-origins"
	errCORSNoOriginsAllowed = "this server allows no cross-origin requests; start it with -cors-origins listing the frontend's origin"
)

var (
	headerOrigin           = []byte("Origin")
	headerRequestMethod    = []byte("Access-Control-Request-Method")
	headerAllowOrigin      = []byte("Access-Control-Allow-Origin")
	headerExposeHeaders    = []byte("Access-Control-Expose-Headers")
	headerVary             = []byte("Vary")
	valueOrigin            = []byte("Origin")
	valueAnyOrigin         = []byte("*")
	valueCORSExposeHeaders = []byte(corsExposeHeaders)
)

// corsPolicy is the allow-list, fixed at start; read by any worker.
type corsPolicy struct {
	anyOrigin bool
	origins   map[string]struct{} // serialized origins, as browsers send them
}

// newCORSPolicy returns nil when no origin is listed. It panics on an entry
// ParseCORSOrigins would refuse: main checks the flag first.
func newCORSPolicy(origins []string) *corsPolicy {
	if len(origins) == 0 {
		return nil
	}
	p := &corsPolicy{origins: make(map[string]struct{}, len(origins))}
	for _, o := range origins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			panic("httpapi: Config.CORSOrigins: " + err.Error())
		}
		if norm == "*" {
			p.anyOrigin = true
		}
		p.origins[norm] = struct{}{}
	}
	return p
}

// ParseCORSOrigins reads the -cors-origins flag: a comma-separated list of
// origins (scheme://host[:port], as a browser names the page's origin), or
// "*" for any. It returns them as browsers send them (lower case, no
// default port, no trailing slash), or an error naming the first bad one.
func ParseCORSOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		out = append(out, norm)
	}
	return out, nil
}

func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("origin %q %s; want scheme://host[:port], like https://tickets.example", o, why)
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return bad("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("is not http or https")
	case u.Host == "" || u.Hostname() == "":
		return bad("has no host")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return bad("has more than scheme, host and port")
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port := u.Port(); port != "" && !(u.Scheme == "http" && port == "80") && !(u.Scheme == "https" && port == "443") {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// applyCORS adds the CORS headers of an answer: Vary: Origin always (the
// answer depends on it), and for a listed origin the origin allowed and
// the headers exposed. It reports whether the origin is allowed.
func (s *Server) applyCORS(ctx *fasthttp.RequestCtx) bool {
	if s.cors == nil {
		return false
	}
	h := &ctx.Response.Header
	h.SetCanonical(headerVary, valueOrigin)
	origin := ctx.Request.Header.PeekBytes(headerOrigin)
	if len(origin) == 0 {
		return false
	}
	switch _, listed := s.cors.origins[string(origin)]; {
	case s.cors.anyOrigin:
		h.SetCanonical(headerAllowOrigin, valueAnyOrigin)
	case listed:
		h.SetCanonical(headerAllowOrigin, origin)
	default:
		return false
	}
	h.SetCanonical(headerExposeHeaders, valueCORSExposeHeaders)
	return true
}

// isPreflight says whether a request is a CORS preflight.
func isPreflight(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsOptions() && len(ctx.Request.Header.PeekBytes(headerRequestMethod)) > 0 &&
		len(ctx.Request.Header.PeekBytes(headerOrigin)) > 0
}

// preflight answers a CORS preflight for a route; applyCORS has run.
func (s *Server) preflight(ctx *fasthttp.RequestCtx, spec *routeSpec, allowed bool) {
	switch {
	case s.cors == nil:
		writeProblem(ctx, codeForbidden, errCORSNoOriginsAllowed, -1)
		return
	case !allowed:
		writeProblem(ctx, codeForbidden, errCORSOriginNotAllowed, -1)
		return
	}
	h := &ctx.Response.Header
	methods := spec.method
	if methods == "GET" {
		methods = "GET, HEAD"
	}
	if spec == &routes[routeMe] {
		methods = "GET, HEAD, PATCH" // PATCH /v1/me shares the path (profile.go: meRoute)
	}
	if spec == &routes[routeWaitlistMe] {
		methods = "GET, HEAD, DELETE" // offers.go: offerRoute
	}
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAgeSeconds)
	h.Del("Access-Control-Expose-Headers") // for actual answers only
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
