package fleet

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/httpapi"
)

// Webhook delivery logs. Each partition's owner delivers its own
// partition's events and keeps their log (outbox.go), numbering its
// deliveries by its own outbox position: dlv_<n> names one delivery in
// each partition. So the fleet names a delivery with its partition,
// dlv_p<N>_<n>, and
//
//	GET  /v1/admin/webhooks/{id}/deliveries
//	     asks every partition for its newest `limit` and merges them, newest
//	     first, cut to limit: the newest `limit` of the fleet are among them.
//	     The route has no cursor on one node either.
//	POST /v1/admin/webhooks/{id}/deliveries/{dlv_p<N>_<n>}:redeliver
//	     goes to partition N's owner as dlv_<n>; a dlv_<n> without a
//	     partition is partition 0's, as before.
//
// The home partition's answer comes first: it holds the endpoints, and its
// refusals (unknown endpoint, a bad limit) are the answer.

var (
	prefixWebhooks    = []byte("/v1/admin/webhooks/")
	segmentDeliveries = []byte("/deliveries")
	suffixRedeliver   = []byte(":redeliver")
)

// deliveriesRoute recognises the two routes: list for the log, and for a
// redelivery the delivery id with the path before it.
func deliveriesRoute(method string, path []byte) (list bool, head, delivery []byte, ok bool) {
	rest, found := bytes.CutPrefix(path, prefixWebhooks)
	if !found {
		return false, nil, nil, false
	}
	i := bytes.Index(rest, segmentDeliveries)
	if i <= 0 || bytes.IndexByte(rest[:i], '/') >= 0 {
		return false, nil, nil, false
	}
	tail := rest[i+len(segmentDeliveries):]
	switch {
	case method == "GET" && len(tail) == 0:
		return true, nil, nil, true
	case method == "POST" && len(tail) > 1 && tail[0] == '/' && bytes.HasSuffix(tail, suffixRedeliver):
		d := tail[1 : len(tail)-len(suffixRedeliver)]
		if len(d) == 0 || bytes.IndexByte(d, '/') >= 0 {
			return false, nil, nil, false
		}
		return false, path[:len(path)-len(tail)+1], d, true
	}
	return false, nil, nil, false
}

// fleetDeliveryID is dlv_p<p>_<n> for partition p's dlv_<n>.
func fleetDeliveryID(p int, local []byte) ([]byte, bool) {
	n, ok := bytes.CutPrefix(local, []byte("dlv_"))
	if !ok || len(n) == 0 {
		return nil, false
	}
	return append(append([]byte("dlv_p"), strconv.Itoa(p)...), append([]byte{'_'}, n...)...), true
}

// splitDeliveryID is the inverse of fleetDeliveryID; a dlv_<n> is
// partition 0's.
func splitDeliveryID(id []byte, partitions int) (p int, local []byte, ok bool) {
	rest, ok := bytes.CutPrefix(id, []byte("dlv_p"))
	if !ok {
		return 0, id, true
	}
	num, n, found := bytes.Cut(rest, []byte("_"))
	p, err := strconv.Atoi(string(num))
	if !found || err != nil || p < 0 || p >= partitions || strconv.Itoa(p) != string(num) || len(n) == 0 {
		return 0, nil, false
	}
	return p, append([]byte("dlv_"), n...), true
}

// withFleetID rewrites a partition's delivery object, whose first member
// is its id (notify.Delivery), to carry the fleet's id.
func withFleetID(p int, raw []byte) ([]byte, bool) {
	const head = `{"id":"`
	rest, ok := bytes.CutPrefix(raw, []byte(head))
	if !ok {
		return nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	id, ok := fleetDeliveryID(p, rest[:end])
	if !ok {
		return nil, false
	}
	out := append([]byte(head), id...)
	return append(out, rest[end:]...), true
}

// deliveries answers the two routes; ok false for any other.
func (f *Fleet) deliveries(ctx *fasthttp.RequestCtx) bool {
	list, head, delivery, ok := deliveriesRoute(string(ctx.Method()), ctx.Path())
	switch {
	case !ok:
		return false
	case list:
		f.deliveryLog(ctx)
	default:
		f.redeliver(ctx, head, delivery)
	}
	return true
}

// deliveryLog merges every partition's newest deliveries, newest first:
// each partition's own order is kept, and between partitions the
// delivery whose oldest kept attempt is later comes first.
func (f *Fleet) deliveryLog(ctx *fasthttp.RequestCtx) {
	answers := f.askAll(ctx, f.all(), nil, nil)
	if answers[0].StatusCode() == fasthttp.StatusOK {
		for _, a := range answers[1:] {
			if a.StatusCode() == fasthttp.StatusNotFound { // a partition delivering nothing (-fleet-notify=false)
				a.Reset()
				a.SetBodyString(`{"deliveries":[]}`)
			}
		}
	}
	if relayFailure(ctx, answers) { // the home partition's refusal first
		return
	}
	type delivery struct {
		raw json.RawMessage
		at  time.Time
	}
	lists := make([][]delivery, len(answers))
	total := 0
	for p, a := range answers {
		var body struct {
			Deliveries []json.RawMessage `json:"deliveries"`
		}
		if jsonv2.Unmarshal(a.Body(), &body) != nil {
			httpapi.WriteUnavailable(ctx, "a partition's answer could not be read; retry")
			return
		}
		for _, raw := range body.Deliveries {
			var d struct {
				Attempts []struct {
					At time.Time `json:"at"`
				} `json:"attempts"`
			}
			fleetRaw, ok := withFleetID(p, raw)
			if !ok || jsonv2.Unmarshal(raw, &d) != nil {
				httpapi.WriteUnavailable(ctx, "a partition's answer could not be read; retry")
				return
			}
			var at time.Time
			if len(d.Attempts) > 0 {
				at = d.Attempts[0].At
			}
			lists[p] = append(lists[p], delivery{raw: fleetRaw, at: at})
		}
		total += len(lists[p])
	}
	limit := 50 // the route's default; the partitions checked a given one
	if n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("limit"))); err == nil && n > 0 {
		limit = n
	}
	merged := make([]item, 0, min(limit, total))
	heads := make([]int, len(lists))
	for len(merged) < limit {
		best := -1
		for p := range lists {
			if heads[p] < len(lists[p]) && (best < 0 || lists[p][heads[p]].at.After(lists[best][heads[best]].at)) {
				best = p
			}
		}
		if best < 0 {
			break
		}
		merged = append(merged, item{raw: lists[best][heads[best]].raw, p: best})
		heads[best]++
	}
	writeList(ctx, "deliveries", merged, nil)
}

// redeliver sends a redelivery to the partition its id names and answers
// with the delivery under its fleet id.
func (f *Fleet) redeliver(ctx *fasthttp.RequestCtx, head, delivery []byte) {
	p, local, ok := splitDeliveryID(delivery, f.o.Partitions)
	if !ok {
		httpapi.WriteProblem(ctx, "unknown_delivery", "no delivery "+strconv.Quote(string(delivery))+
			" in this fleet: delivery ids are dlv_p<partition>_<n>, as the delivery log lists them")
		return
	}
	path := append(append(append([]byte(nil), head...), local...), suffixRedeliver...)
	ctx.Request.URI().SetPathBytes(path)
	var res fasthttp.Response
	f.ask(ctx, p, nil, nil, &res)
	res.CopyTo(&ctx.Response)
	if res.StatusCode() != fasthttp.StatusOK {
		return
	}
	body := bytes.TrimRight(res.Body(), "\n")
	fleetBody, ok := withFleetID(p, body)
	if !ok {
		httpapi.WriteUnavailable(ctx, "the partition's answer could not be read; retry")
		return
	}
	ctx.SetBody(append(fleetBody, '\n'))
}
