package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// TestReportRoutes: a sale of one event with paid, pending, refunded and
// checked-in orders, and its report as JSON, as each CSV table, as a
// chart, summed over the event, and its attendees export (a box-office
// buyer by name).
func TestReportRoutes(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.catalogueSaleJSON(20, `"event":"tour"`)), 201, "")
	e.want(e.do("PUT", "/v1/admin/sales/s2", e.admin(), e.catalogueSaleJSON(20, `"event":"tour"`)), 201, "")
	o1 := e.paidOrder("u1", "k1", 2)
	e.clock.Advance(time.Minute)
	e.want(e.buy("s1", "u2", "k2", "seat", 1), 201, "") // pending
	o3 := e.paidOrder("u3", "k3", 1)
	e.want(e.do("POST", "/v1/admin/orders/"+o3+"/refund", e.admin(), ""), 200, "")
	box, _, err := e.eng.BoxOfficePurchase(context.Background(), engine.PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1,
		UserID: "box:seller", IdempotencyKey: "b1"}, "seller", e.srv.sealContact("s1", "Ada Lovelace", "ada@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	e.want(e.pay("evt_box", "payment.succeeded", box.ID, 5000, "EUR"), 200, "")
	e.want(e.scan(e.codes(o1)[0], "north"), 200, "")
	e.want(e.buy("s2", "u9", "k9", "floor", 1), 201, "")

	r := e.want(e.do("GET", "/v1/admin/sales/s1/report", e.admin(), ""), 200, "").json()
	orders := r["orders"].(map[string]any)
	if fmt.Sprint(orders["total"]) != "4" || fmt.Sprint(orders["paid"]) != "2" ||
		fmt.Sprint(orders["pending"]) != "1" || fmt.Sprint(orders["refunded"]) != "1" {
		t.Errorf("orders %v", orders)
	}
	money := r["money"].([]any)[0].(map[string]any)
	if fmt.Sprint(money["revenue_cents"]) != "15000" || fmt.Sprint(money["refunded_cents"]) != "5000" {
		t.Errorf("money %v", money)
	}
	rush := r["rush"].(map[string]any)
	if len(rush["buckets"].([]any)) != 2 || fmt.Sprint(rush["bucket_minutes"]) != "1" {
		t.Errorf("rush %v", rush)
	}
	if g := r["checkins"].(map[string]any)["gates"].([]any); len(g) != 1 || g[0].(map[string]any)["gate"] != "north" {
		t.Errorf("check-ins %v", g)
	}

	tiers := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/report?format=csv&table=tiers", e.admin(), ""), 200, ""))
	if len(tiers) != 3 || strings.Join(tiers[1][:9], ",") != "s1,floor,Floor,EUR,5000,20,3,0,17" {
		t.Errorf("tiers CSV %q", tiers)
	}
	curve := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/report?format=csv", e.admin(), ""), 200, ""))
	if len(curve) != 3 || strings.Join(curve[0], ",") != "at,placed,placed_tickets,paid" || strings.Join(curve[2][1:], ",") != "3,3,1" {
		t.Errorf("rush CSV %q", curve)
	}
	// Payments per minute: o1 in the first minute; o3, its refund and the
	// box office's in the second.
	pays := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/report?format=csv&table=payments", e.admin(), ""), 200, ""))
	if len(pays) != 3 || strings.Join(pays[0], ",") != "at,payments,paid_cents,refunds,refunded_cents" ||
		strings.Join(pays[1][1:], ",") != "1,10000,0,0" || strings.Join(pays[2][1:], ",") != "2,10000,1,5000" {
		t.Errorf("payments CSV %q", pays)
	}
	if ppm := r["payments_per_minute"].([]any); len(ppm) != 2 || fmt.Sprint(ppm[1].(map[string]any)["refunded_cents"]) != "5000" {
		t.Errorf("payments_per_minute %v", ppm)
	}
	door := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/report?format=csv&table=checkins", e.admin(), ""), 200, ""))
	if len(door) != 2 || door[1][0] != "north" || door[1][2] != "1" {
		t.Errorf("check-ins CSV %q", door)
	}

	chart := e.want(e.do("GET", "/v1/admin/sales/s1/report/rush.png", e.admin(), ""), 200, "")
	if _, err := png.Decode(bytes.NewReader(chart.body)); err != nil || chart.header.Get("Content-Type") != "image/png" {
		t.Errorf("chart: %v, %s", err, chart.header.Get("Content-Type"))
	}

	ev := e.want(e.do("GET", "/v1/admin/events/tour/report", e.admin(), ""), 200, "").json()
	if ev["event"] != "tour" || len(ev["sales"].([]any)) != 2 || fmt.Sprint(ev["orders"].(map[string]any)["total"]) != "5" {
		t.Errorf("event report %v %v", ev["event"], ev["orders"])
	}

	e.want(e.do("GET", "/v1/admin/events/nope/report", e.admin(), ""), 404, "unknown_event")
	e.want(e.do("GET", "/v1/admin/sales/nope/report", e.admin(), ""), 404, "unknown_sale")
	e.want(e.do("GET", "/v1/admin/sales/nope/report/rush.png", e.admin(), ""), 404, "unknown_sale")
	e.want(e.do("GET", "/v1/admin/sales/s1/report?format=xml", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/s1/report?table=tiers", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/s1/report?format=csv&table=nope", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/s1/report", e.buyer("u1"), ""), 403, "")

	att := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/attendees.csv", e.admin(), ""), 200, ""))
	want := []string{
		"ticket_id,order_id,ticket,tier,user_id,buyer_name,state,gate,checked_in_at",
		o1 + ".0," + o1 + ",0,floor,u1,,checked_in,north,",
		o1 + ".1," + o1 + ",1,floor,u1,,valid,,",
		box.ID + ".0," + box.ID + ",0,floor,box:seller,Ada Lovelace,valid,,",
	}
	if att[1][8] != formatTime(e.clock.Now().UnixMilli()) {
		t.Errorf("checked in at %q", att[1][8])
	}
	var got []string
	for i, row := range att {
		if i == 1 && row[8] != "" {
			row[8] = "" // the scan time: checked apart
		}
		got = append(got, strings.Join(row, ","))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("attendees\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	all := e.csv(e.want(e.do("GET", "/v1/admin/sales/s1/orders.csv", e.admin(), ""), 200, ""))
	if len(all) != 5 || strings.Join(all[0], ",") != strings.Join(orderCSVHeader, ",") || all[1][0] != o1 {
		t.Errorf("orders.csv %q", all)
	}
	e.want(e.do("GET", "/v1/admin/sales/nope/orders.csv", e.admin(), ""), 404, "unknown_sale")
	e.want(e.do("GET", "/v1/admin/sales/nope/attendees.csv", e.admin(), ""), 404, "unknown_sale")
}

func (e *testEnv) csv(r *resp) [][]string {
	e.t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		e.t.Fatalf("CSV %q: %v", r.body, err)
	}
	return rows
}
