package httpapi

import (
	"context"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Codes of this package's own problems. The engine's codes (engine.Code)
// share the namespace; every code, its status and its title are in
// problemTable, the one place that maps codes to HTTP.
const (
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeBodyTooLarge       = "body_too_large"
	codeHeaderTooLarge     = "header_too_large"
	codeRequestTimeout     = "request_timeout"
	codeBadRequest         = "bad_request"
	codeInvalidRequest     = string(engine.CodeInvalidRequest)
	codeInvalidCredentials = "invalid_credentials"
	codeUsernameTaken      = "username_taken"
	codeOverloaded         = "overloaded"
	codeRateLimited        = "rate_limited"
	codeUnavailable        = "unavailable"
	codeInternal           = "internal"
)

// 400s for requests that cannot be read as the route needs (RFC 9110: 400
// for what does not parse; 422 is for content that parses but is refused).
const (
	codeMalformedJSON         = "malformed_json"          // the body is not JSON at all
	codeIdempotencyKeyMissing = "idempotency_key_missing" // a purchase without its key
	codeInvalidQuery          = "invalid_query"           // a listing filter or cursor that cannot be used
	codeTooManyStreams        = "too_many_streams"        // live streams at their limit (live.go)
)

// problemType prefixes a code to make the problem's type URI.
const problemType = "https://onsale.dev/problems/"

type problemInfo struct {
	status int
	title  string
}

// problemTable maps every code to its HTTP status and title. An engine code
// missing here is answered as 500 internal, and a test fails.
var problemTable = map[string]problemInfo{
	// Not found.
	string(engine.CodeUnknownSale):       {404, "No such sale"},
	string(engine.CodeUnknownOrder):      {404, "No such order"},
	string(engine.CodeUnknownTicket):     {404, "No such ticket"},
	string(engine.CodeUnknownCredential): {404, "No such credential"},
	string(engine.CodeUnknownWebhook):    {404, "No such webhook endpoint"},
	string(engine.CodeUnknownFollow):     {404, "No such follow"},
	codeUnknownDelivery:                  {404, "No such delivery"},
	string(engine.CodeUnknownRefund):     {404, "No such refund"},
	string(engine.CodeUnknownTicketKey):  {404, "No such ticket key"},
	string(engine.CodeUnknownEvent):      {404, "No sale of this event"},
	codeNotFound:                         {404, "No such resource"},
	codeProviderNotConfigured:            {404, "Payment provider not configured"},

	// The request is well-formed HTTP but its content is not acceptable.
	string(engine.CodeUnknownTier):         {422, "No such tier"},
	string(engine.CodeInvalidQuantity):     {422, "Invalid quantity"},
	string(engine.CodeInvalidRequest):      {422, "Invalid request"},
	string(engine.CodePaymentMismatch):     {422, "Payment does not match the order"},
	string(engine.CodeIdempotencyConflict): {422, "Idempotency key reused for a different purchase"},
	string(engine.CodeInvalidTicket):       {422, "Not a valid ticket"},
	string(engine.CodeCouponUnknown):       {422, "No such coupon"},
	string(engine.CodeCouponNotApplicable): {422, "Coupon does not apply to this purchase"},

	// Refused by the state of the sale or order.
	string(engine.CodeSoldOut):              {409, "Sold out"},
	codeBackupExists:                        {409, "Backup destination exists"},
	codeBackupInJetStream:                   {409, "Back up the fleet's JetStream streams"},
	string(engine.CodeLimitExceeded):        {409, "Per-user limit exceeded"},
	string(engine.CodeSaleNotOpen):          {409, "Sale not open yet"},
	string(engine.CodeSaleClosed):           {409, "Sale closed"},
	string(engine.CodeStockBelowCommitted):  {409, "Stock below tickets sold or held"},
	string(engine.CodeTierRemoved):          {409, "Tier cannot be removed"},
	string(engine.CodeCurrencyChange):       {409, "Currency cannot change"},
	string(engine.CodeInvalidOrderState):    {409, "Order is not in a state that allows this"},
	string(engine.CodeTicketNotValid):       {409, "Ticket not valid"},
	string(engine.CodeTicketAlreadyCheckIn): {409, "Ticket already checked in"},
	string(engine.CodeTicketUsed):           {409, "Tickets of the order were used"},
	string(engine.CodeTicketRevoked):        {409, "Ticket revoked"},
	string(engine.CodeCurrentTicketKey):     {409, "The current ticket key cannot be retired"},
	string(engine.CodeTicketKeysExhausted):  {409, "No ticket key ids left"},
	string(engine.CodeCouponNotYetValid):    {409, "Coupon not valid yet"},
	string(engine.CodeCouponExpired):        {409, "Coupon expired"},
	string(engine.CodeCouponDisabled):       {409, "Coupon disabled"},
	string(engine.CodeCouponExhausted):      {409, "Coupon has no uses left"},
	string(engine.CodeCouponExists):         {409, "Coupon exists"},
	string(engine.CodeCouponCapBelowUses):   {409, "Coupon cap below its uses"},
	string(engine.CodeSaleArchived):         {409, "Sale archived"},
	string(engine.CodePendingOrders):        {409, "Sale has unpaid orders holding tickets"},
	codeUsernameTaken:                       {409, "Username taken"},
	string(engine.CodeFollowsLimit):         {409, "Too many follows"},

	// Buyers without an onsale account (profile.go).
	codeNoAccount: {404, "No onsale account"},

	// Real-name sales (realname.go).
	string(engine.CodeAttendeesRequired):     {422, "One attendee per ticket required"},
	string(engine.CodeDuplicateDocument):     {422, "A document named twice in one order"},
	string(engine.CodeDocumentLimitExceeded): {409, "Per-document limit exceeded"},

	// Refund and exchange rules (refundrules.go).
	string(engine.CodeRefundNotAllowed):     {409, "Refunds not allowed by the sale"},
	string(engine.CodeRefundWindowClosed):   {409, "Refund window closed"},
	string(engine.CodeExchangeNotAllowed):   {409, "Exchange not allowed by the sale"},
	string(engine.CodeExchangeInProgress):   {409, "Exchange in progress"},
	string(engine.CodeExchangeWindowClosed): {409, "Exchange window closed"},
	string(engine.CodeUnknownQueueItem):     {404, "No such refund queue item"},
	// Queued sales (queue.go).
	string(engine.CodeNotQueued):          {404, "Not queued"},
	string(engine.CodeAdmissionRequired):  {403, "Admission from the queue required"},
	string(engine.CodeAdmissionInvalid):   {403, "Not an admission of this buyer"},
	string(engine.CodeAdmissionUsed):      {409, "Admission used already"},
	string(engine.CodeAdmissionExpired):   {409, "Admission expired"},
	string(engine.CodeQueueFull):          {409, "Queue full"},
	string(engine.CodeRegistrationClosed): {409, "Lottery registration closed"}, // offers.go
	string(engine.CodeTicketsAvailable):   {409, "Tickets are on sale: buy them"},
	string(engine.CodeNotRegistered):      {404, "Not registered"},
	string(engine.CodeDocumentInQueue):    {409, "Document holds a place already"},

	// Who is asking.
	codeUnauthorized:       {401, "Unauthorized"},
	codeInvalidCredentials: {401, "Invalid username or password"},
	codeForbidden:          {403, "Forbidden"},

	// HTTP itself.
	codeBadRequest:       {400, "Malformed request"},
	codeInvalidQuery:     {400, "Invalid query parameter"},
	codeMethodNotAllowed: {405, "Method not allowed"},
	codeRequestTimeout:   {408, "Request timeout"},
	codeBodyTooLarge:     {413, "Request body too large"},
	codeHeaderTooLarge:   {431, "Request header too large"},

	// Unreadable requests.
	codeMalformedJSON:         {400, "Body is not JSON"},
	codeIdempotencyKeyMissing: {400, "Idempotency-Key header missing"},

	// The server.
	codeOverloaded:     {429, "Overloaded"},
	codeRateLimited:    {429, "Too many requests from this account"},
	codeInternal:       {500, "Internal error"},
	codeUnavailable:    {503, "Unavailable"},
	codeTooManyStreams: {503, "Too many live streams"},
}

// WriteUnavailable answers 503 unavailable with Retry-After, for what runs
// in front of the routes (httpapi/fleet).
func WriteUnavailable(ctx *fasthttp.RequestCtx, detail string) {
	writeProblem(ctx, codeUnavailable, detail, -1)
}

// WriteProblem answers with the problem of a known code (invalid_query,
// invalid_request, ...), for what runs in front of the routes
// (httpapi/fleet).
func WriteProblem(ctx *fasthttp.RequestCtx, code, detail string) {
	writeProblem(ctx, code, detail, -1)
}

// writeProblem answers with an application/problem+json body. available is
// written for sold_out only (pass -1 otherwise).
func writeProblem(ctx *fasthttp.RequestCtx, code, detail string, available int) {
	writeProblemFirst(ctx, code, detail, available, nil)
}

// writeProblemFirst is writeProblem that also writes, for
// already_checked_in, where and when the ticket was first admitted.
func writeProblemFirst(ctx *fasthttp.RequestCtx, code, detail string, available int, first *engine.Admission) {
	info, ok := problemTable[code]
	if !ok {
		code, info = codeInternal, problemTable[codeInternal]
	}
	ctx.Response.ResetBody()
	ctx.SetStatusCode(info.status)
	ctx.SetContentType("application/problem+json")
	switch info.status {
	case fasthttp.StatusTooManyRequests, fasthttp.StatusServiceUnavailable:
		ctx.Response.Header.Set("Retry-After", "1")
	case fasthttp.StatusUnauthorized:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="onsale"`)
	}
	buf := getBuffer()
	b := append((*buf)[:0], `{"type":"`...)
	b = append(b, problemType...)
	b = append(b, code...)
	b = append(b, `","title":`...)
	b = appendString(b, info.title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(info.status), 10)
	b = append(b, `,"detail":`...)
	b = appendString(b, detail)
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, '"')
	if available >= 0 {
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, int64(available), 10)
	}
	if first != nil {
		b = appendFirstAdmission(b, first) // checkin.go
	}
	b = append(b, "}\n"...)
	ctx.SetBody(b)
	putBuffer(buf, b)
}

// writeError answers an error from the engine (or the request context):
// a *engine.Rejection with its code, the operational errors with theirs.
// It returns the code, for metrics.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) string {
	var rej *engine.Rejection
	switch {
	case errors.As(err, &rej):
		available := -1
		if rej.Code == engine.CodeSoldOut {
			available = rej.Available
		}
		code := string(rej.Code)
		if _, ok := problemTable[code]; !ok {
			s.log.Error("engine rejection code has no HTTP mapping", "code", code, "detail", rej.Message)
			code = codeInternal
		}
		writeProblemFirst(ctx, code, rej.Message, available, rej.First)
		return code
	case errors.Is(err, engine.ErrOverloaded):
		writeProblem(ctx, codeOverloaded, "the sale's queue is full; retry in a second with the same Idempotency-Key", -1)
		return codeOverloaded
	case errors.Is(err, engine.ErrStopped):
		writeProblem(ctx, codeUnavailable, "the server is stopping; retry in a second with the same Idempotency-Key", -1)
		return codeUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeProblem(ctx, codeUnavailable,
			"no answer in time; the outcome is unknown until read back: retry with the same Idempotency-Key", -1)
		return codeUnavailable
	}
	s.log.Error("request failed", "path", string(ctx.Path()), "err", err)
	writeProblem(ctx, codeInternal, "internal error", -1)
	return codeInternal
}
