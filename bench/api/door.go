package api

import (
	"fmt"
	"net/url"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

// Ticket states and the door's refusal code (issue 11).
const (
	TicketValid          = "valid"
	CodeAlreadyCheckedIn = "already_checked_in"
)

// Ticket is one ticket of GET /v1/orders/{order_id}/tickets.
type Ticket struct {
	N     int    `json:"index"`
	Code  string `json:"code"`
	State string `json:"state"`
}

// TicketList is the answer of GET /v1/orders/{order_id}/tickets.
type TicketList struct {
	Tickets []Ticket `json:"tickets"`
}

// ParseTickets decodes a tickets answer and checks what the door scenario
// relies on: every ticket has a code, and no two share a number.
func ParseTickets(body []byte) ([]Ticket, error) {
	var l TicketList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("api: cannot decode tickets: %w", err)
	}
	seen := make(map[int]bool, len(l.Tickets))
	for _, t := range l.Tickets {
		switch {
		case t.Code == "":
			return nil, fmt.Errorf("api: ticket %d has no code", t.N)
		case seen[t.N]:
			return nil, fmt.Errorf("api: ticket number %d twice", t.N)
		}
		seen[t.N] = true
	}
	return l.Tickets, nil
}

// Tickets fetches an order's tickets as admin. It returns the HTTP status
// with the error, so that a caller can tell a server without the route
// (404) from a broken answer.
func (c *Client) Tickets(orderID string) ([]Ticket, int, error) {
	path := "/v1/orders/" + url.PathEscape(orderID) + "/tickets"
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	c.setURI(req, path)
	req.Header.Set(fasthttp.HeaderAuthorization, c.adminAuth)
	if err := c.hc.DoTimeout(req, resp, 4*c.timeout); err != nil {
		return nil, 0, fmt.Errorf("api: GET %s: %w", path, err)
	}
	st := resp.StatusCode()
	if st != fasthttp.StatusOK {
		return nil, st, &StatusError{Method: "GET", Path: path, Status: st, Body: string(resp.Body())}
	}
	ts, err := ParseTickets(resp.Body())
	return ts, st, err
}

// CheckIn sends POST /v1/checkin {"code","gate"} as admin: 200 admits the
// ticket, 409 already_checked_in refuses a repeat.
func (c *Client) CheckIn(code, gate string) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	c.setURI(req, "/v1/checkin")
	req.Header.Set(fasthttp.HeaderAuthorization, c.adminAuth)
	req.Header.SetContentType("application/json")
	var buf [512]byte
	b := append(buf[:0], `{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"gate":`...)
	b = appendJSONString(b, gate)
	b = append(b, '}')
	req.SetBody(b)
	return c.do(req, resp, false)
}
