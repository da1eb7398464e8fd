package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Streaming exports: GET /v1/admin/sales/{sale_id}/orders.csv and
// .../attendees.csv write every order (every ticket) of a sale in one
// response, whatever its size, in bounded memory: the body streams
// (chunked), and the rows come from the engine a page of exportPageOrders
// orders at a time, each page one short visit to the sale's shard, written
// and flushed before the next is asked for. So the server holds one page,
// never the export, and a client that reads slowly slows only its own
// export. Each order is as it stood when its page was read; orders placed
// during the export come at its end.
//
// The first page is read before the answer starts, so an unknown sale gets
// its 404 problem. A failure after that (the engine stopping, the server
// shutting down) closes the connection mid-body: the client sees a
// truncated chunked body, an error, never a short file that looks whole.
//
// fasthttp sets the connection's write deadline once, to WriteTimeout,
// before a response; the writer moves it before each page instead, so
// WriteTimeout bounds a page, not the export (as the live streams do).

// exportPageOrders is the orders per engine call of an export: a page
// costs the shard ~0.15 ms (engine's BenchmarkSaleReport) and the server
// ~1 MB.
const exportPageOrders = 1000

func (s *Server) exportOrdersCSV(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	saleID := string(id)
	fetch := func(ctx context.Context, cursor string) ([]engine.Order, string, error) {
		return s.eng.SaleOrders(ctx, saleID, cursor, exportPageOrders)
	}
	startExport(s, ctx, "orders.csv", orderCSVHeader, fetch, writeOrderCSV)
}

var attendeeCSVHeader = []string{"ticket_id", "order_id", "ticket", "tier", "user_id", "buyer_name",
	"state", "gate", "checked_in_at"}

func (s *Server) exportAttendeesCSV(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	saleID := string(id)
	fetch := func(ctx context.Context, cursor string) ([]engine.AttendeeRow, string, error) {
		return s.eng.SaleAttendees(ctx, saleID, cursor, exportPageOrders)
	}
	row := func(w *csv.Writer, a *engine.AttendeeRow) { s.writeAttendeeCSV(w, saleID, a) }
	startExport(s, ctx, "attendees.csv", attendeeCSVHeader, fetch, row)
}

// writeAttendeeCSV writes one ticket. The holder is the buyer's user id;
// a box-office sale's buyer also has the name the seller took (sealed in
// the log, opened here).
func (s *Server) writeAttendeeCSV(w *csv.Writer, saleID string, a *engine.AttendeeRow) {
	name := ""
	if a.BoxOffice != nil && a.BoxOffice.Contact != nil {
		if n, _, err := s.openContact(saleID, a.BoxOffice.Contact); err == nil {
			name = n
		}
	}
	state, at := "valid", ""
	switch {
	case a.CheckedIn && a.Status == engine.StatusRefunded:
		state = "checked_in_refunded" // let in, then refunded: the seat stays taken
	case a.CheckedIn:
		state = "checked_in"
	}
	if a.AtMs != 0 {
		at = formatTime(a.AtMs)
	}
	w.Write([]string{a.TicketID, a.OrderID, strconv.Itoa(a.Ticket), a.TierID, csvSafe(a.UserID), csvSafe(name),
		state, csvSafe(a.Gate), at})
}

// startExport reads the first page and, if the sale exists, answers with a
// body that streams every page.
func startExport[T any](s *Server, ctx *fasthttp.RequestCtx, file string, header []string,
	fetch func(context.Context, string) ([]T, string, error), row func(*csv.Writer, *T)) {
	page, next, err := fetch(s.reqCtx(), "")
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+file+`"`)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if ctx.IsHead() {
		return
	}
	conn := ctx.Conn()
	route := string(ctx.Path())
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		streamExport(s, w, conn, route, header, page, next, fetch, row)
	})
}

// streamExport runs on the goroutine fasthttp gives a body stream writer.
func streamExport[T any](s *Server, w *bufio.Writer, conn net.Conn, route string, header []string,
	page []T, next string, fetch func(context.Context, string) ([]T, string, error), row func(*csv.Writer, *T)) {
	cw := csv.NewWriter(w)
	cw.Write(header)
	for {
		for i := range page {
			row(cw, &page[i])
		}
		conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		cw.Flush()
		if cw.Error() != nil || w.Flush() != nil {
			return // the client went away
		}
		if next == "" {
			return
		}
		if s.stopping() {
			s.log.Warn("export cut short: the server is stopping", "path", route)
			conn.Close()
			return
		}
		var err error
		if page, next, err = fetch(s.reqCtx(), next); err != nil {
			s.log.Warn("export cut short", "path", route, "err", err)
			conn.Close()
			return
		}
	}
}

// stopping reports whether Shutdown has begun.
func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}
