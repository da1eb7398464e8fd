package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/eticket"
	"github.com/onsale/onsale/httpapi/notify"
)

// Webhook endpoints, the HTTP side (delivery is httpapi/notify's):
//
//	POST   /v1/admin/webhooks                          register (url, events, secret)
//	GET    /v1/admin/webhooks                          list
//	DELETE /v1/admin/webhooks/{id}                     delete
//	GET    /v1/admin/webhooks/{id}/deliveries          the delivery log, newest first
//	POST   /v1/admin/webhooks/{id}/deliveries/{delivery_id}:redeliver
//
// The secret is the caller's (16 to 128 bytes) or drawn here; it is
// answered once, at registration, and stored only sealed. Without a
// notifier (Config.Notify nil) these routes answer 404 not_found.

const (
	webhookIDPrefix    = "wh_"
	webhookSecretMin   = 16
	webhookSecretMax   = 128
	deliveriesLimitMax = 200
)

// webhookEndpointBody is POST /v1/admin/webhooks (schema WebhookInput).
type webhookEndpointBody struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret *string  `json:"secret"`
}

func (s *Server) notifier(ctx *fasthttp.RequestCtx) (*notify.Notifier, bool) {
	if s.cfg.Notify == nil {
		writeProblem(ctx, codeNotFound, "notifications are not configured on this server", -1)
		return nil, false
	}
	return s.cfg.Notify, true
}

// createWebhook: POST /v1/admin/webhooks. 201 with the endpoint and its
// secret, shown this once.
func (s *Server) createWebhook(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	n, ok := s.notifier(ctx)
	if !ok {
		return
	}
	var body webhookEndpointBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if problem := checkWebhookURL(body.URL); problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		return
	}
	var secret string
	if body.Secret != nil {
		secret = *body.Secret
		if len(secret) < webhookSecretMin || len(secret) > webhookSecretMax {
			writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("secret must have %d to %d bytes", webhookSecretMin, webhookSecretMax), -1)
			return
		}
	} else {
		var b [32]byte
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		secret = "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
	}
	var id [10]byte
	rand.Read(id[:])
	w := engine.Webhook{ID: webhookIDPrefix + credentialIDEncoding.EncodeToString(id[:]), URL: body.URL, Events: body.Events}
	if w.Events == nil {
		w.Events = []string{}
	}
	w.SecretSealed = n.SealSecret(w.ID, []byte(secret))
	stored, err := s.eng.CreateWebhook(s.engineCtx(ctx), w)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/admin/webhooks/"+stored.ID)
	s.writeJSON(ctx, fasthttp.StatusCreated, webhookJSON(&stored, secret))
}

// checkWebhookURL accepts an absolute http or https URL with a host and
// no user info.
func checkWebhookURL(raw string) string {
	if raw == "" || len(raw) > engine.WebhookURLLenMax {
		return fmt.Sprintf("url must be an http or https URL of 1 to %d bytes", engine.WebhookURLLenMax)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return "url must be an absolute http or https URL such as https://hooks.example/onsale, without user info or fragment"
	}
	return ""
}

type webhookOut struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"secret,omitempty"`
}

func webhookJSON(w *engine.Webhook, secret string) webhookOut {
	events := w.Events
	if events == nil {
		events = []string{}
	}
	return webhookOut{ID: w.ID, URL: w.URL, Events: events, CreatedAt: time.UnixMilli(w.CreatedAtMs).UTC(), Secret: secret}
}

// listWebhooks: GET /v1/admin/webhooks, in creation order; never a secret.
func (s *Server) listWebhooks(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	if _, ok := s.notifier(ctx); !ok {
		return
	}
	hooks, err := s.eng.Webhooks(s.reqCtx())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	out := struct {
		Webhooks []webhookOut `json:"webhooks"`
	}{Webhooks: make([]webhookOut, 0, len(hooks))}
	for i := range hooks {
		out.Webhooks = append(out.Webhooks, webhookJSON(&hooks[i], ""))
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}

// deleteWebhook: DELETE /v1/admin/webhooks/{id}. 200 with the endpoint;
// what it had not received yet is dropped.
func (s *Server) deleteWebhook(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	if _, ok := s.notifier(ctx); !ok {
		return
	}
	w, err := s.eng.DeleteWebhook(s.engineCtx(ctx), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, webhookJSON(&w, ""))
}

// webhookDeliveries: GET /v1/admin/webhooks/{id}/deliveries?limit=
func (s *Server) webhookDeliveries(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	n, ok := s.notifier(ctx)
	if !ok {
		return
	}
	limit := 50
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		l, err := strconv.Atoi(string(v))
		if err != nil || l < 1 || l > deliveriesLimitMax {
			writeProblem(ctx, codeInvalidQuery, fmt.Sprintf("limit must be 1 to %d", deliveriesLimitMax), -1)
			return
		}
		limit = l
	}
	if !s.webhookExists(ctx, string(id)) {
		return
	}
	ds, err := n.Deliveries(string(id), limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, struct {
		Deliveries []notify.Delivery `json:"deliveries"`
	}{ds})
}

// redeliver: POST /v1/admin/webhooks/{id}/deliveries/{delivery_id}:redeliver.
// One attempt now; 200 with the delivery's log entry, whatever the receiver
// answered (the entry says).
func (s *Server) redeliver(ctx *fasthttp.RequestCtx, param []byte, _ principal) {
	n, ok := s.notifier(ctx)
	if !ok {
		return
	}
	id, deliveryID, _ := bytes.Cut(param, []byte("/deliveries/"))
	if !s.webhookExists(ctx, string(id)) {
		return
	}
	d, err := n.Redeliver(string(id), string(deliveryID))
	if errors.Is(err, notify.ErrUnknownDelivery) || errors.Is(err, notify.ErrUnknownEndpoint) {
		writeProblem(ctx, codeUnknownDelivery, fmt.Sprintf("webhook endpoint %s has no delivery %q in its log", id, deliveryID), -1)
		return
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if a := auditOf(ctx); a != nil { // not a shard command: recorded after it happened (audit.go)
		a.Target = string(id) + "/" + string(deliveryID)
		if err := s.eng.RecordAudit(s.reqCtx(), *a, "ok"); err != nil {
			s.log.Error("cannot record audit entry", "action", a.Action, "err", err)
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, d)
}

func (s *Server) webhookExists(ctx *fasthttp.RequestCtx, id string) bool {
	if s.cfg.Notify != nil && s.cfg.Notify.DeliversShared(id) { // a fleet partition's (httpapi/fleet deliveries.go)
		return true
	}
	hooks, err := s.eng.Webhooks(s.reqCtx())
	if err != nil {
		s.writeError(ctx, err)
		return false
	}
	for i := range hooks {
		if hooks[i].ID == id {
			return true
		}
	}
	writeProblem(ctx, string(engine.CodeUnknownWebhook), fmt.Sprintf("no webhook endpoint %q", id), -1)
	return false
}

const codeUnknownDelivery = "unknown_delivery"

// webhookRoute picks the route of /v1/admin/webhooks by method.
func webhookRoute(r route, method []byte) route {
	if r == routeAdminCreateWebhook && (bytes.Equal(method, []byte("GET")) || bytes.Equal(method, []byte("HEAD"))) {
		return routeAdminListWebhooks
	}
	return r
}

var (
	prefixAdminWebhooks = []byte("/v1/admin/webhooks/")
	segmentDeliveries   = []byte("/deliveries")
	suffixRedeliver     = []byte(":redeliver")
)

// matchWebhookRoute matches the paths under /v1/admin/webhooks/.
func matchWebhookRoute(path []byte) (route, []byte, bool) {
	rest, ok := bytes.CutPrefix(path, prefixAdminWebhooks)
	if !ok {
		return routeNone, nil, false
	}
	id, tail := cutSegment(rest)
	switch {
	case len(id) == 0:
	case len(tail) == 0:
		return routeAdminDeleteWebhook, id, true
	case bytes.Equal(tail, segmentDeliveries):
		return routeAdminWebhookDeliveries, id, true
	case bytes.HasPrefix(tail, append(segmentDeliveries, '/')) && bytes.HasSuffix(tail, suffixRedeliver):
		d := tail[len(segmentDeliveries)+1 : len(tail)-len(suffixRedeliver)]
		if len(d) > 0 && bytes.IndexByte(d, '/') < 0 {
			return routeAdminRedeliver, rest[:len(rest)-len(suffixRedeliver)], true // "{id}/deliveries/{delivery_id}"
		}
	}
	return routeNone, nil, true
}

// notifySources are the lookups the notifier asks of the server: a
// buyer's email (from the sealed profile) and an order's tickets as a PDF.
func (s *Server) notifySources() notify.Sources {
	return notify.Sources{EmailOf: s.emailOf, TicketsPDF: s.orderTicketsPDF}
}

// emailOf returns the email address in an onsale account's profile; ""
// for a buyer without one (or whose login is the site's).
func (s *Server) emailOf(userID string) (string, error) {
	username, ok := strings.CutPrefix(userID, userIDPrefix)
	if !ok || s.cfg.Users == nil {
		return "", nil
	}
	raw, found, err := s.cfg.Users.Get(userKeyPrefix + username)
	if err != nil || !found {
		return "", err
	}
	var rec userRecord
	if err := jsonv2.Unmarshal(raw, &rec); err != nil {
		return "", err
	}
	if len(rec.Profile) == 0 {
		return "", nil
	}
	plain, err := openData(s.personal.profile, "onsale profile/"+username, rec.Profile)
	if err != nil {
		return "", err
	}
	var p profile
	if err := jsonv2.Unmarshal(plain, &p); err != nil {
		return "", err
	}
	return p.Email, nil
}

// orderTicketsPDF renders an order's valid tickets as GET
// /v1/orders/{id}/tickets.pdf does.
func (s *Server) orderTicketsPDF(ctx context.Context, orderID string) ([]byte, error) {
	ot, err := s.eng.Tickets(ctx, orderID)
	if err != nil {
		return nil, err
	}
	pages := s.ticketPages(&ot)
	if len(pages) == 0 {
		return nil, nil
	}
	var out bytes.Buffer
	if err := eticket.PDF(&out, pages); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
