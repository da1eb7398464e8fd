package api

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

// Client is a typed onsale API client over one fasthttp.HostClient.
type Client struct {
	hc            *fasthttp.HostClient
	addr          string
	adminAuth     string
	paymentSecret []byte
	payer         *Payer // nil: the generic webhook
	timeout       time.Duration
	now           func() time.Time
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Addr          string // host:port, loopback only
	AdminToken    string
	PaymentSecret []byte
	Payer         *Payer // pays through a provider's route (pay.go); nil: the generic webhook
	MaxConns      int
	Timeout       time.Duration // per request
}

// ErrNotLoopback is returned for any target outside 127.0.0.0/8 and ::1:
// the harness sends load to this machine only.
var ErrNotLoopback = errors.New("api: target is not a loopback address")

// CheckLoopback returns ErrNotLoopback unless addr is host:port with a
// loopback IP literal or "localhost".
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api: bad address %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("api: bad port in %q", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// NewClient returns a client for the server at cfg.Addr.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := CheckLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	hc := &fasthttp.HostClient{
		Addr:                     cfg.Addr,
		Name:                     "onsale-bench",
		MaxConns:                 cfg.MaxConns,
		MaxConnWaitTimeout:       cfg.Timeout,
		MaxIdleConnDuration:      time.Minute,
		ReadTimeout:              cfg.Timeout,
		WriteTimeout:             cfg.Timeout,
		MaxResponseBodySize:      64 << 20,
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
	}
	return &Client{
		hc:            hc,
		addr:          cfg.Addr,
		adminAuth:     "Bearer " + cfg.AdminToken,
		paymentSecret: cfg.PaymentSecret,
		payer:         cfg.Payer,
		timeout:       cfg.Timeout,
		now:           time.Now,
	}, nil
}

// setURI points req at path on the server.
func (c *Client) setURI(req *fasthttp.Request, path string) {
	req.SetRequestURI(path)
	req.Header.SetHost(c.addr)
}

// Addr is the server's host:port.
func (c *Client) Addr() string { return c.addr }

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Result is the outcome of one request. Status 0 means no HTTP answer; Code
// then says why (CodeTimeout, CodeTransport).
type Result struct {
	Status int
	Code   string
	Order  Order // set on 2xx answers of order endpoints when decoded
}

// OK reports a 2xx answer.
func (r *Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Business reports an answer that is a definitive business outcome: a 2xx,
// or a 409 the buyer caused (sold out, over the limit, not open, closed),
// or a 409 for a ticket scanned again (already checked in).
func (r *Result) Business() bool {
	if r.OK() {
		return true
	}
	if r.Status != fasthttp.StatusConflict {
		return false
	}
	switch r.Code {
	case CodeSoldOut, CodeLimitExceeded, CodeSaleNotOpen, CodeSaleClosed, CodeAlreadyCheckedIn:
		return true
	}
	return false
}

// BearerHeader is the Authorization value for a token.
func BearerHeader(token string) string { return "Bearer " + token }

// Purchase sends POST /v1/sales/{sale}/purchase. auth is the full
// Authorization value (see BearerHeader); decodeOrder asks for the order of
// a 2xx answer.
func (c *Client) Purchase(auth, saleID, tier string, qty int, key string, decodeOrder bool) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	c.setURI(req, "/v1/sales/"+url.PathEscape(saleID)+"/purchase")
	req.Header.Set(fasthttp.HeaderAuthorization, auth)
	req.Header.Set("Idempotency-Key", key)
	req.Header.SetContentType("application/json")
	var buf [256]byte
	b := append(buf[:0], `{"tier":`...)
	b = appendJSONString(b, tier)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, int64(qty), 10)
	b = append(b, '}')
	req.SetBody(b)
	return c.do(req, resp, decodeOrder)
}

// Cancel sends POST /v1/orders/{id}/cancel as the buyer (auth) or admin.
func (c *Client) Cancel(auth, orderID string) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	c.setURI(req, "/v1/orders/"+url.PathEscape(orderID)+"/cancel")
	req.Header.Set(fasthttp.HeaderAuthorization, auth)
	return c.do(req, resp, false)
}

// GetOrder sends GET /v1/orders/{id}; auth "" means as admin.
func (c *Client) GetOrder(auth, orderID string) Result {
	if auth == "" {
		auth = c.adminAuth
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	c.setURI(req, "/v1/orders/"+url.PathEscape(orderID))
	req.Header.Set(fasthttp.HeaderAuthorization, auth)
	return c.do(req, resp, true)
}

// Pay pays an order: through the client's provider (pay.go) when it has
// one, else through the generic webhook. providerNo is the order's
// provider_order_no.
func (c *Client) Pay(ev *PaymentEvent, providerNo string) Result {
	if c.payer != nil {
		return c.payer.Pay(c, ev, providerNo)
	}
	return c.Webhook(ev)
}

// Webhook signs ev with the payment secret at the current time and sends
// it to POST /v1/payments/webhook.
func (c *Client) Webhook(ev *PaymentEvent) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	c.setURI(req, "/v1/payments/webhook")
	req.Header.SetContentType("application/json")
	var buf [512]byte
	b := append(buf[:0], `{"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, ev.Type)
	b = append(b, `,"order_id":`...)
	b = appendJSONString(b, ev.OrderID)
	b = append(b, `,"amount_cents":`...)
	b = strconv.AppendInt(b, ev.AmountCents, 10)
	b = append(b, `,"currency":`...)
	b = appendJSONString(b, ev.Currency)
	b = append(b, '}')
	req.SetBody(b)
	req.Header.Set(SignatureHeader, Sign(c.paymentSecret, c.now().Unix(), b))
	return c.do(req, resp, false)
}

// ReadSale sends the public GET /v1/sales/{id} and discards the body: the
// load path's availability read.
func (c *Client) ReadSale(saleID string) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	c.setURI(req, "/v1/sales/"+url.PathEscape(saleID))
	return c.do(req, resp, false)
}

// Browse sends a public GET /v1/sales?... (pathQuery is path and query)
// and returns the answer and its next_cursor ("" on the last page).
func (c *Client) Browse(pathQuery string) (Result, string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	c.setURI(req, pathQuery)
	res := c.do(req, resp, false)
	if !res.OK() {
		return res, ""
	}
	// The cursor is the body's last member; find it without decoding the
	// page, which is not what is measured.
	body := resp.Body()
	i := bytes.LastIndex(body, []byte(`"next_cursor":"`))
	if i < 0 {
		return res, ""
	}
	rest := body[i+len(`"next_cursor":"`):]
	if j := bytes.IndexByte(rest, '"'); j > 0 {
		return res, string(rest[:j])
	}
	return res, ""
}

func (c *Client) do(req *fasthttp.Request, resp *fasthttp.Response, decodeOrder bool) Result {
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
			return Result{Code: CodeTimeout}
		}
		return Result{Code: CodeTransport}
	}
	r := Result{Status: resp.StatusCode()}
	if r.OK() {
		if decodeOrder {
			if err := json.Unmarshal(resp.Body(), &r.Order); err != nil {
				r.Code = "bad_json"
			}
		}
		return r
	}
	r.Code = problemCode(resp.Body())
	return r
}

// GetSale fetches and decodes the public view of a sale.
func (c *Client) GetSale(saleID string) (SaleView, error) {
	var v SaleView
	err := c.JSON(fasthttp.MethodGet, "/v1/sales/"+url.PathEscape(saleID), "", nil, &v, 200)
	return v, err
}

// PutSale creates or updates a sale as admin.
func (c *Client) PutSale(s *SaleSpec) error {
	return c.JSON(fasthttp.MethodPut, "/v1/admin/sales/"+url.PathEscape(s.ID), c.adminAuth, s, nil, 200, 201)
}

// LoadSales loads many sales at once as admin (all or nothing).
func (c *Client) LoadSales(sales []SaleSpec) error {
	doc := struct {
		Sales []SaleSpec `json:"sales"`
	}{sales}
	return c.JSON(fasthttp.MethodPost, "/v1/admin/sales:load", c.adminAuth, &doc, nil, 200, 201)
}

// ExportOrders pages through GET /v1/admin/sales/{id}/orders.
func (c *Client) ExportOrders(saleID string, pageSize int) ([]Order, error) {
	var all []Order
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1_000_000 {
			return nil, errors.New("api: export does not end")
		}
		q := url.Values{}
		q.Set("limit", strconv.Itoa(pageSize))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page OrderPage
		path := "/v1/admin/sales/" + url.PathEscape(saleID) + "/orders?" + q.Encode()
		if err := c.JSON(fasthttp.MethodGet, path, c.adminAuth, nil, &page, 200); err != nil {
			return nil, err
		}
		all = append(all, page.Orders...)
		if page.NextCursor == "" || len(page.Orders) == 0 {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Status sends GET path and returns the status code (0 on no answer).
func (c *Client) Status(path string) int {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.setURI(req, path)
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		return 0
	}
	return resp.StatusCode()
}

// StatusError is a JSON call's unexpected answer.
type StatusError struct {
	Method, Path string
	Status       int
	Problem      Problem
	Body         string
}

func (e *StatusError) Error() string {
	if e.Problem.Code != "" {
		return fmt.Sprintf("api: %s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Problem.Code, e.Problem.Detail)
	}
	return fmt.Sprintf("api: %s %s: %d %.200s", e.Method, e.Path, e.Status, e.Body)
}

// JSON sends a request with an optional JSON body and decodes a JSON answer
// into out when its status is one of want. auth "" sends no Authorization.
func (c *Client) JSON(method, path, auth string, in, out any, want ...int) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	c.setURI(req, path)
	if auth != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, auth)
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: cannot encode %s %s: %w", method, path, err)
		}
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(b)
	}
	if err := c.hc.DoTimeout(req, resp, 4*c.timeout); err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	st := resp.StatusCode()
	for _, w := range want {
		if st != w {
			continue
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("api: cannot decode %s %s: %w", method, path, err)
		}
		return nil
	}
	se := &StatusError{Method: method, Path: path, Status: st, Body: string(resp.Body())}
	_ = json.Unmarshal(resp.Body(), &se.Problem)
	return se
}

// problemCode pulls "code" out of a problem+json body without a full decode
// (most answers of a flash sale are 409 sold_out). Known codes come back as
// constants so that counting them does not allocate.
func problemCode(body []byte) string {
	i := bytes.Index(body, []byte(`"code"`))
	if i < 0 {
		return ""
	}
	rest := body[i+len(`"code"`):]
	rest = bytes.TrimLeft(rest, " \t\r\n:")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return internCode(rest[:j])
}

var knownCodes = []string{
	CodeSoldOut, CodeLimitExceeded, CodeSaleNotOpen, CodeSaleClosed, CodeUnknownSale,
	CodeUnknownTier, CodeInvalidRequest, CodeUnauthorized, CodeForbidden, CodeNotFound,
	CodeIdempotencyConflict, CodeOverloaded, CodeAlreadyCheckedIn,
}

func internCode(b []byte) string {
	for _, k := range knownCodes {
		if string(b) == k {
			return k
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// Get sends GET path and returns a copy of the body and the status.
func (c *Client) Get(path string) ([]byte, int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.setURI(req, path)
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		return nil, 0, fmt.Errorf("api: GET %s: %w", path, err)
	}
	return append([]byte(nil), resp.Body()...), resp.StatusCode(), nil
}
