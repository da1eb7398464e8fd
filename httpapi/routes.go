package httpapi

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// route names one endpoint. Metrics are kept per route, in arrays indexed by
// it, so the hot path never looks a metric up by name.
type route uint8

const (
	routeNone route = iota // no route matched (404), or the request could not be parsed
	routeHealthz
	routeReadyz
	routeMetrics
	routeOpenAPI
	routeAdminPutSale           // PUT  /v1/admin/sales/{sale_id}
	routeAdminCloseSale         // POST /v1/admin/sales/{sale_id}:close
	routeAdminReopenSale        // POST /v1/admin/sales/{sale_id}:reopen
	routeAdminLoadSales         // POST /v1/admin/sales:load
	routeAdminListSales         // GET  /v1/admin/sales
	routeAdminSaleOrders        // GET  /v1/admin/sales/{sale_id}/orders
	routeAdminRefund            // POST /v1/admin/orders/{order_id}/refund
	routeRegister               // POST /v1/users
	routeLogin                  // POST /v1/sessions
	routeGetSale                // GET  /v1/sales/{sale_id}
	routePurchase               // POST /v1/sales/{sale_id}/purchase
	routeGetOrder               // GET  /v1/orders/{order_id}
	routeCancelOrder            // POST /v1/orders/{order_id}/cancel
	routeMyOrders               // GET  /v1/me/orders
	routeWebhook                // POST /v1/payments/webhook
	routeCheckIn                // POST /v1/checkin
	routeAdminCreateCredential  // POST   /v1/admin/credentials
	routeAdminListCredentials   // GET    /v1/admin/credentials (credentialRoute)
	routeAdminRevokeCredential  // DELETE /v1/admin/credentials/{credential_id}
	routePayAtCounter           // POST   /v1/orders/{order_id}/pay-at-counter
	routeCheckInSync            // POST /v1/checkin:sync
	routeCheckInKey             // GET  /v1/sales/{sale_id}/checkin-key
	routeRevocations            // GET  /v1/sales/{sale_id}/revocations
	routeOrderTickets           // GET  /v1/orders/{order_id}/tickets
	routeAdminRotateKey         // POST /v1/admin/sales/{sale_id}/checkin-keys:rotate
	routeAdminRetireKey         // POST /v1/admin/sales/{sale_id}/checkin-keys/{kid}:retire
	routeTicketQR               // GET  /v1/orders/{order_id}/tickets/{n}/qr.png
	routeTicketsPDF             // GET  /v1/orders/{order_id}/tickets.pdf
	routeStripe                 // POST /v1/payments/stripe (providers.go)
	routeAlipay                 // POST /v1/payments/alipay
	routeWeChatPay              // POST /v1/payments/wechatpay
	routeUnionPay               // POST /v1/payments/unionpay
	routeCatalogue              // GET  /v1/sales
	routeLiveSale               // GET  /v1/sales/{sale_id}/live
	routeAdminSaleReport        // GET  /v1/admin/sales/{sale_id}/report (reports.go)
	routeAdminSaleRushPNG       // GET  /v1/admin/sales/{sale_id}/report/rush.png
	routeAdminEventReport       // GET  /v1/admin/events/{event}/report
	routeAdminOrdersCSV         // GET  /v1/admin/sales/{sale_id}/orders.csv (exports.go)
	routeAdminAttendeesCSV      // GET  /v1/admin/sales/{sale_id}/attendees.csv
	routeAdminBackup            // POST /v1/admin/backup (backup.go)
	routeAdminAudit             // GET  /v1/admin/audit (audit.go)
	routeAdminCreateCoupon      // POST  /v1/admin/sales/{sale_id}/coupons (coupons.go)
	routeAdminListCoupons       // GET   /v1/admin/sales/{sale_id}/coupons (couponRoute)
	routeAdminPatchCoupon       // PATCH /v1/admin/sales/{sale_id}/coupons/{code}
	routeMe                     // GET   /v1/me (profile.go)
	routeUpdateMe               // PATCH /v1/me (meRoute)
	routeMePassword             // POST  /v1/me/password
	routeConsole                // GET   /console/{file} (console.go)
	routeAdminCreateWebhook     // POST   /v1/admin/webhooks (webhooks.go)
	routeAdminListWebhooks      // GET    /v1/admin/webhooks (webhookRoute)
	routeAdminDeleteWebhook     // DELETE /v1/admin/webhooks/{webhook_id}
	routeAdminWebhookDeliveries // GET    /v1/admin/webhooks/{webhook_id}/deliveries
	routeAdminRedeliver         // POST   /v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}:redeliver
	routeRefundRequest          // POST /v1/orders/{order_id}/refund-request (refundrules.go)
	routeExchange               // POST /v1/orders/{order_id}/exchange
	routeAdminRefundQueue       // GET  /v1/admin/refund-queue
	routeAdminSettleRefund      // POST /v1/admin/refund-queue/{item_id}:settle
	routeAdminArchiveSale       // POST /v1/admin/sales/{sale_id}:archive (archive.go)
	routeAdminUnarchiveSale     // POST /v1/admin/sales/{sale_id}:unarchive
	routeAdminRefunds           // GET  /v1/admin/refunds (refunds.go)
	routeAdminRetryRefund       // POST /v1/admin/refunds/{refund_id}:retry
	routeAdminMarkRefunded      // POST /v1/admin/refunds/{refund_id}:mark-refunded
	routeAdminReconciliation    // POST /v1/admin/reconciliation (reconcile.go)
	routeQueueJoin              // POST /v1/sales/{sale_id}/queue (queue.go)
	routeQueueMe                // GET  /v1/sales/{sale_id}/queue/me
	routeQueueDraw              // GET  /v1/sales/{sale_id}/queue/draw
	routeFollow                 // POST   /v1/me/follows (follows.go)
	routeListFollows            // GET    /v1/me/follows (followRoute)
	routeDeleteFollow           // DELETE /v1/me/follows/{follow_id}
	routeWaitlistJoin           // POST   /v1/sales/{sale_id}/waitlist (offers.go)
	routeWaitlistMe             // GET    /v1/sales/{sale_id}/waitlist/me
	routeWaitlistLeave          // DELETE /v1/sales/{sale_id}/waitlist/me (offerRoute)
	routeCount
)

// access is who may call a route.
type access uint8

const (
	accessPublic        access = iota
	accessAdmin                // the admin token
	accessBuyer                // a buyer's JWT
	accessBuyerOrAdmin         // a buyer's JWT (own orders) or the admin token
	accessDoor                 // a staff token, the door token or the admin token
	accessBuyerOrSeller        // a buyer's JWT, or a seller's token (box office)
	accessOrderReader          // a buyer's JWT (own orders), a seller's token (its sales' orders) or the admin token
	accessSeller               // a seller's token
)

type routeSpec struct {
	name   string // label in metrics
	method string
	access access
	handle func(s *Server, ctx *fasthttp.RequestCtx, param []byte, who principal)
}

// routes is filled in init: its handlers refer to Server methods.
var routes [routeCount]routeSpec

func init() {
	routes = [routeCount]routeSpec{
		routeNone:                   {name: "none"},
		routeHealthz:                {"healthz", "GET", accessPublic, (*Server).healthz},
		routeReadyz:                 {"readyz", "GET", accessPublic, (*Server).readyz},
		routeMetrics:                {"metrics", "GET", accessPublic, (*Server).metricsPage},
		routeOpenAPI:                {"openapi", "GET", accessPublic, (*Server).openAPI},
		routeAdminPutSale:           {"admin_put_sale", "PUT", accessAdmin, (*Server).putSale},
		routeAdminCloseSale:         {"admin_close_sale", "POST", accessAdmin, (*Server).closeSale},
		routeAdminReopenSale:        {"admin_reopen_sale", "POST", accessAdmin, (*Server).reopenSale},
		routeAdminLoadSales:         {"admin_load_sales", "POST", accessAdmin, (*Server).loadSales},
		routeAdminListSales:         {"admin_list_sales", "GET", accessAdmin, (*Server).listSales},
		routeAdminSaleOrders:        {"admin_sale_orders", "GET", accessAdmin, (*Server).saleOrders},
		routeAdminRefund:            {"admin_refund", "POST", accessAdmin, (*Server).refund},
		routeRegister:               {"register", "POST", accessPublic, (*Server).register},
		routeLogin:                  {"login", "POST", accessPublic, (*Server).login},
		routeGetSale:                {"get_sale", "GET", accessPublic, (*Server).getSale},
		routePurchase:               {"purchase", "POST", accessBuyerOrSeller, (*Server).purchase},
		routeGetOrder:               {"get_order", "GET", accessOrderReader, (*Server).getOrder},
		routeCancelOrder:            {"cancel_order", "POST", accessBuyerOrAdmin, (*Server).cancelOrder},
		routeMyOrders:               {"my_orders", "GET", accessBuyer, (*Server).myOrders},
		routeWebhook:                {"payment_webhook", "POST", accessPublic, (*Server).webhook},
		routeCheckIn:                {"checkin", "POST", accessDoor, (*Server).checkIn},
		routeAdminCreateCredential:  {"admin_create_credential", "POST", accessAdmin, (*Server).createCredential},
		routeAdminListCredentials:   {"admin_list_credentials", "GET", accessAdmin, (*Server).listCredentials},
		routeAdminRevokeCredential:  {"admin_revoke_credential", "DELETE", accessAdmin, (*Server).revokeCredential},
		routePayAtCounter:           {"pay_at_counter", "POST", accessSeller, (*Server).payAtCounter},
		routeCheckInSync:            {"checkin_sync", "POST", accessDoor, (*Server).checkInSync},
		routeCheckInKey:             {"checkin_key", "GET", accessPublic, (*Server).checkInKey},
		routeRevocations:            {"revocations", "GET", accessDoor, (*Server).revocations},
		routeOrderTickets:           {"order_tickets", "GET", accessOrderReader, (*Server).orderTickets},
		routeAdminRotateKey:         {"admin_rotate_checkin_key", "POST", accessAdmin, (*Server).rotateCheckInKey},
		routeAdminRetireKey:         {"admin_retire_checkin_key", "POST", accessAdmin, (*Server).retireCheckInKey},
		routeTicketQR:               {"ticket_qr", "GET", accessOrderReader, (*Server).ticketQR},
		routeTicketsPDF:             {"tickets_pdf", "GET", accessOrderReader, (*Server).ticketsPDF},
		routeStripe:                 {"payment_stripe", "POST", accessPublic, (*Server).stripeNotification},
		routeAlipay:                 {"payment_alipay", "POST", accessPublic, (*Server).alipayNotification},
		routeWeChatPay:              {"payment_wechatpay", "POST", accessPublic, (*Server).wechatPayNotification},
		routeUnionPay:               {"payment_unionpay", "POST", accessPublic, (*Server).unionPayNotification},
		routeCatalogue:              {"catalogue", "GET", accessPublic, (*Server).listCatalogue},
		routeLiveSale:               {"live_sale", "GET", accessPublic, (*Server).liveSale},
		routeAdminSaleReport:        {"admin_sale_report", "GET", accessAdmin, (*Server).saleReport},
		routeAdminSaleRushPNG:       {"admin_sale_rush_png", "GET", accessAdmin, (*Server).saleRushPNG},
		routeAdminEventReport:       {"admin_event_report", "GET", accessAdmin, (*Server).eventReport},
		routeAdminOrdersCSV:         {"admin_orders_csv", "GET", accessAdmin, (*Server).exportOrdersCSV},
		routeAdminAttendeesCSV:      {"admin_attendees_csv", "GET", accessAdmin, (*Server).exportAttendeesCSV},
		routeAdminBackup:            {"admin_backup", "POST", accessAdmin, (*Server).backup},
		routeAdminAudit:             {"admin_audit", "GET", accessAdmin, (*Server).listAudit},
		routeAdminCreateCoupon:      {"admin_create_coupon", "POST", accessAdmin, (*Server).createCoupon},
		routeAdminListCoupons:       {"admin_list_coupons", "GET", accessAdmin, (*Server).listCoupons},
		routeAdminPatchCoupon:       {"admin_patch_coupon", "PATCH", accessAdmin, (*Server).patchCoupon},
		routeMe:                     {"me", "GET", accessBuyer, (*Server).me},
		routeUpdateMe:               {"update_me", "PATCH", accessBuyer, (*Server).updateMe},
		routeMePassword:             {"me_password", "POST", accessBuyer, (*Server).changePassword},
		routeConsole:                {"console", "GET", accessPublic, (*Server).consolePage},
		routeAdminCreateWebhook:     {"admin_create_webhook", "POST", accessAdmin, (*Server).createWebhook},
		routeAdminListWebhooks:      {"admin_list_webhooks", "GET", accessAdmin, (*Server).listWebhooks},
		routeAdminDeleteWebhook:     {"admin_delete_webhook", "DELETE", accessAdmin, (*Server).deleteWebhook},
		routeAdminWebhookDeliveries: {"admin_webhook_deliveries", "GET", accessAdmin, (*Server).webhookDeliveries},
		routeAdminRedeliver:         {"admin_redeliver_webhook", "POST", accessAdmin, (*Server).redeliver},
		routeRefundRequest:          {"refund_request", "POST", accessBuyer, (*Server).refundRequest},
		routeExchange:               {"exchange", "POST", accessBuyer, (*Server).exchange},
		routeAdminRefundQueue:       {"admin_refund_queue", "GET", accessAdmin, (*Server).refundQueue},
		routeAdminSettleRefund:      {"admin_settle_refund", "POST", accessAdmin, (*Server).settleRefund},
		routeAdminArchiveSale:       {"admin_archive_sale", "POST", accessAdmin, (*Server).archiveSale},
		routeAdminUnarchiveSale:     {"admin_unarchive_sale", "POST", accessAdmin, (*Server).unarchiveSale},
		routeAdminRefunds:           {"admin_refunds", "GET", accessAdmin, (*Server).listRefunds},
		routeAdminRetryRefund:       {"admin_retry_refund", "POST", accessAdmin, (*Server).retryRefund},
		routeAdminMarkRefunded:      {"admin_mark_refunded", "POST", accessAdmin, (*Server).markRefunded},
		routeAdminReconciliation:    {"admin_reconciliation", "POST", accessAdmin, (*Server).reconcile},
		routeQueueJoin:              {"queue_join", "POST", accessBuyer, (*Server).queueJoin},
		routeQueueMe:                {"queue_me", "GET", accessBuyer, (*Server).queueMe},
		routeQueueDraw:              {"queue_draw", "GET", accessPublic, (*Server).queueDraw},
		routeFollow:                 {"follow", "POST", accessBuyer, (*Server).createFollow},
		routeListFollows:            {"list_follows", "GET", accessBuyer, (*Server).listFollows},
		routeDeleteFollow:           {"delete_follow", "DELETE", accessBuyer, (*Server).deleteFollow},
		routeWaitlistJoin:           {"waitlist_join", "POST", accessBuyer, (*Server).waitlistJoin},
		routeWaitlistMe:             {"waitlist_me", "GET", accessBuyer, (*Server).waitlistMe},
		routeWaitlistLeave:          {"waitlist_leave", "DELETE", accessBuyer, (*Server).waitlistLeave},
	}
}

// matchRoute finds the route of a (normalised, percent-decoded) path and
// its one parameter, a sub-slice of path: a sale or order id. Each path
// pattern belongs to exactly one route, so the method is checked after.
func matchRoute(path []byte) (route, []byte) {
	switch string(path) { // no allocation: the compiler compares in place
	case "/healthz":
		return routeHealthz, nil
	case "/readyz":
		return routeReadyz, nil
	case "/metrics":
		return routeMetrics, nil
	case "/openapi.json":
		return routeOpenAPI, nil
	case "/v1/admin/sales":
		return routeAdminListSales, nil
	case "/v1/admin/sales:load":
		return routeAdminLoadSales, nil
	case "/v1/users":
		return routeRegister, nil
	case "/v1/sessions":
		return routeLogin, nil
	case "/v1/me/orders":
		return routeMyOrders, nil
	case "/v1/me":
		return routeMe, nil
	case "/v1/me/password":
		return routeMePassword, nil
	case "/v1/payments/webhook":
		return routeWebhook, nil
	case "/v1/checkin":
		return routeCheckIn, nil
	case "/v1/admin/credentials":
		return routeAdminCreateCredential, nil
	case "/v1/checkin:sync":
		return routeCheckInSync, nil
	case "/v1/payments/stripe":
		return routeStripe, nil
	case "/v1/payments/alipay":
		return routeAlipay, nil
	case "/v1/payments/wechatpay":
		return routeWeChatPay, nil
	case "/v1/payments/unionpay":
		return routeUnionPay, nil
	case "/v1/sales":
		return routeCatalogue, nil
	case "/v1/admin/backup":
		return routeAdminBackup, nil
	case "/v1/admin/audit":
		return routeAdminAudit, nil
	case "/console":
		return routeConsole, nil
	case "/v1/admin/webhooks":
		return routeAdminCreateWebhook, nil
	case "/v1/me/follows":
		return routeFollow, nil // follows.go
	}
	if name, ok := bytes.CutPrefix(path, prefixConsole); ok {
		return routeConsole, name
	}
	if r, param, ok := matchWebhookRoute(path); ok { // webhooks.go
		return r, param
	}
	if r, param, ok := matchFollowRoute(path); ok { // follows.go
		return r, param
	}
	if rest, ok := bytes.CutPrefix(path, prefixSales); ok {
		id, tail := cutSegment(rest)
		switch {
		case len(id) == 0:
		case len(tail) == 0:
			return routeGetSale, id
		case string(tail) == "/purchase":
			return routePurchase, id
		case string(tail) == "/live":
			return routeLiveSale, id
		case string(tail) == "/checkin-key":
			return routeCheckInKey, id
		case string(tail) == "/revocations":
			return routeRevocations, id
		case string(tail) == "/queue":
			return routeQueueJoin, id
		case string(tail) == "/queue/me":
			return routeQueueMe, id
		case string(tail) == "/queue/draw":
			return routeQueueDraw, id
		case string(tail) == "/waitlist":
			return routeWaitlistJoin, id // offers.go
		case string(tail) == "/waitlist/me":
			return routeWaitlistMe, id
		}
		return routeNone, nil
	}
	if rest, ok := bytes.CutPrefix(path, prefixOrders); ok {
		id, tail := cutSegment(rest)
		switch {
		case len(id) == 0:
		case len(tail) == 0:
			return routeGetOrder, id
		case string(tail) == "/cancel":
			return routeCancelOrder, id
		case string(tail) == "/pay-at-counter":
			return routePayAtCounter, id
		case string(tail) == "/tickets":
			return routeOrderTickets, id
		case string(tail) == "/tickets.pdf":
			return routeTicketsPDF, id
		case string(tail) == "/refund-request":
			return routeRefundRequest, id // refundrules.go
		case string(tail) == "/exchange":
			return routeExchange, id
		case bytes.HasPrefix(tail, segmentTickets) && bytes.HasSuffix(tail, suffixQRPNG):
			// the parameter is "{order_id}/tickets/{n}" (ticketprint.go splits it)
			return routeTicketQR, rest[:len(rest)-len(suffixQRPNG)]
		}
		return routeNone, nil
	}
	if rest, ok := bytes.CutPrefix(path, prefixAdminSales); ok {
		seg, tail := cutSegment(rest)
		if len(tail) == 0 {
			if id, ok := bytes.CutSuffix(seg, suffixClose); ok && len(id) > 0 {
				return routeAdminCloseSale, id
			}
			if id, ok := bytes.CutSuffix(seg, suffixReopen); ok && len(id) > 0 {
				return routeAdminReopenSale, id
			}
			if id, ok := bytes.CutSuffix(seg, suffixArchive); ok && len(id) > 0 {
				return routeAdminArchiveSale, id
			}
			if id, ok := bytes.CutSuffix(seg, suffixUnarchive); ok && len(id) > 0 {
				return routeAdminUnarchiveSale, id
			}
		}
		switch {
		case len(seg) == 0 || bytes.IndexByte(seg, ':') >= 0:
		case len(tail) == 0:
			return routeAdminPutSale, seg
		case string(tail) == "/orders":
			return routeAdminSaleOrders, seg
		case string(tail) == "/orders.csv":
			return routeAdminOrdersCSV, seg
		case string(tail) == "/attendees.csv":
			return routeAdminAttendeesCSV, seg
		case string(tail) == "/report":
			return routeAdminSaleReport, seg
		case string(tail) == "/report/rush.png":
			return routeAdminSaleRushPNG, seg
		case string(tail) == "/checkin-keys:rotate":
			return routeAdminRotateKey, seg
		case bytes.HasPrefix(tail, checkInKeysSegment) && bytes.HasSuffix(tail, suffixRetire):
			// the parameter is "{sale_id}/checkin-keys/{kid}" (tickets.go splits it)
			return routeAdminRetireKey, rest[:len(rest)-len(suffixRetire)]
		}
		if r, param, ok := matchCouponRoute(rest, seg, tail); ok && len(seg) > 0 && bytes.IndexByte(seg, ':') < 0 {
			return r, param
		}
		return routeNone, nil
	}
	if rest, ok := bytes.CutPrefix(path, prefixAdminEvents); ok {
		if event, tail := cutSegment(rest); len(event) > 0 && string(tail) == "/report" {
			return routeAdminEventReport, event
		}
		return routeNone, nil
	}
	if id, ok := bytes.CutPrefix(path, prefixAdminCredentials); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
		return routeAdminRevokeCredential, id
	}
	if r, param, ok := matchPayoutRoute(path); ok { // refunds.go
		return r, param
	}
	if rest, ok := bytes.CutPrefix(path, prefixAdminOrders); ok {
		id, tail := cutSegment(rest)
		if len(id) > 0 && string(tail) == "/refund" {
			return routeAdminRefund, id
		}
	}
	if r, param, ok := matchRefundRoute(path); ok { // refundrules.go
		return r, param
	}
	return routeNone, nil
}

var (
	prefixSales            = []byte("/v1/sales/")
	prefixOrders           = []byte("/v1/orders/")
	prefixAdminSales       = []byte("/v1/admin/sales/")
	prefixAdminOrders      = []byte("/v1/admin/orders/")
	prefixAdminCredentials = []byte("/v1/admin/credentials/")
	prefixAdminEvents      = []byte("/v1/admin/events/")
	prefixConsole          = []byte("/console/")
	suffixClose            = []byte(":close")
	suffixReopen           = []byte(":reopen")
	suffixArchive          = []byte(":archive")
	suffixUnarchive        = []byte(":unarchive")
	suffixRetire           = []byte(":retire")
	checkInKeysSegment     = []byte("/checkin-keys/")
)

// cutSegment splits p at its first '/': the segment before, and the rest
// from the '/' on.
func cutSegment(p []byte) (seg, tail []byte) {
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, nil
}
