package engine

import "time"

type cmdKind uint8

const (
	cmdPurchase cmdKind = iota + 1
	cmdPutSale
	cmdLoad
	cmdSetClosed
	cmdGetOrder
	cmdUserOrders
	cmdSaleOrders
	cmdCancel
	cmdPay
	cmdRefund
	cmdCheckIn
	cmdTick
	cmdCreateCredential  // credentials.go
	cmdRevokeCredential  // credentials.go
	cmdBoxOfficePurchase // boxoffice.go
	cmdCounterPay        // boxoffice.go
	cmdTicketKeys        // ticketkeys.go
	cmdRotateKey         // ticketkeys.go
	cmdRetireKey         // ticketkeys.go
	cmdScans             // checkin.go: signed codes scanned at a gate
	cmdTickets           // tickets.go
	cmdRevocations       // revocations.go
	cmdSaleReport        // reports.go
	cmdSaleAttendees     // reports.go
	cmdAuditList         // audit.go
	cmdAuditRecord       // audit.go: an action that is not a shard's
	cmdPutCoupon         // coupons.go
	cmdPatchCoupon       // coupons.go
	cmdCoupons           // coupons.go
	cmdOrderRefs         // outbox.go: orders by key, for the outbox reader
	cmdPutWebhook        // webhooks.go
	cmdDeleteWebhook     // webhooks.go
	cmdWebhooks          // webhooks.go
	cmdRefundRequest     // refundrules.go
	cmdExchange          // refundrules.go
	cmdRefundQueue       // refundrules.go
	cmdSettleRefund      // refundrules.go
	cmdArchive           // archive.go
	cmdUnarchive         // archive.go
	cmdPayouts           // payouts.go
	cmdPayoutUpdate      // payouts.go
	cmdOrderByNumber     // ordernumber.go
	cmdQueueJoin         // queue.go
	cmdQueueStatus       // queue.go
	cmdQueueDraw         // queue.go
	cmdFollow            // follows.go
	cmdUnfollow          // follows.go
	cmdFollows           // follows.go
	cmdFollowers         // follows.go
	cmdOfferRegister     // offers.go
	cmdOfferStatus       // offers.go
	cmdOfferLeave        // offers.go
	cmdXSession          // xsession.go
)

// command is what a caller asks of a shard. It is a plain value: every
// string in it belongs to the caller's copy, never to a network buffer.
type command struct {
	kind     cmdKind
	saleID   string
	tierID   string
	userID   string
	key      string // idempotency key
	qty      int
	order    orderKey // the order a command is about
	newOrder orderKey // purchase: the id a new order gets
	payment  Payment
	sale     *SaleConfig
	sales    []SaleConfig // cmdLoad
	load     *loadGate
	closed   bool
	ticket   int
	force    bool // cmdRefund: refund although tickets were used
	after    int  // cmdSaleOrders: order index cursor (-1: from the start)
	limit    int
	cred     *Credential  // cmdCreateCredential
	box      *BoxOffice   // cmdBoxOfficePurchase: seller and contact; cmdCounterPay: the payment
	door     *doorCommand // the door's commands (checkin.go); nil for the others
	audit    *AuditEntry  // who asked, recorded with the outcome (audit.go); nil for buyers
	auditQ   *auditPage   // cmdAuditList
	coupon   string       // cmdPurchase: a coupon code, upper case (coupons.go)
	coupons  *couponCommand
	payouts  *payoutCommand // payouts.go

	attendees []Attendee // cmdPurchase on a real-name sale (realname.go)
	refs      []OrderRef // cmdOrderRefs (outbox.go)
	hook      *Webhook   // cmdPutWebhook (webhooks.go)

	refund    *refundCommand  // refundrules.go
	archive   *archiveCommand // cmdArchive, cmdUnarchive (archive.go)
	queue     *queueCommand   // queue.go
	admission *QueueAdmission // cmdPurchase on a queued sale (queue.go)
	follows   *followCommand  // follows.go
	offer     *offerCommand   // offers.go
	xs        *xsCommand      // xsession.go
}

// loadGate is LoadSales's two-phase handshake with one shard: the shard
// validates its part, says so on prepared, and decides nothing else until
// the caller says commit or abort.
type loadGate struct {
	prepared chan *Rejection
	commit   chan bool
}

// result is what a shard answers. The shard fills it at decide time; the
// caller may read it once done has fired.
type result struct {
	rej      *Rejection
	err      error
	created  bool
	payment  PaymentOutcome
	orderKey orderKey
	order    Order // ID left empty: the caller formats it outside the shard
	orders   []Order
	next     int
	sale     Sale
	sales    []Sale
	cred     Credential
	door     *doorResult   // the door's commands (checkin.go)
	reports  *reportResult // reports.go
	audit    []AuditEntry  // cmdAuditList
	coupons  []Coupon      // coupons.go
	hooks    []Webhook     // webhooks.go

	refundQueue []RefundQueueItem // cmdRefundQueue (refundrules.go)
	payouts     []Payout          // cmdPayouts (payouts.go)

	queue     *QueueStatus // queue.go
	queueDraw *QueueDraw
	follows   []Follow     // follows.go
	followers []string     // cmdFollowers (follows.go)
	offer     *OfferStatus // offers.go
	xs        *xsResult    // xsession.go
}

type request struct {
	cmd      command
	res      result
	deadline time.Duration // since Engine.started: shed if not decided by then
	durable  time.Duration // since Engine.started: when the acker answered it; set on a batch's last request only
	done     chan struct{} // buffered 1: the committer (or loop) never blocks
}
