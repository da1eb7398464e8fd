package api

import (
	"net/url"

	"github.com/valyala/fasthttp"
)

// QueueSpec is a sale's waiting room (README "The waiting room").
type QueueSpec struct {
	Mode                string `json:"mode"` // fifo or shuffle_at_open
	AdmitRate           int    `json:"admit_rate"`
	AdmissionTTLSeconds int    `json:"admission_ttl_seconds"`
}

// QueueJoin sends POST /v1/sales/{sale}/queue as the buyer (auth is the
// full Authorization value).
func (c *Client) QueueJoin(auth, saleID string) Result {
	return c.queueCall(fasthttp.MethodPost, auth, "/v1/sales/"+url.PathEscape(saleID)+"/queue")
}

// QueueMe sends GET /v1/sales/{sale}/queue/me as the buyer.
func (c *Client) QueueMe(auth, saleID string) Result {
	return c.queueCall(fasthttp.MethodGet, auth, "/v1/sales/"+url.PathEscape(saleID)+"/queue/me")
}

func (c *Client) queueCall(method, auth, path string) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	c.setURI(req, path)
	req.Header.Set(fasthttp.HeaderAuthorization, auth)
	return c.do(req, resp, false)
}
