package httpapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// GET /v1/sales: the public catalogue, answered from the engine's listing
// index over the published views (engine/catalogue.go), never from a shard.
//
// The answer is the same for every caller (no authentication, nothing
// personal), so it may be cached: Cache-Control: public, max-age=1. A
// listing shows counts that move during a rush; one second of staleness
// lets a browser or a CDN answer a burst of identical queries (a page
// reload storm at on-sale time) without reaching onsale, while a buyer
// still sees a sold-out tier within a second. Purchase decisions never rely
// on it: the shard decides.

const (
	catalogueLimitDefault = 50
	catalogueQueryLenMax  = 200 // q, in bytes
	catalogueCacheControl = "public, max-age=1"
)

// catalogueParams are the query parameters GET /v1/sales understands;
// anything else is refused, so that a misspelt filter is not silently
// ignored (a "ctiy=Paris" that listed every city).
var catalogueParams = []string{"from", "to", "city", "venue", "category", "event", "q", "available", "limit", "cursor"}

// listCatalogue: GET /v1/sales?from=&to=&city=&venue=&category=&event=&q=&available=&limit=&cursor=
func (s *Server) listCatalogue(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	q, msg := parseCatalogueQuery(ctx.QueryArgs())
	if msg != "" {
		writeProblem(ctx, codeInvalidQuery, msg, -1)
		return
	}
	now := s.now().UnixMilli()
	sales, next := s.eng.Catalogue(&q, now)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", catalogueCacheControl)
	buf := getBuffer()
	b := append((*buf)[:0], `{"sales":[`...)
	for i, sl := range sales {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSale(b, sl, now)
	}
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, next)
	}
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// parseCatalogueQuery reads the query string; msg says what is wrong.
func parseCatalogueQuery(args *fasthttp.Args) (q engine.CatalogueQuery, msg string) {
	q.Limit = catalogueLimitDefault
	var seen [16]bool // by index in catalogueParams
	args.VisitAll(func(k, v []byte) {
		if msg != "" {
			return
		}
		i := indexOf(catalogueParams, string(k))
		switch {
		case i < 0:
			msg = fmt.Sprintf("unknown parameter %q; the filters are %s", k, strings.Join(catalogueParams, ", "))
			return
		case seen[i]:
			msg = fmt.Sprintf("parameter %q given twice", k)
			return
		}
		seen[i] = true
		msg = setCatalogueParam(&q, string(k), string(v))
	})
	return q, msg
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// setCatalogueParam sets one filter; the engine matches what it is given,
// so the bounds are checked here.
func setCatalogueParam(q *engine.CatalogueQuery, name, v string) string {
	switch name {
	case "from", "to":
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return name + " must be an RFC 3339 time such as 2027-06-01T20:00:00Z"
		}
		// A starts_at is never before 1 ms after the epoch (0 means none),
		// and 0 means "no bound" to the engine: clamp to 1.
		ms := max(t.UnixMilli(), 1)
		if name == "from" {
			q.FromMs = ms
		} else {
			q.ToMs = ms
		}
		if q.FromMs != 0 && q.ToMs != 0 && q.ToMs <= q.FromMs {
			return "to must be after from"
		}
	case "city":
		q.City = v
	case "venue":
		q.Venue = v
	case "category":
		if indexOf(engine.Categories, v) < 0 {
			return "category must be one of " + strings.Join(engine.Categories, ", ")
		}
		q.Category = v
	case "event":
		q.Event = v
	case "q":
		words := strings.Fields(v)
		if len(v) > catalogueQueryLenMax || len(words) > engine.CatalogueWordsMax {
			return fmt.Sprintf("q must be at most %d words and %d bytes", engine.CatalogueWordsMax, catalogueQueryLenMax)
		}
		q.Words = words
	case "available":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "available must be true or false"
		}
		q.Available = b
	case "limit":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > engine.CatalogueLimitMax {
			return fmt.Sprintf("limit must be 1 to %d", engine.CatalogueLimitMax)
		}
		q.Limit = n
	case "cursor":
		c, ok := engine.ParseCatalogueCursor(v)
		if !ok {
			return "cursor is not one this server gave; start again without it"
		}
		q.After = c
	}
	return ""
}
