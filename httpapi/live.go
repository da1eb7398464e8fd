package httpapi

import (
	"bufio"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// GET /v1/sales/{sale_id}/live: a sale's availability as Server-Sent
// Events, one event per change:
//
//	id: <version>
//	event: availability
//	data: {"sale_id":..,"tiers":[{"id","available","held","sold"}],"sold_out":..,"status":..}
//
// Nothing here enters a shard or runs per purchase. One broadcaster
// goroutine per watched sale polls the sale's published view (one atomic
// load) every LivePollInterval and, when it changed, builds the event once
// and offers it to every subscriber's one-slot mailbox, overwriting what
// the subscriber has not taken yet. So a sale's watchers cost the shard
// nothing, updates are coalesced to a few per second, and a slow client
// misses intermediate states, never the latest one, and never holds up the
// broadcaster or another client.
//
// The event id is the view's version times four plus the status's rank
// (scheduled 0, open 1, closed 2): it grows with every change of counts
// (the version) and with the status changes that the clock makes without a
// new view (a sale opening), so it increases within a process. A client
// whose Last-Event-ID equals the current id waits for the next change;
// any other id (none, older, or from before a restart) gets the current
// state at once.
//
// A stream ends when the sale closes (a final event with status "closed";
// a reconnection whose Last-Event-ID is that event's gets 204, which tells
// a browser's EventSource to stop), after LiveMaxDuration (EventSource
// reconnects with its Last-Event-ID and loses nothing), when the client
// goes, or at shutdown. A sold-out sale keeps its streams: expired holds
// and cancellations put tickets back, and that is news watchers want.
//
// fasthttp writes the body of a SetBodyStreamWriter response after the
// handler returns, under the connection's write deadline, which it sets
// once to WriteTimeout before the response: a stream would die after 5 s.
// The stream writer moves the deadline to now+WriteTimeout before each
// write instead, so WriteTimeout bounds each event (a client that stops
// reading is dropped after it) rather than the stream.

// liveRank orders the statuses an event id counts.
var liveRank = map[string]uint64{"scheduled": 0, "open": 1, "closed": 2}

// liveHub owns the broadcasters and counts the streams.
type liveHub struct {
	s       *Server
	streams atomic.Int64

	mu     sync.Mutex
	sales  map[string]*liveSale // sales with subscribers (or a broadcaster ending)
	subs   map[*liveSub]struct{}
	closed bool
	done   chan struct{} // closed at shutdown: every stream and broadcaster ends
}

// liveSale is one watched sale and its broadcaster.
type liveSale struct {
	id     string
	mu     sync.Mutex
	subs   map[*liveSub]struct{}
	latest *liveFrame // the newest frame built, shared by everyone
}

// liveSub is one stream.
type liveSub struct {
	sale    *liveSale
	conn    net.Conn
	mailbox chan *liveFrame // one slot, overwritten by the broadcaster
}

// liveFrame is one event, encoded once for every subscriber. Immutable.
type liveFrame struct {
	id    uint64
	final bool // the sale is closed: the stream ends after this event
	text  []byte
}

func newLiveHub(s *Server) *liveHub {
	h := &liveHub{s: s, sales: map[string]*liveSale{}, subs: map[*liveSub]struct{}{}, done: make(chan struct{})}
	s.cfg.Metrics.NewGauge("onsale_live_streams", func() float64 { return float64(h.streams.Load()) })
	return h
}

// liveSale: GET /v1/sales/{sale_id}/live.
func (s *Server) liveSale(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	saleID := string(id)
	if _, err := s.eng.SaleView(saleID); err != nil {
		s.writeError(ctx, err)
		return
	}
	lastID, _ := strconv.ParseUint(string(ctx.Request.Header.Peek("Last-Event-ID")), 10, 64)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	if ctx.IsHead() {
		return
	}
	sub, first, msg := s.live.subscribe(saleID, ctx.Conn())
	if sub == nil {
		writeProblem(ctx, codeTooManyStreams, msg, -1)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(liveRetryAfterSec))
		return
	}
	if first != nil && first.final && first.id == lastID {
		s.live.unsubscribe(sub)
		ctx.SetStatusCode(fasthttp.StatusNoContent) // closed, and the client has its last event
		return
	}
	ctx.Response.ImmediateHeaderFlush = true // the client learns at once that it is subscribed
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { s.live.stream(w, sub, first, lastID) })
}

const liveRetryAfterSec = 5

// subscribe registers a stream for a sale and returns the current frame;
// nil and a reason when the hub is full or stopping.
func (h *liveHub) subscribe(saleID string, conn net.Conn) (*liveSub, *liveFrame, string) {
	if h.streams.Add(1) > int64(h.s.cfg.LiveMaxStreams) {
		h.streams.Add(-1)
		return nil, nil, "this server serves its maximum of live streams; retry later, or poll GET /v1/sales/{sale_id}"
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.streams.Add(-1)
		return nil, nil, "the server is stopping; retry in a few seconds"
	}
	ls := h.sales[saleID]
	if ls == nil {
		ls = &liveSale{id: saleID, subs: map[*liveSub]struct{}{}}
		h.sales[saleID] = ls
		go h.broadcast(ls)
	}
	sub := &liveSub{sale: ls, conn: conn, mailbox: make(chan *liveFrame, 1)}
	h.subs[sub] = struct{}{}
	ls.mu.Lock()
	ls.subs[sub] = struct{}{}
	first := h.frame(ls)
	ls.mu.Unlock()
	h.mu.Unlock()
	return sub, first, ""
}

func (h *liveHub) unsubscribe(sub *liveSub) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
	ls := sub.sale
	ls.mu.Lock()
	delete(ls.subs, sub)
	ls.mu.Unlock()
	h.streams.Add(-1)
}

// stream writes a subscriber's events until the sale closes, the stream's
// lifetime ends, the client goes or the server stops. It runs on the
// goroutine fasthttp gives a body stream writer.
func (h *liveHub) stream(w *bufio.Writer, sub *liveSub, f *liveFrame, lastID uint64) {
	defer h.unsubscribe(sub)
	cfg := &h.s.cfg
	life := time.NewTimer(cfg.LiveMaxDuration)
	defer life.Stop()
	ping := time.NewTicker(cfg.LiveHeartbeat)
	defer ping.Stop()
	write := func(b []byte) bool {
		select {
		case <-h.done:
			return false
		default:
		}
		sub.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		w.Write(b)
		return w.Flush() == nil
	}
	if !write(liveRetryLine) {
		return
	}
	for {
		if f != nil && f.id != lastID {
			if !write(f.text) || f.final {
				return
			}
			lastID = f.id
			ping.Reset(cfg.LiveHeartbeat)
		}
		f = nil
		select {
		case f = <-sub.mailbox:
		case <-ping.C:
			if !write(livePing) {
				return
			}
		case <-life.C:
			return
		case <-h.done:
			return
		}
	}
}

var (
	// liveRetryLine asks EventSource to reconnect after 3 s (its default,
	// said so that every browser does the same).
	liveRetryLine = []byte("retry: 3000\n\n")
	livePing      = []byte(": ping\n\n")
)

// broadcast is a sale's broadcaster: it polls the sale's view and offers
// each new frame to every subscriber, until the sale has none left.
func (h *liveHub) broadcast(ls *liveSale) {
	tick := time.NewTicker(h.s.cfg.LivePollInterval)
	defer tick.Stop()
	var sent *liveFrame
	for {
		select {
		case <-tick.C:
		case <-h.done:
			return
		}
		ls.mu.Lock()
		if len(ls.subs) == 0 && h.retire(ls) {
			ls.mu.Unlock()
			return
		}
		if f := h.frame(ls); f != nil && f != sent {
			for sub := range ls.subs {
				sub.offer(f)
			}
			sent = f
		}
		ls.mu.Unlock()
	}
}

// retire removes a sale without subscribers from the hub; called with
// ls.mu held, it takes h.mu only if nobody can be subscribing: a
// subscriber takes h.mu first, so the lock order is h.mu then ls.mu, and
// TryLock avoids the inversion (a busy hub retries on the next tick).
func (h *liveHub) retire(ls *liveSale) bool {
	if !h.mu.TryLock() {
		return false
	}
	delete(h.sales, ls.id)
	h.mu.Unlock()
	return true
}

// offer puts f in the mailbox, replacing a frame not yet taken. Only the
// broadcaster sends, so two attempts suffice.
func (sub *liveSub) offer(f *liveFrame) {
	select {
	case sub.mailbox <- f:
		return
	default:
	}
	select {
	case <-sub.mailbox:
	default:
	}
	select {
	case sub.mailbox <- f:
	default:
	}
}

// frame returns the sale's current frame, building it if the view or the
// status moved; nil if the sale is unknown. Called with ls.mu held.
func (h *liveHub) frame(ls *liveSale) *liveFrame {
	v, err := h.s.eng.SaleView(ls.id)
	if err != nil {
		return nil
	}
	status := saleStatus(v, h.s.now().UnixMilli())
	id := v.Version*4 + liveRank[status]
	if ls.latest != nil && ls.latest.id == id {
		return ls.latest
	}
	ls.latest = &liveFrame{id: id, final: status == "closed", text: appendLiveEvent(nil, id, v, status)}
	return ls.latest
}

func appendLiveEvent(b []byte, id uint64, v *engine.Sale, status string) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nevent: availability\ndata: {\"sale_id\":"...)
	b = appendString(b, v.ID)
	b = append(b, `,"tiers":[`...)
	soldOut := true
	for i := range v.Tiers {
		var c engine.TierCounts
		if i < len(v.TierCounts) {
			c = v.TierCounts[i]
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendString(b, v.Tiers[i].ID)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, int64(c.Available), 10)
		b = append(b, `,"held":`...)
		b = strconv.AppendInt(b, int64(c.Held), 10)
		b = append(b, `,"sold":`...)
		b = strconv.AppendInt(b, int64(c.Sold), 10)
		b = append(b, '}')
		soldOut = soldOut && c.Available == 0
	}
	b = append(b, `],"sold_out":`...)
	b = strconv.AppendBool(b, soldOut)
	b = appendLiveQueue(b, v) // queue.go
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	return append(b, "\"}\n\n"...)
}

// close ends every stream and broadcaster and refuses new streams. A
// stream blocked writing to a client that does not read is cut at once by
// a write deadline in the past.
func (h *liveHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	now := time.Now()
	for sub := range h.subs {
		sub.conn.SetWriteDeadline(now)
	}
}
