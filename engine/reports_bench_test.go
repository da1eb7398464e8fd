package engine

import (
	"strconv"
	"testing"
)

// BenchmarkSaleReport measures, on a shard of one sale with 1M orders
// (every fourth paid, a ticket in eight checked in), what a report costs
// the shard and what it costs beside it:
//
//   - shard_freeze: the shard's part of SaleReport (cmdSaleReport's
//     answer): the pause a report puts on the sale's shard;
//   - shard_freeze_then_first_write: that and one write to a shared
//     chunk, which copies it (as after a snapshot);
//   - aggregate: the report computed from the frozen view, on the caller's
//     goroutine;
//   - shard_attendees_page / shard_orders_page: the shard's part of one
//     page of the streaming exports (1,000 orders).
func BenchmarkSaleReport(b *testing.B) {
	const n = 1_000_000
	st := newState()
	const now = 1_800_000_000_000
	cfg := hotSale(now, n)
	var res result
	evs := st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, nil)
	users := benchUserIDs()
	cmd := command{kind: cmdPurchase, saleID: "hot", tierID: "ga", qty: 1}
	for i := range n {
		at := now + int64(i)*3 // a rush of 50 minutes
		cmd.userID, cmd.key = users[i%benchUsers], strconv.Itoa(i)
		cmd.newOrder = orderKey{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}
		res = result{}
		evs = st.execute(&cmd, at, &res, evs[:0])
		if i%4 == 0 {
			pay := command{kind: cmdPay, saleID: "hot", order: cmd.newOrder,
				payment: Payment{EventID: "p" + cmd.key, Succeeded: true, AmountCents: 4500, Currency: "EUR"}}
			evs = st.execute(&pay, at, &res, evs[:0])
			if i%8 == 0 {
				in := command{kind: cmdCheckIn, saleID: "hot", order: cmd.newOrder, door: &doorCommand{gate: "g" + strconv.Itoa(i%5)}}
				evs = st.execute(&in, at+3600_000, &res, evs[:0])
			}
		}
	}
	if st.orders.n != n || len(st.door.list) != n/8 {
		b.Fatalf("%d orders, %d admissions", st.orders.n, len(st.door.list))
	}
	report := command{kind: cmdSaleReport, saleID: "hot"}
	b.Run("shard_freeze", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var res result
			st.answerReport(&report, &res)
		}
	})
	// After a freeze the shard's first write to each chunk the view shares
	// copies it (1,024 orders): the pause a report adds later, per chunk.
	b.Run("shard_freeze_then_first_write", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			var res result
			st.answerReport(&report, &res)
			st.orders.mut(int32(i*chunkLen)%n).updatedAt++
		}
	})
	b.Run("aggregate", func(b *testing.B) {
		var res result
		st.answerReport(&report, &res)
		b.ReportAllocs()
		for range b.N {
			r := buildReport([]*frozenSale{res.reports.sale})
			if r.Orders.Total != n || r.CheckIns.Admitted != n/8 {
				b.Fatalf("report %+v", r.Orders)
			}
		}
	})
	for _, kind := range []cmdKind{cmdSaleAttendees, cmdSaleOrders} {
		name := map[cmdKind]string{cmdSaleAttendees: "shard_attendees_page", cmdSaleOrders: "shard_orders_page"}[kind]
		b.Run(name, func(b *testing.B) {
			page := command{kind: kind, saleID: "hot", after: n / 2, limit: 1000}
			b.ReportAllocs()
			for range b.N {
				var res result
				st.answer(&page, &res, false)
			}
		})
	}
}
