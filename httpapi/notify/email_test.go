package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/eticket"
)

// mailbox is a real SMTP server (go-smtp) on loopback that offers STARTTLS,
// wants PLAIN auth, and keeps every message it accepts.
type mailbox struct {
	mu    sync.Mutex
	msgs  []received
	got   chan struct{}
	fail  int // the next DATA commands refused with a 451 (temporary)
	plain bool
}

type received struct {
	from string
	to   []string
	data []byte
	tls  bool
}

func (m *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &mailSession{m: m, tls: isTLS}, nil
}

type mailSession struct {
	m     *mailbox
	tls   bool
	authd bool
	cur   received
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "onsale" || pass != "mail-password" {
			return errors.New("bad credentials")
		}
		s.authd = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authd {
		return smtp.ErrAuthRequired
	}
	s.cur = received{from: from, tls: s.tls}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.fail > 0 {
		s.m.fail--
		return &smtp.SMTPError{Code: 451, Message: "try again later"}
	}
	s.cur.data = b
	s.m.msgs = append(s.m.msgs, s.cur)
	select {
	case s.m.got <- struct{}{}:
	default:
	}
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// startMailbox serves SMTP with STARTTLS under a certificate made for
// 127.0.0.1, and returns the client's TLS settings that trust it.
func startMailbox(t *testing.T, m *mailbox) (addr string, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	m.got = make(chan struct{}, 1)
	srv := smtp.NewServer(m)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1", RootCAs: pool}
}

func (m *mailbox) waitFor(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		m.mu.Lock()
		msgs := append([]received(nil), m.msgs...)
		m.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-m.got:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %d emails; got %d", n, len(msgs))
		}
	}
}

// TestEmailIsReadBack: a purchase mails its confirmation and the payment
// the tickets as a PDF attachment, over STARTTLS with auth, to the
// address of the buyer's profile; a temporary refusal is retried.
func TestEmailIsReadBack(t *testing.T) {
	mb := &mailbox{fail: 1}
	addr, clientTLS := startMailbox(t, mb)
	ft := &fakeTime{now: time.Now()}
	cfg := Config{After: ft.After, SMTP: SMTPConfig{Addr: addr, From: "tickets@onsale.example", User: "onsale", Password: "mail-password",
		StartTLS: true, TLS: clientTLS, PublicURL: "https://tickets.example/"}}
	nd := startNode(t, t.TempDir(), cfg)
	pdf := samplePDF(t)
	nd.n.SetSources(Sources{
		EmailOf: func(userID string) (string, error) {
			if userID == "user:ann" {
				return "ann@example.com", nil
			}
			return "", nil
		},
		TicketsPDF: func(context.Context, string) ([]byte, error) { return pdf, nil },
	})
	ctx := context.Background()
	if _, _, err := nd.eng.PutSale(ctx, testSale("s1")); err != nil {
		t.Fatal(err)
	}
	buy(t, nd.eng, "s1", "user:bob", "k") // no address: no email
	o := buy(t, nd.eng, "s1", "user:ann", "k")
	if _, _, err := nd.eng.ApplyPayment(ctx, engine.Payment{EventID: "pay_1", OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	msgs := mb.waitFor(t, 2)
	if len(msgs) != 2 {
		t.Fatalf("%d emails, want 2", len(msgs))
	}
	for i, want := range []string{"Your order " + o.ID, "Your tickets for order " + o.ID} {
		m := msgs[i]
		if !m.tls || m.from != "tickets@onsale.example" || len(m.to) != 1 || m.to[0] != "ann@example.com" {
			t.Fatalf("email %d: tls %v from %q to %v", i, m.tls, m.from, m.to)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get("Subject"); got != want {
			t.Fatalf("email %d: subject %q, want %q", i, got, want)
		}
		parts := readParts(t, msg)
		if !strings.Contains(parts[0].text, "Order: "+o.ID) || !strings.Contains(parts[0].text, "Amount: 50.00 EUR") ||
			!strings.Contains(parts[0].text, "https://tickets.example/v1/orders/"+o.ID+"/tickets.pdf") {
			t.Fatalf("email %d text:\n%s", i, parts[0].text)
		}
		if i == 0 && len(parts) != 1 {
			t.Fatalf("the confirmation has %d parts, want the text alone", len(parts))
		}
		if i == 1 {
			if len(parts) != 2 || parts[1].contentType != "application/pdf" || !bytes.HasPrefix(parts[1].body, []byte("%PDF-")) ||
				!bytes.Equal(parts[1].body, pdf) {
				t.Fatalf("the tickets email's attachment: %d parts, %q, %q...", len(parts), parts[1].contentType, parts[1].body[:min(8, len(parts[1].body))])
			}
		}
	}
	ft.mu.Lock()
	retried := len(ft.waits)
	ft.mu.Unlock()
	if retried != 1 {
		t.Fatalf("%d retries, want 1 after the server's 451", retried)
	}
}

type part struct {
	contentType string
	text        string
	body        []byte
}

func readParts(t *testing.T, msg *mail.Message) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var out []part
	for {
		p, err := r.NextPart() // decodes quoted-printable; base64 below
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			dec, err := io.ReadAll(base64Reader(b))
			if err != nil {
				t.Fatal(err)
			}
			b = dec
		}
		out = append(out, part{contentType: ct, text: string(b), body: b})
	}
}

func samplePDF(t *testing.T) []byte {
	var b bytes.Buffer
	err := eticket.PDF(&b, []eticket.Ticket{{Code: "ONSALE-TEST-CODE", OrderID: "s1.x", N: 0, Event: "Concert", Tier: "Floor"}})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func base64Reader(b []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)))
}
