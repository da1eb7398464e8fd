package httpapi

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/reportchart"
)

// Reports: GET /v1/admin/sales/{sale_id}/report, .../report/rush.png and
// GET /v1/admin/events/{event}/report. The engine computes a report from a
// frozen view of the sale (engine/reports.go) on this request's goroutine:
// the sale's shard is held only for the freeze. JSON by default;
// ?format=csv answers one table of it, chosen by ?table=rush (the default),
// tiers, checkins or payments (per minute).
//
// Coupon use has no section yet: it joins the report once coupons exist.

func (s *Server) saleReport(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	format, table, ok := reportFormat(ctx)
	if !ok {
		return
	}
	r, err := s.eng.SaleReport(s.reqCtx(), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeReport(ctx, &r, format, table)
}

func (s *Server) eventReport(ctx *fasthttp.RequestCtx, event []byte, _ principal) {
	format, table, ok := reportFormat(ctx)
	if !ok {
		return
	}
	r, err := s.eng.EventReport(s.reqCtx(), string(event))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeReport(ctx, &r, format, table)
}

// saleRushPNG: the rush curve as a line chart.
func (s *Server) saleRushPNG(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	r, err := s.eng.SaleReport(s.reqCtx(), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	sale := &r.Sales[0]
	var png bytes.Buffer
	title := fmt.Sprintf("Orders placed per %s: %s (%s)", bucketName(r.Rush.BucketMinutes), sale.Name, sale.ID)
	if err := reportchart.Rush(&png, title, r.Rush, r.PaymentsPerMinute); err != nil {
		s.log.Error("cannot draw the rush curve", "sale", sale.ID, "err", err)
		writeProblem(ctx, codeInternal, "cannot draw the chart", -1)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("image/png")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(png.Bytes())
}

func bucketName(minutes int) string {
	if minutes == 1 {
		return "minute"
	}
	return strconv.Itoa(minutes) + " minutes"
}

// reportFormat reads ?format= and ?table=; on bad input it answers and
// returns false.
func reportFormat(ctx *fasthttp.RequestCtx) (format, table string, ok bool) {
	args := ctx.QueryArgs()
	format, table = string(args.Peek("format")), string(args.Peek("table"))
	switch {
	case format != "" && format != "json" && format != "csv":
		writeProblem(ctx, codeInvalidRequest, "format must be json or csv", -1)
		return "", "", false
	case table != "" && format != "csv":
		writeProblem(ctx, codeInvalidRequest, "table is for format=csv; the JSON report has every table", -1)
		return "", "", false
	case table != "" && table != "rush" && table != "tiers" && table != "checkins" && table != "payments":
		writeProblem(ctx, codeInvalidRequest, "table must be rush, tiers, checkins or payments", -1)
		return "", "", false
	}
	return format, table, true
}

func (s *Server) writeReport(ctx *fasthttp.RequestCtx, r *engine.Report, format, table string) {
	if format != "csv" {
		s.writeJSON(ctx, fasthttp.StatusOK, reportJSON(r, s.now()))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	w := csv.NewWriter(ctx.Response.BodyWriter())
	switch table {
	case "tiers":
		w.Write([]string{"sale_id", "tier_id", "tier_name", "currency", "price_cents", "stock", "sold", "held",
			"available", "orders", "paid_orders", "revenue_cents", "refunds", "refunded_cents"})
		for _, sl := range r.Sales {
			for _, t := range sl.Tiers {
				w.Write([]string{sl.ID, t.ID, csvSafe(t.Name), sl.Currency, i64(t.PriceCents), strconv.Itoa(t.Stock),
					strconv.Itoa(t.Sold), strconv.Itoa(t.Held), strconv.Itoa(t.Available), strconv.Itoa(t.Orders),
					strconv.Itoa(t.PaidOrders), i64(t.RevenueCents), strconv.Itoa(t.Refunds), i64(t.RefundedCents)})
			}
		}
	case "checkins":
		w.Write([]string{"gate", "at", "admitted"})
		for _, g := range r.CheckIns.Gates {
			for _, b := range g.Buckets {
				w.Write([]string{csvSafe(g.Gate), formatTime(b.AtMs), strconv.Itoa(b.Admitted)})
			}
		}
	case "payments":
		w.Write([]string{"at", "payments", "paid_cents", "refunds", "refunded_cents"})
		for _, m := range r.PaymentsPerMinute {
			w.Write([]string{formatTime(m.AtMs), strconv.Itoa(m.Payments), i64(m.PaidCents), strconv.Itoa(m.Refunds), i64(m.RefundedCents)})
		}
	default:
		w.Write([]string{"at", "placed", "placed_tickets", "paid"})
		for _, b := range r.Rush.Buckets {
			w.Write([]string{formatTime(b.AtMs), strconv.Itoa(b.Placed), strconv.Itoa(b.PlacedTickets), strconv.Itoa(b.Paid)})
		}
	}
	w.Flush()
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

// The report's JSON. Times are RFC 3339 in UTC, amounts in cents.
type reportBody struct {
	Event       *string           `json:"event"`
	GeneratedAt string            `json:"generated_at"`
	Sales       []reportSaleBody  `json:"sales"`
	Orders      orderCountsBody   `json:"orders"`
	Money       []moneyBody       `json:"money"`
	Rush        rushBody          `json:"rush"`
	CheckIns    checkInsBody      `json:"checkins"`
	Payments    []paymentMinute   `json:"payments_per_minute"` // engine/paycurve.go
	Notes       map[string]string `json:"notes"`
}

// paymentMinute is one UTC minute with payments or refunds.
type paymentMinute struct {
	At            string `json:"at"`
	Payments      int    `json:"payments"`
	PaidCents     int64  `json:"paid_cents"`
	Refunds       int    `json:"refunds"`
	RefundedCents int64  `json:"refunded_cents"`
}

type reportSaleBody struct {
	SaleID   string           `json:"sale_id"`
	Name     string           `json:"name"`
	Currency string           `json:"currency"`
	Event    *string          `json:"event"`
	StartsAt *string          `json:"starts_at"`
	Closed   bool             `json:"closed"`
	Orders   orderCountsBody  `json:"orders"`
	Money    moneyBody        `json:"money"`
	Tiers    []reportTierBody `json:"tiers"`
}

type reportTierBody struct {
	TierID        string `json:"tier_id"`
	Name          string `json:"name"`
	PriceCents    int64  `json:"price_cents"`
	Stock         int    `json:"stock"`
	Sold          int    `json:"sold"`
	Held          int    `json:"held"`
	Available     int    `json:"available"`
	Orders        int    `json:"orders"`
	PaidOrders    int    `json:"paid_orders"`
	RevenueCents  int64  `json:"revenue_cents"`
	Refunds       int    `json:"refunds"`
	RefundedCents int64  `json:"refunded_cents"`
}

type orderCountsBody struct {
	Total           int `json:"total"`
	Pending         int `json:"pending"`
	Paid            int `json:"paid"`
	PaidNeedsRefund int `json:"paid_needs_refund"`
	Cancelled       int `json:"cancelled"`
	Expired         int `json:"expired"`
	Refunded        int `json:"refunded"`
}

type moneyBody struct {
	Currency             string `json:"currency"`
	RevenueCents         int64  `json:"revenue_cents"`
	NeedsRefundCents     int64  `json:"needs_refund_cents"`
	Refunds              int    `json:"refunds"`
	RefundedCents        int64  `json:"refunded_cents"`
	RefundFeesCents      int64  `json:"refund_fees_cents"`
	DuplicateCharges     int    `json:"duplicate_charges"`
	DuplicateChargeCents int64  `json:"duplicate_charge_cents"`
}

type rushBody struct {
	Start         *string      `json:"start"`
	BucketMinutes int          `json:"bucket_minutes"`
	Buckets       []rushBucket `json:"buckets"`
	Busiest       []rushBucket `json:"busiest"`
}

type rushBucket struct {
	At            string `json:"at"`
	Placed        int    `json:"placed"`
	PlacedTickets int    `json:"placed_tickets"`
	Paid          int    `json:"paid"`
}

type checkInsBody struct {
	Start         *string    `json:"start"`
	BucketMinutes int        `json:"bucket_minutes"`
	Admitted      int        `json:"admitted"`
	Gates         []gateBody `json:"gates"`
}

type gateBody struct {
	Gate     string          `json:"gate"`
	Admitted int             `json:"admitted"`
	Buckets  []checkInBucket `json:"buckets"`
}

type checkInBucket struct {
	At       string `json:"at"`
	Admitted int    `json:"admitted"`
}

// reportNotes say in the answer what the numbers cannot show yet.
var reportNotes = map[string]string{
	"rush":              "orders by the minute they were placed; paid counts those of them that stand paid now (when the money came in: payments_per_minute)",
	"refund_fees_cents": "always 0: refund fees do not exist yet",
	"coupons":           "coupon use is not reported yet",
}

func reportJSON(r *engine.Report, now time.Time) reportBody {
	b := reportBody{
		Event: optString(r.Event), GeneratedAt: now.UTC().Format(timeLayout),
		Sales: make([]reportSaleBody, len(r.Sales)), Orders: orderCountsBody(r.Orders),
		Money: make([]moneyBody, len(r.Money)), Notes: reportNotes,
		Rush:     rushBody{Start: optTime(r.Rush.StartMs, len(r.Rush.Buckets) > 0), BucketMinutes: r.Rush.BucketMinutes},
		CheckIns: checkInsBody{Start: optTime(r.CheckIns.StartMs, r.CheckIns.StartMs != 0), BucketMinutes: r.CheckIns.BucketMinutes, Admitted: r.CheckIns.Admitted},
	}
	for i, m := range r.Money {
		b.Money[i] = moneyBody(m)
	}
	for i := range r.Sales {
		sl := &r.Sales[i]
		sb := reportSaleBody{SaleID: sl.ID, Name: sl.Name, Currency: sl.Currency, Event: optString(sl.Event),
			StartsAt: optTime(sl.StartsAtMs, sl.StartsAtMs != 0), Closed: sl.Closed,
			Orders: orderCountsBody(sl.Orders), Money: moneyBody(sl.Money), Tiers: make([]reportTierBody, len(sl.Tiers))}
		for j, t := range sl.Tiers {
			sb.Tiers[j] = reportTierBody{TierID: t.ID, Name: t.Name, PriceCents: t.PriceCents, Stock: t.Stock,
				Sold: t.Sold, Held: t.Held, Available: t.Available, Orders: t.Orders, PaidOrders: t.PaidOrders,
				RevenueCents: t.RevenueCents, Refunds: t.Refunds, RefundedCents: t.RefundedCents}
		}
		b.Sales[i] = sb
	}
	b.Rush.Buckets = rushBuckets(r.Rush.Buckets)
	b.Payments = make([]paymentMinute, len(r.PaymentsPerMinute))
	for i, m := range r.PaymentsPerMinute {
		b.Payments[i] = paymentMinute{At: formatTime(m.AtMs), Payments: m.Payments, PaidCents: m.PaidCents,
			Refunds: m.Refunds, RefundedCents: m.RefundedCents}
	}
	b.Rush.Busiest = rushBuckets(r.Rush.Busiest)
	b.CheckIns.Gates = make([]gateBody, len(r.CheckIns.Gates))
	for i, g := range r.CheckIns.Gates {
		gb := gateBody{Gate: g.Gate, Admitted: g.Admitted, Buckets: make([]checkInBucket, len(g.Buckets))}
		for j, x := range g.Buckets {
			gb.Buckets[j] = checkInBucket{At: formatTime(x.AtMs), Admitted: x.Admitted}
		}
		b.CheckIns.Gates[i] = gb
	}
	return b
}

func rushBuckets(in []engine.RushBucket) []rushBucket {
	out := make([]rushBucket, len(in))
	for i, x := range in {
		out[i] = rushBucket{At: formatTime(x.AtMs), Placed: x.Placed, PlacedTickets: x.PlacedTickets, Paid: x.Paid}
	}
	return out
}

func optString(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func optTime(ms int64, set bool) *string {
	if !set {
		return nil
	}
	t := formatTime(ms)
	return &t
}
