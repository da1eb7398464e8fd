package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScript runs the state machine scripts in testdata/script. Each command
// prints the events it decided (or its rejection) and the counts of the
// sale it touched. Rewrite the expectations with -rewrite, then read the
// diff: the files are the specification of the rules.
//
//	sale id=s1 stock=2 [stock2=N] [limit=4] [opens=0] [closes=3600] [hold=600] [currency=EUR]
//	purchase name=o1 user=u1 [sale=s1] [tier=floor] [qty=1] [key=<name>]
//	pay name=o1 event=e1 [failed] [amount=N] [currency=EUR]
//	cancel name=o1 [user=u1] | refund name=o1 | checkin name=o1 ticket=0 | get name=o1
//	close sale=s1 | reopen sale=s1 | advance 600s | tick
//	sale ... [starts=7200] [refunds=auto|admin] [until=3600] [fee_percent=10] [fee_cents=0] [exchange_until=N] [exchange_fee=0]
//	refund-request name=o1 [user=u1] | exchange name=o1 as=o2 tier=seat [user=u1]
//	settle name=o1 kind=refund_request|needs_refund|duplicate_charge action=approve|reject|refunded [charge=0]
//	replay   (rebuilds the state from the events so far and compares)
func TestScript(t *testing.T) {
	datadriven.Walk(t, "testdata/script", func(t *testing.T, path string) {
		sc := newScript()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			out, err := sc.run(td)
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			return out
		})
	})
}

type script struct {
	st     *state
	now    int64 // ms since the script's epoch
	orders map[string]orderKey
	names  map[orderKey]string
	log    []event // every event so far, for replay
	next   byte
}

func newScript() *script {
	return &script{st: newState(), orders: map[string]orderKey{}, names: map[orderKey]string{}}
}

func (sc *script) run(td *datadriven.TestData) (string, error) {
	arg := func(key, def string) string {
		for _, a := range td.CmdArgs {
			if a.Key == key {
				if len(a.Vals) == 0 {
					return "true"
				}
				return a.Vals[0]
			}
		}
		return def
	}
	num := func(key string, def int) int {
		n, err := strconv.Atoi(arg(key, strconv.Itoa(def)))
		if err != nil {
			panic(fmt.Sprintf("%s: %v", key, err))
		}
		return n
	}
	var cmd command
	saleID := arg("sale", "s1")
	switch td.Cmd {
	case "advance":
		d, err := time.ParseDuration(td.CmdArgs[0].Key)
		if err != nil {
			return "", err
		}
		sc.now += d.Milliseconds()
		return fmt.Sprintf("now=%s", time.Duration(sc.now)*time.Millisecond), nil
	case "tick":
		start := len(sc.log)
		sc.log = sc.st.expireDue(sc.now, 100, sc.log)
		return sc.report(sc.log[start:], nil, saleID), nil
	case "replay":
		rebuilt := newState()
		for i := range sc.log {
			var buf []byte
			buf = appendEvent(buf, &sc.log[i])
			if err := decodeEntry(buf, rebuilt.apply); err != nil {
				return "", err
			}
		}
		rebuilt.dropStaleHolds()
		got, want := dumpState(rebuilt), dumpState(sc.st)
		if got != want {
			return "", fmt.Errorf("replayed state differs:\n%s\nwant:\n%s", got, want)
		}
		return "replayed state equals live state", nil
	case "sale":
		cfg := SaleConfig{
			ID: arg("id", "s1"), Name: "Sale", Currency: arg("currency", "EUR"),
			OpensAtMs: int64(num("opens", 0)) * 1000, ClosesAtMs: int64(num("closes", 3600)) * 1000,
			HoldMs: int64(num("hold", 600)) * 1000, PerUserLimit: num("limit", 4),
			Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: num("stock", 2)}},
		}
		if n := num("stock2", -1); n >= 0 {
			cfg.Tiers = append(cfg.Tiers, TierConfig{ID: "seat", Name: "Seat", PriceCents: 8000, Stock: n})
		}
		cfg.StartsAtMs = int64(num("starts", 0)) * 1000
		if r := arg("refunds", ""); r != "" || arg("exchange_until", "") != "" { // refundrules.go
			p := &RefundPolicy{}
			if r != "" {
				p.Refund = RefundRule{SelfService: true, UntilBeforeStartMs: int64(num("until", 0)) * 1000,
					FeePercent: num("fee_percent", 0), FeeCents: int64(num("fee_cents", 0)), Approval: RefundApprovalAuto}
				if r == "admin" {
					p.Refund.Approval = RefundApprovalAdmin
				}
			}
			if arg("exchange_until", "") != "" {
				p.Exchange = ExchangeRule{Allowed: true, UntilBeforeStartMs: int64(num("exchange_until", 0)) * 1000, FeeCents: int64(num("exchange_fee", 0))}
			}
			cfg.RefundPolicy = p
		}
		if arg("drop", "") == "floor" {
			cfg.Tiers = cfg.Tiers[1:]
		}
		if rej := validateSaleConfig(&cfg); rej != nil {
			return "rejected " + rej.Error(), nil
		}
		saleID = cfg.ID
		cmd = command{kind: cmdPutSale, saleID: cfg.ID, sale: &cfg}
	case "purchase":
		name := arg("name", "")
		sc.next++
		key := orderKey{sc.next}
		sc.orders[name], sc.names[key] = key, name
		cmd = command{kind: cmdPurchase, saleID: saleID, tierID: arg("tier", "floor"), qty: num("qty", 1),
			userID: arg("user", "u1"), key: arg("key", name), newOrder: key}
	case "pay":
		cmd = command{kind: cmdPay, payment: Payment{
			EventID: arg("event", ""), Succeeded: arg("failed", "") == "",
			AmountCents: int64(num("amount", -1)), Currency: arg("currency", "EUR"),
		}}
		if cmd.payment.AmountCents < 0 {
			cmd.payment.AmountCents = 0
			if o, _ := sc.st.orderByKey(sc.orders[arg("name", "")]); o != nil {
				cmd.payment.AmountCents = o.amount
			}
		}
	case "cancel":
		cmd = command{kind: cmdCancel, userID: arg("user", "")}
	case "refund":
		cmd = command{kind: cmdRefund, force: arg("force", "") != ""}
	case "checkin":
		cmd = command{kind: cmdCheckIn, ticket: num("ticket", 0)}
	case "get":
		cmd = command{kind: cmdGetOrder}
	case "refund-request":
		cmd = command{kind: cmdRefundRequest, userID: arg("user", "u1"), refund: &refundCommand{}}
	case "exchange":
		sc.next++
		key := orderKey{sc.next}
		sc.orders[arg("as", "")], sc.names[key] = key, arg("as", "")
		cmd = command{kind: cmdExchange, userID: arg("user", "u1"), tierID: arg("tier", "floor"), newOrder: key}
	case "settle":
		kind, _ := ParseRefundQueueKind(arg("kind", ""))
		action, _ := ParseSettleAction(arg("action", ""))
		cmd = command{kind: cmdSettleRefund, refund: &refundCommand{kind: kind, action: action, charge: num("charge", 0)}}
	case "close", "reopen":
		cmd = command{kind: cmdSetClosed, saleID: saleID, closed: td.Cmd == "close"}
	default:
		return "", fmt.Errorf("unknown command %q", td.Cmd)
	}
	if cmd.kind == cmdPay || cmd.kind == cmdCancel || cmd.kind == cmdRefund || cmd.kind == cmdCheckIn || cmd.kind == cmdGetOrder ||
		cmd.kind == cmdRefundRequest || cmd.kind == cmdExchange || cmd.kind == cmdSettleRefund {
		name := arg("name", "")
		k, ok := sc.orders[name]
		if !ok {
			k = orderKey{0xff}
		}
		cmd.saleID, cmd.order = saleID, k
	}
	var res result
	start := len(sc.log)
	sc.log = sc.st.execute(&cmd, sc.now, &res, sc.log)
	out := sc.report(sc.log[start:], &res, saleID)
	if cmd.kind == cmdGetOrder || cmd.kind == cmdPurchase && res.rej == nil && len(sc.log) == start {
		o := res.order
		out += fmt.Sprintf("\norder %s: %s%s qty=%d amount=%d tier=%s", sc.names[res.orderKey], o.Status,
			map[bool]string{true: " needs_refund"}[o.NeedsRefund], o.Quantity, o.AmountCents, o.TierID)
	}
	return out, nil
}

// report prints events, the rejection if any, and the sale's counts.
func (sc *script) report(evs []event, res *result, saleID string) string {
	var b strings.Builder
	if res != nil && res.rej != nil {
		fmt.Fprintf(&b, "rejected %s", res.rej.Code)
		if res.rej.Code == CodeSoldOut {
			fmt.Fprintf(&b, " available=%d", res.rej.Available)
		}
		fmt.Fprintf(&b, ": %s\n", res.rej.Message)
	}
	if res != nil {
		switch res.payment {
		case PaymentApplied:
			b.WriteString("payment applied\n")
		case PaymentDuplicateCharge:
			b.WriteString("payment not applied: duplicate charge recorded\n")
		case PaymentDuplicateChargeSeen:
			b.WriteString("payment not applied: duplicate charge seen before\n")
		case PaymentMismatch:
			b.WriteString("payment not applied: mismatch recorded for a refund\n")
		case PaymentMismatchSeen:
			b.WriteString("payment not applied: mismatch seen before\n")
		}
	}
	for i := range evs {
		ev := &evs[i]
		fmt.Fprintf(&b, "%s", ev.kind)
		switch ev.kind {
		case evSalePut:
			fmt.Fprintf(&b, " %s tiers=%d", ev.saleID, len(ev.sale.Tiers))
		case evSaleClosed:
			fmt.Fprintf(&b, " %s closed=%v", ev.saleID, ev.closed)
		case evOrderPlaced:
			fmt.Fprintf(&b, " %s user=%s tier=%d qty=%d amount=%d expires=%ds", sc.names[ev.order], ev.userID,
				ev.tier, ev.qty, ev.amount, ev.expiresAt/1000)
		case evTicketKeyAdded, evTicketKeyRetired:
			fmt.Fprintf(&b, " %s kid=%d", ev.saleID, ev.kid)
		case evRefundRules:
			fmt.Fprintf(&b, " %s", ev.saleID)
		default:
			fmt.Fprintf(&b, " %s", sc.names[ev.order])
			if ev.paymentID != "" {
				fmt.Fprintf(&b, " payment=%s", ev.paymentID)
			}
			if ev.needsRefund {
				b.WriteString(" needs_refund")
			}
			if ev.kind == evDuplicateCharge || ev.kind == evPaymentMismatch {
				fmt.Fprintf(&b, " amount=%d", ev.amount)
			}
			if ev.kind == evPaymentMismatch {
				fmt.Fprintf(&b, " currency=%s", ev.currency)
			}
			if ev.kind == evTicketCheckedIn || ev.kind == evTicketAdmitted {
				fmt.Fprintf(&b, " ticket=%d", ev.ticket)
			}
			if ev.gate != "" {
				fmt.Fprintf(&b, " gate=%s", ev.gate)
			}
			if re := ev.refund; re != nil { // refundrules.go
				switch ev.kind {
				case evRefundRequested, evRefundSettled:
					fmt.Fprintf(&b, " amount=%d fee=%d", re.amount, re.fee)
					if re.source != 0 {
						fmt.Fprintf(&b, " source=%s", re.source)
					}
				case evOrderExchanged:
					fmt.Fprintf(&b, " to=%s difference=%d fee=%d", sc.names[re.to], re.amount, re.fee)
				case evChargeRefunded:
					fmt.Fprintf(&b, " charge=%d", re.charge)
				}
			}
		}
		b.WriteByte('\n')
	}
	if sl, _ := sc.st.saleByID(saleID); sl != nil {
		for t, tier := range sl.cfg.Tiers {
			fmt.Fprintf(&b, "%s: stock=%d held=%d sold=%d available=%d\n",
				tier.ID, tier.Stock, sl.tiers[t].held, sl.tiers[t].sold, sl.available(t))
		}
	}
	sc.st.checkState()
	return strings.TrimSuffix(b.String(), "\n")
}

// dumpState prints a state canonically, for comparing live and replayed.
func dumpState(st *state) string {
	var lines []string
	for _, sl := range st.sales {
		lines = append(lines, fmt.Sprintf("sale %+v closed=%v orders=%d tiers=%v", sl.cfg, sl.closed, sl.orders, sl.tiers))
		var users []string
		for u, us := range sl.users {
			users = append(users, fmt.Sprintf("  user %s %+v", u, us))
		}
		slices.Sort(users)
		lines = append(lines, users...)
	}
	for i := int32(0); i < st.orders.n; i++ {
		lines = append(lines, fmt.Sprintf("order %+v", *st.orders.at(i)))
	}
	var charged []string
	for k, c := range st.charges {
		charged = append(charged, fmt.Sprintf("charges %x %+v", k, c))
	}
	slices.Sort(charged)
	lines = append(lines, charged...)
	lines = append(lines, fmt.Sprintf("pending=%d", st.pending))
	lines = append(lines, dumpDoor(st)...) // door_test.go
	return strings.Join(lines, "\n")
}
