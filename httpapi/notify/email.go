package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime/multipart"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// SMTPConfig is the email channel: a purchase confirmation when an order
// is created, and its e-tickets (a PDF) when it is paid, to the address in
// the buyer's profile.
type SMTPConfig struct {
	Addr      string // host:port of the submission server; empty: no email
	From      string // the sender address
	User      string // PLAIN auth; empty: none (net/smtp refuses it without TLS except to localhost)
	Password  string
	StartTLS  bool        // require STARTTLS before auth and mail
	TLS       *tls.Config // [ServerName from Addr, system roots]
	PublicURL string      // the base of the tickets link, e.g. https://tickets.example [none: no link]
}

// emailWorker sends the emails of the outbox in order, one at a time.
type emailWorker struct {
	n      *Notifier
	cursor atomic.Uint64
	wake   chan struct{}
}

func (w *emailWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (n *Notifier) startEmail() {
	w := &emailWorker{n: n, wake: make(chan struct{}, 1)}
	pos := n.head
	found := false
	_ = n.store.AuxScan(keyEmail, prefixEnd(keyEmail), 1, func(k, v []byte) error {
		if bytes.Equal(k, keyEmail) && len(v) == 8 {
			pos, found = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	if !found {
		_ = n.store.AuxWrite([]wal.AuxOp{{Key: keyEmail, Value: u64(pos)}}, true)
	}
	w.cursor.Store(pos)
	n.mu.Lock()
	n.email = w
	n.mu.Unlock()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); w.run() }()
}

func (w *emailWorker) run() {
	for {
		poss, recs, err := w.n.readRecords(w.cursor.Load(), 64)
		if err != nil {
			w.n.cfg.Logger.Error("cannot read the outbox", "err", err)
			if !w.n.sleep(time.Second) {
				return
			}
			continue
		}
		if len(recs) == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.n.quit:
				return
			}
		}
		for i := range recs {
			if !w.send(&recs[i]) {
				return
			}
			w.cursor.Store(poss[i] + 1)
			if err := w.n.store.AuxWrite([]wal.AuxOp{{Key: keyEmail, Value: u64(poss[i] + 1)}}, false); err != nil {
				w.n.cfg.Logger.Error("cannot save the email cursor", "err", err)
			}
		}
	}
}

// send mails one record's email, retrying a temporary failure with
// backoff; false when the notifier stopped first. A permanent refusal
// (an SMTP 5xx reply) is logged and skipped: retrying it cannot help.
func (w *emailWorker) send(r *record) bool {
	if r.Kind == engine.NotifyEventOnSale {
		return w.mailFollowers(r) // onsale.go
	}
	if r.Kind != engine.NotifyOrderCreated && r.Kind != engine.NotifyOrderPaid && r.Kind != engine.NotifyOrderOffered || r.UserID == "" {
		return true
	}
	if !w.n.pace.wait(w.n.quit) { // pace.go
		return false
	}
	for attempt := 0; ; attempt++ {
		err := w.try(r)
		if err == nil {
			return true
		}
		if errors.Is(err, errNoAddress) {
			w.n.m.emails["no_address"].Inc()
			return true
		}
		w.n.m.emails["error"].Inc()
		var tp *textproto.Error
		if errors.As(err, &tp) && tp.Code >= 500 {
			w.n.cfg.Logger.Error("email refused for good; skipped", "event_id", r.EventID, "err", err)
			return true
		}
		w.n.cfg.Logger.Warn("cannot send email; will retry", "event_id", r.EventID, "attempt", attempt+1, "err", err)
		if !w.n.sleep(w.n.backoff(attempt)) {
			return false
		}
	}
}

var errNoAddress = errors.New("notify: the buyer has no email address")

func (w *emailWorker) try(r *record) error {
	src := w.n.src.Load()
	if src.EmailOf == nil {
		return errNoAddress
	}
	to, err := src.EmailOf(r.UserID)
	if err != nil {
		return err
	}
	if to == "" || strings.ContainsAny(to, "\r\n<>") {
		return errNoAddress
	}
	var p Payload
	if err := jsonv2.Unmarshal(r.Body, &p); err != nil {
		return fmt.Errorf("notify: bad outbox body: %w", err)
	}
	var pdf []byte
	if r.Kind == engine.NotifyOrderPaid && src.TicketsPDF != nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.n.cfg.Timeout)
		pdf, err = src.TicketsPDF(ctx, r.OrderID)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot render the tickets: %w", err)
		}
	}
	msg := composeEmail(w.n.cfg.SMTP, to, &p, pdf, w.n.cfg.Now())
	if err := sendMail(w.n.cfg.SMTP, w.n.cfg.Timeout, to, msg); err != nil {
		return err
	}
	w.n.m.emails["ok"].Inc()
	return nil
}

// composeEmail writes the message: a text part and, for a paid order, its
// tickets as a PDF attachment.
func composeEmail(cfg SMTPConfig, to string, p *Payload, pdf []byte, now time.Time) []byte {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	subject := "Your order " + p.Data.OrderID
	if p.Type == engine.NotifyOrderPaid {
		subject = "Your tickets for order " + p.Data.OrderID
	}
	var text strings.Builder
	switch p.Type {
	case engine.NotifyOrderPaid:
		text.WriteString("Thank you: your payment was received. Your tickets are attached.\r\n\r\n")
	case engine.NotifyOrderOffered:
		subject = "Tickets for you: order " + p.Data.OrderID
		text.WriteString("Good news: tickets you registered for are yours if you pay before the order expires (" +
			payBy(p.Data.ExpiresAt) + ").\r\n\r\n")
	default:
		text.WriteString("Thank you for your order. It holds your tickets until you pay.\r\n\r\n")
	}
	fmt.Fprintf(&text, "Order: %s\r\nSale: %s\r\nTier: %s\r\nQuantity: %d\r\nAmount: %d.%02d %s\r\nStatus: %s\r\n",
		p.Data.OrderID, p.Data.SaleID, p.Data.TierID, p.Data.Quantity, p.Data.AmountCents/100, p.Data.AmountCents%100, p.Data.Currency, p.Data.Status)
	if cfg.PublicURL != "" {
		fmt.Fprintf(&text, "Tickets: %s/v1/orders/%s/tickets.pdf\r\n", strings.TrimSuffix(cfg.PublicURL, "/"), p.Data.OrderID)
	}
	tw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Transfer-Encoding": {"8bit"}})
	tw.Write([]byte(text.String()))
	if pdf != nil {
		aw, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {`application/pdf; name="tickets-` + p.Data.OrderID + `.pdf"`},
			"Content-Disposition":       {`attachment; filename="tickets-` + p.Data.OrderID + `.pdf"`},
			"Content-Transfer-Encoding": {"base64"},
		})
		enc := base64.StdEncoding.EncodeToString(pdf)
		for len(enc) > 76 {
			aw.Write([]byte(enc[:76] + "\r\n"))
			enc = enc[76:]
		}
		aw.Write([]byte(enc + "\r\n"))
	}
	mw.Close()
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@onsale>\r\nMIME-Version: 1.0\r\n",
		cfg.From, to, subject, now.UTC().Format(time.RFC1123Z), p.ID)
	fmt.Fprintf(&msg, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mw.Boundary())
	msg.Write(body.Bytes())
	return msg.Bytes()
}

// sendMail delivers one message: STARTTLS when asked (and refused without
// it), PLAIN auth when a user is set, all within timeout.
func sendMail(cfg SMTPConfig, timeout time.Duration, to string, msg []byte) error {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", cfg.Addr, timeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("onsale"); err != nil {
		return err
	}
	if cfg.StartTLS {
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{ServerName: host}
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("notify: the SMTP server does not offer STARTTLS")
		}
		if err := c.StartTLS(tc); err != nil {
			return err
		}
	}
	if cfg.User != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.User, cfg.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(msg); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// payBy spells an offer's deadline in an email.
func payBy(t *time.Time) string {
	if t == nil {
		return "see the order"
	}
	return t.Format(time.RFC3339)
}
