package fleet

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi"
)

// FanoutHeader marks a request a node sends to one partition's owner as a
// part of a route that spans sales; its value is the partition. The owner
// answers it from its own engine, never fanning out again.
const FanoutHeader = "Onsale-Fanout"

// A list route that spans sales: the member of the answer that holds the
// list, how two of its items compare (the order one node lists them in),
// and whether it pages with a cursor.
type listRoute struct {
	member  string
	compare func(a, b *item) int
	paged   bool
	limit   int // the route's default page size (paged), or its default cap
}

// item is one element of a partition's list and the fields it sorts by.
type item struct {
	raw json.RawMessage
	p   int
	key struct {
		ID        string `json:"id"`
		OrderID   string `json:"order_id"`
		ItemID    string `json:"item_id"`
		RefundID  string `json:"refund_id"`
		StartsAt  string `json:"starts_at"`
		CreatedAt string `json:"created_at"`
		Since     string `json:"since"`
		At        string `json:"at"`
	}
}

// Times in answers have one width (2006-01-02T15:04:05.000Z, UTC), so
// comparing the strings compares the times.
var (
	// GET /v1/sales: by start (sales without one last), then id, as
	// engine.Catalogue lists them.
	catalogueRoute = listRoute{member: "sales", paged: true, limit: 50, compare: func(a, b *item) int {
		return cmp.Or(cmp.Compare(orLast(a.key.StartsAt), orLast(b.key.StartsAt)), cmp.Compare(a.key.ID, b.key.ID))
	}}
	// GET /v1/admin/audit: newest first.
	auditRoute = listRoute{member: "entries", paged: true, limit: 100, compare: func(a, b *item) int {
		return cmp.Or(cmp.Compare(b.key.At, a.key.At), cmp.Compare(a.p, b.p))
	}}
	adminSalesRoute = listRoute{member: "sales", compare: func(a, b *item) int { return cmp.Compare(a.key.ID, b.key.ID) }}
	// GET /v1/me/orders: newest first.
	myOrdersRoute = listRoute{member: "orders", compare: func(a, b *item) int {
		return cmp.Or(cmp.Compare(b.key.CreatedAt, a.key.CreatedAt), cmp.Compare(a.key.OrderID, b.key.OrderID))
	}}
	refundsRoute = listRoute{member: "refunds", limit: 1000, compare: func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.key.CreatedAt, b.key.CreatedAt), cmp.Compare(a.key.RefundID, b.key.RefundID))
	}}
	refundQueueRoute = listRoute{member: "items", limit: 1000, compare: func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.key.Since, b.key.Since), cmp.Compare(a.key.ItemID, b.key.ItemID))
	}}
)

func orLast(t string) string {
	if t == "" {
		return "~"
	}
	return t
}

// spanning answers (fans out or forwards) the routes that span sales or
// name their sale in the body. It returns ok false for every other route,
// and handled false for a request this node serves itself.
func (f *Fleet) spanning(ctx *fasthttp.RequestCtx) (handled, ok bool) {
	method, path := string(ctx.Method()), string(ctx.Path())
	list := func(r *listRoute) (bool, bool) {
		if sale := ctx.QueryArgs().Peek("sale_id"); len(sale) > 0 && r != &auditRoute {
			// narrowed to one sale: that sale's partition's
			return f.serve(ctx, PartitionOf(sale, f.o.Partitions)), true
		}
		f.list(ctx, r)
		return true, true
	}
	if f.deliveries(ctx) { // deliveries.go
		return true, true
	}
	switch {
	case method == "GET" && path == "/v1/sales":
		f.catalogue(ctx)
		return true, true
	case method == "GET" && path == "/v1/admin/audit":
		return list(&auditRoute)
	case method == "GET" && path == "/v1/admin/sales":
		return list(&adminSalesRoute)
	case method == "GET" && path == "/v1/me/orders":
		return list(&myOrdersRoute)
	case method == "GET" && path == "/v1/admin/refunds":
		return list(&refundsRoute)
	case method == "GET" && path == "/v1/admin/refund-queue":
		return list(&refundQueueRoute)
	case method == "POST" && path == "/v1/admin/sales:load":
		f.load(ctx)
		return true, true
	case method == "POST" && (path == "/v1/checkin" || path == "/v1/payments/webhook"):
		return f.serve(ctx, f.partitionOfBody(ctx.PostBody())), true
	}
	return false, false
}

// partitionOfBody finds the sale a check-in or onsale's own payment
// notification is about: a ticket code carries its sale id (read, not
// verified: the owner verifies it), a ticket id or an order id starts with
// it. A body naming none goes to the home partition, which answers the
// error.
func (f *Fleet) partitionOfBody(body []byte) int {
	var b struct {
		Code    string `json:"code"`
		Ticket  string `json:"ticket"`
		OrderID string `json:"order_id"`
	}
	if jsonv2.Unmarshal(body, &b) != nil {
		return 0
	}
	var sale string
	switch {
	case b.Code != "":
		if p, _, _, err := engine.ParseTicketCode(b.Code); err == nil {
			sale = p.SaleID
		}
	case b.Ticket != "":
		sale = string(saleOfOrder(saleOfOrder([]byte(b.Ticket)))) // "<sale>.<key>.<n>"
	case b.OrderID != "":
		sale = string(saleOfOrder([]byte(b.OrderID)))
	}
	if sale == "" {
		return 0
	}
	return PartitionOf([]byte(sale), f.o.Partitions)
}

// serve answers a request of partition p: false if this node owns it
// and serves it itself; forwarded to its owner (or refused) otherwise.
func (f *Fleet) serve(ctx *fasthttp.RequestCtx, p int) bool {
	if int64(p) == f.local.Load() {
		if f.Valid(p) {
			return false
		}
		httpapi.WriteUnavailable(ctx, "this node no longer holds the lease of the sale's partition; retry")
		return true
	}
	if len(ctx.Request.Header.Peek(ForwardedHeader)) > 0 {
		httpapi.WriteUnavailable(ctx, "the sale's partition is moving between nodes; retry")
		return true
	}
	owner := f.Owner(p)
	if owner == "" || owner == f.o.Addr {
		httpapi.WriteUnavailable(ctx, "no node serves the sale's partition yet; retry")
		return true
	}
	f.forward(ctx, owner)
	return true
}

// ask sends ctx's request to partition p's owner, marked with
// FanoutHeader, with the query arguments changed by query and the body
// replaced by body (when not nil); the answer goes to res. A partition
// without an owner, or one that does not answer, is a 503 in res.
func (f *Fleet) ask(ctx *fasthttp.RequestCtx, p int, query func(*fasthttp.Args), body []byte, res *fasthttp.Response) {
	owner := f.Owner(p)
	if int64(p) == f.local.Load() {
		owner = f.o.Addr
	}
	if owner == "" {
		unavailable(res, "no node serves one of the partitions yet; retry")
		return
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	ctx.Request.CopyTo(req)
	req.Header.Set(FanoutHeader, strconv.Itoa(p))
	req.SetHost(owner)
	if query != nil {
		query(req.URI().QueryArgs())
	}
	if body != nil {
		req.SetBody(body)
	}
	if err := f.client(owner).DoTimeout(req, res, f.o.ForwardTimeout); err != nil {
		res.Reset()
		unavailable(res, "a node serving one of the partitions did not answer; retry")
	}
}

func unavailable(res *fasthttp.Response, detail string) {
	var c fasthttp.RequestCtx
	httpapi.WriteUnavailable(&c, detail)
	c.Response.CopyTo(res)
}

// askAll asks every partition in ps at once; answers by partition.
func (f *Fleet) askAll(ctx *fasthttp.RequestCtx, ps []int, query func(p int, a *fasthttp.Args), body func(p int) []byte) []*fasthttp.Response {
	out := make([]*fasthttp.Response, f.o.Partitions)
	var wg sync.WaitGroup
	for _, p := range ps {
		out[p] = &fasthttp.Response{}
		var q func(*fasthttp.Args)
		if query != nil {
			q = func(a *fasthttp.Args) { query(p, a) }
		}
		var b []byte
		if body != nil {
			b = body(p)
		}
		wg.Go(func() { f.ask(ctx, p, q, b, out[p]) })
	}
	wg.Wait()
	return out
}

// relayFailure copies the first answer that is not 200 to ctx.
func relayFailure(ctx *fasthttp.RequestCtx, answers []*fasthttp.Response) bool {
	for _, r := range answers {
		if r != nil && r.StatusCode() != fasthttp.StatusOK {
			r.CopyTo(&ctx.Response)
			return true
		}
	}
	return false
}

// page is one partition's answer to a list route.
type page struct {
	items []item
	next  string
}

func parsePage(r *fasthttp.Response, p int, member string) (page, bool) {
	var raw map[string]json.RawMessage
	if jsonv2.Unmarshal(r.Body(), &raw) != nil {
		return page{}, false
	}
	var list []json.RawMessage
	if jsonv2.Unmarshal(raw[member], &list) != nil {
		return page{}, false
	}
	pg := page{items: make([]item, len(list))}
	for i, x := range list {
		pg.items[i].raw, pg.items[i].p = x, p
		if jsonv2.Unmarshal(x, &pg.items[i].key) != nil {
			return page{}, false
		}
	}
	if n, ok := raw["next_cursor"]; ok && jsonv2.Unmarshal(n, &pg.next) != nil {
		return page{}, false
	}
	return pg, true
}

func (f *Fleet) all() []int {
	ps := make([]int, f.o.Partitions)
	for p := range ps {
		ps[p] = p
	}
	return ps
}

// list answers a list route from every partition: unpaged lists are
// merged in the route's order (and cut to its limit); paged ones by
// listPaged.
func (f *Fleet) list(ctx *fasthttp.RequestCtx, r *listRoute) {
	if r.paged {
		f.listPaged(ctx, r)
		return
	}
	answers := f.askAll(ctx, f.all(), nil, nil)
	if relayFailure(ctx, answers) {
		return
	}
	var merged []item
	for p, a := range answers {
		pg, ok := parsePage(a, p, r.member)
		if !ok {
			httpapi.WriteUnavailable(ctx, "a partition's answer could not be read; retry")
			return
		}
		merged = append(merged, pg.items...)
	}
	slices.SortStableFunc(merged, func(a, b item) int { return r.compare(&a, &b) })
	if r.limit > 0 {
		limit := r.limit
		if n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("limit"))); err == nil && n > 0 {
			limit = n // the partitions checked it
		}
		merged = merged[:min(len(merged), limit)]
	}
	writeList(ctx, r.member, merged, nil)
}

func writeList(ctx *fasthttp.RequestCtx, member string, items []item, next *string) {
	b := append([]byte(`{"`), member...)
	b = append(b, `":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, items[i].raw...)
	}
	b = append(b, ']')
	if next != nil {
		n, _ := jsonv2.Marshal(*next)
		b = append(b, `,"next_cursor":`...)
		b = append(b, n...)
	}
	b = append(b, "}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// The fleet's cursor of a paged list holds one cursor per partition: ""
// for its start, cursorDone once it has nothing more.
const (
	cursorPrefix = "f1."
	cursorDone   = "~"
)

func encodeCursor(cs []string) string {
	b, _ := jsonv2.Marshal(cs)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, partitions int) ([]string, bool) {
	if s == "" {
		return make([]string, partitions), true
	}
	rest, ok := bytes.CutPrefix([]byte(s), []byte(cursorPrefix))
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(string(rest))
	var cs []string
	if err != nil || jsonv2.Unmarshal(b, &cs) != nil || len(cs) != partitions {
		return nil, false
	}
	return cs, true
}

// listPaged answers a paged list: each partition lists a page after its
// own cursor, the pages are merged in the route's order and cut to the
// limit, and each partition's cursor moves past what of it was taken. A
// partition of which only some items were taken is asked once more for
// exactly those, so that its own next cursor says where they end: the
// fleet never builds a partition's cursor itself.
func (f *Fleet) listPaged(ctx *fasthttp.RequestCtx, r *listRoute) {
	cursors, ok := decodeCursor(string(ctx.QueryArgs().Peek("cursor")), f.o.Partitions)
	if !ok {
		httpapi.WriteProblem(ctx, "invalid_query", "cursor is not one this fleet gave; start again without it")
		return
	}
	limit := r.limit
	if n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("limit"))); err == nil && n > 0 {
		limit = n // the partitions check its bounds
	}
	var ps []int
	for p, c := range cursors {
		if c != cursorDone {
			ps = append(ps, p)
		}
	}
	setCursor := func(a *fasthttp.Args, c string) {
		if c == "" {
			a.Del("cursor")
		} else {
			a.Set("cursor", c)
		}
	}
	answers := f.askAll(ctx, ps, func(p int, a *fasthttp.Args) { setCursor(a, cursors[p]) }, nil)
	if relayFailure(ctx, answers) {
		return
	}
	pages := make([]page, f.o.Partitions)
	var merged []item
	for _, p := range ps {
		if pages[p], ok = parsePage(answers[p], p, r.member); !ok {
			httpapi.WriteUnavailable(ctx, "a partition's answer could not be read; retry")
			return
		}
		merged = append(merged, pages[p].items...)
	}
	slices.SortStableFunc(merged, func(a, b item) int { return r.compare(&a, &b) })
	merged = merged[:min(len(merged), limit)]
	taken := make([]int, f.o.Partitions)
	for i := range merged {
		taken[merged[i].p]++
	}
	var partial []int
	for _, p := range ps {
		switch {
		case taken[p] == len(pages[p].items) && pages[p].next == "":
			cursors[p] = cursorDone
		case taken[p] == len(pages[p].items):
			cursors[p] = pages[p].next
		case taken[p] > 0:
			partial = append(partial, p)
		}
	}
	if len(partial) > 0 {
		again := f.askAll(ctx, partial, func(p int, a *fasthttp.Args) {
			setCursor(a, cursors[p])
			a.Set("limit", strconv.Itoa(taken[p]))
		}, nil)
		if relayFailure(ctx, again) {
			return
		}
		for _, p := range partial {
			pg, ok := parsePage(again[p], p, r.member)
			if !ok || len(pg.items) != taken[p] || pg.next == "" {
				httpapi.WriteUnavailable(ctx, "a partition's list changed while it was read; retry")
				return
			}
			cursors[p] = pg.next
		}
	}
	var next *string
	if slices.ContainsFunc(cursors, func(c string) bool { return c != cursorDone }) {
		n := encodeCursor(cursors)
		next = &n
	}
	writeList(ctx, r.member, merged, next)
}

// catalogue is GET /v1/sales from every partition, each answer kept for
// as long as it may be cached anyway (Cache-Control max-age=1): a rush of
// identical catalogue reads costs each node one fan-out per query and
// second, not one per read.
func (f *Fleet) catalogue(ctx *fasthttp.RequestCtx) {
	key := string(ctx.QueryArgs().QueryString())
	now := time.Now()
	f.catMu.Lock()
	c, ok := f.catCache[key]
	f.catMu.Unlock()
	if ok && now.Before(c.until) {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		ctx.SetBody(c.body)
		ctx.Response.Header.Set("Cache-Control", "public, max-age=1")
		return
	}
	f.listPaged(ctx, &catalogueRoute)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		return
	}
	ctx.Response.Header.Set("Cache-Control", "public, max-age=1")
	f.catMu.Lock()
	if len(f.catCache) >= catalogueCacheMax {
		clear(f.catCache)
	}
	f.catCache[key] = cachedPage{body: append([]byte(nil), ctx.Response.Body()...), until: now.Add(time.Second)}
	f.catMu.Unlock()
}

const catalogueCacheMax = 4096

type cachedPage struct {
	body  []byte
	until time.Time
}

// load is POST /v1/admin/sales:load split by partition: each part goes to
// its partition's owner, all at once, and the answers are joined. Each
// part is loaded whole or not at all, as on one node; if one fails, the
// others are loaded, and loading the same body again is how to finish.
func (f *Fleet) load(ctx *fasthttp.RequestCtx) {
	var body struct {
		Sales []json.RawMessage `json:"sales"`
	}
	if jsonv2.Unmarshal(ctx.PostBody(), &body) != nil || len(body.Sales) == 0 {
		f.serve(ctx, 0) // the home partition answers what is wrong with it
		return
	}
	parts := make([][]json.RawMessage, f.o.Partitions)
	for _, s := range body.Sales {
		var id struct {
			ID string `json:"id"`
		}
		if jsonv2.Unmarshal(s, &id) != nil || id.ID == "" {
			f.serve(ctx, 0)
			return
		}
		p := PartitionOf([]byte(id.ID), f.o.Partitions)
		parts[p] = append(parts[p], s)
	}
	var ps []int
	for p := range parts {
		if len(parts[p]) > 0 {
			ps = append(ps, p)
		}
	}
	answers := f.askAll(ctx, ps, nil, func(p int) []byte {
		b, _ := jsonv2.Marshal(map[string]any{"sales": parts[p]})
		return b
	})
	if relayFailure(ctx, answers) {
		return
	}
	var all []item
	for _, p := range ps {
		pg, ok := parsePage(answers[p], p, "sales")
		if !ok {
			httpapi.WriteUnavailable(ctx, "a partition's answer could not be read")
			return
		}
		all = append(all, pg.items...)
	}
	writeList(ctx, "sales", all, nil)
}
