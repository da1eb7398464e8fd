package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"image/png"
	"testing"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/eticket/etickettest"
)

// publishedKeys reads a sale's public check-in keys as a scanner would.
func (e *testEnv) publishedKeys(sale string) func(string, uint8) ed25519.PublicKey {
	e.t.Helper()
	keys := map[uint8]ed25519.PublicKey{}
	r := e.want(e.do("GET", "/v1/sales/"+sale+"/checkin-key", nil, ""), 200, "")
	for _, k := range r.json()["keys"].([]any) {
		m := k.(map[string]any)
		kid, _ := m["kid"].(interface{ Int64() (int64, error) }).Int64()
		pub, err := base64.RawURLEncoding.DecodeString(m["public_key"].(string))
		if err != nil {
			e.t.Fatalf("public key: %v", err)
		}
		keys[uint8(kid)] = pub
	}
	return func(saleID string, kid uint8) ed25519.PublicKey {
		if saleID != sale {
			return nil
		}
		return keys[kid]
	}
}

// TestPrintedTicketsScanBack: the QR image and each page of the PDF of a
// paid order read back, with an independent decoder, to codes that verify
// with the key the sale publishes, and that the door admits once.
func TestPrintedTicketsScanBack(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	id := e.paidOrder("u1", "k1", 3)
	codes := e.codes(id)
	verify := e.publishedKeys("s1")
	owner := e.buyer("u1")

	for n, code := range codes {
		r := e.want(e.do("GET", "/v1/orders/"+id+"/tickets/"+string(rune('0'+n))+"/qr.png?size=300", owner, ""), 200, "")
		if ct := r.header.Get("Content-Type"); ct != "image/png" || r.header.Get("Cache-Control") != ticketsCacheControl {
			t.Fatalf("ticket %d: Content-Type %q, Cache-Control %q", n, ct, r.header.Get("Cache-Control"))
		}
		img, err := png.Decode(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("ticket %d: not a PNG: %v", n, err)
		}
		got, level, err := etickettest.ScanQR(img)
		if err != nil || got != code || level != "M" {
			t.Fatalf("ticket %d: QR reads %q (level %q, %v), want the listed code at M", n, got, level, err)
		}
		p, err := engine.VerifyTicketCode(got, verify)
		if err != nil || int(p.Ticket) != n {
			t.Fatalf("ticket %d: the scanned code does not verify with the published key: %+v %v", n, p, err)
		}
	}

	r := e.want(e.do("GET", "/v1/orders/"+id+"/tickets.pdf", owner, ""), 200, "")
	if r.header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(r.body, []byte("%PDF-")) {
		t.Fatalf("tickets.pdf: Content-Type %q, starts %.8q", r.header.Get("Content-Type"), r.body)
	}
	pages, err := etickettest.PageQRs(r.body)
	if err != nil || len(pages) != len(codes) {
		t.Fatalf("tickets.pdf: %d QR pages (%v), want %d", len(pages), err, len(codes))
	}
	for n, img := range pages {
		got, _, err := etickettest.ScanQR(img)
		if err != nil || got != codes[n] {
			t.Fatalf("page %d: QR reads %q (%v), want %q", n+1, got, err, codes[n])
		}
		if _, err := engine.VerifyTicketCode(got, verify); err != nil {
			t.Fatalf("page %d: %v", n+1, err)
		}
	}
	e.want(e.scan(codes[0], "north-1"), 200, "")
	e.want(e.scan(codes[0], "north-2"), 409, "already_checked_in")
}

// TestPrintedTicketsAccess: only who may read the order's tickets gets its
// images; a refunded order prints nothing; bad numbers and sizes are 4xx.
func TestPrintedTicketsAccess(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	id := e.paidOrder("u1", "k1", 1)
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/0/qr.png", e.buyer("u2"), ""), 404, "unknown_order")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets.pdf", e.buyer("u2"), ""), 404, "unknown_order")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/0/qr.png", nil, ""), 401, "unauthorized")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/0/qr.png", e.admin(), ""), 200, "")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/1/qr.png", e.admin(), ""), 404, "unknown_ticket")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/01/qr.png", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/0/qr.png?size=10", e.admin(), ""), 422, "invalid_request")

	e.want(e.do("POST", "/v1/admin/orders/"+id+"/refund", e.admin(), ""), 200, "")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets/0/qr.png", e.admin(), ""), 409, "ticket_revoked")
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets.pdf", e.admin(), ""), 409, "ticket_revoked")
}
