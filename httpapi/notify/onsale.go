package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// event.on_sale: a sale with a catalogue is announced (its creation entry,
// engine.DecodeNotifications) and, later, opens. Both phases become one
// outbox record each, delivered to the endpoints that take event.on_sale
// and mailed by the email worker to every buyer who follows the sale's
// event, venue or category (engine.Followers), once per sale, phase and
// buyer.
//
// # Opening is noticed here, not in the shard
//
// Nothing is decided when opens_at passes: a purchase compares the clock
// with the sale's opens_at itself. So rather than have every shard's tick
// look for sales that just opened and log an event for each (state per
// sale, a snapshot field, work on the purchase path's goroutine), the
// reader keeps the announced sales that have not opened yet in its own
// keys ("nw" sale → opens_at) and, each round, turns those whose opens_at
// has passed into an "open" record, in the same write that deletes their
// key: crash before it, and the sale is still pending and opens after the
// restart; crash after, and the record is in the outbox. A later put of
// the sale moves its opens_at (the reader sees every SalePut); a sale
// closed by an admin, or no longer in the engine, is dropped without a
// record. The open record's id is "evt_open_<sale>", stable. Cost: one
// key per announced sale until it opens, and a look at a small map each
// round (RoundInterval, 250 ms: the lateness of an "open").
//
// # Once per buyer
//
// The email worker mails an on_sale record's followers in user id order,
// a page (FollowersPageMax) at a time, and after each buyer stores the
// last one mailed ("nf" event id → user): a restart resumes after that
// buyer. Once every follower is mailed, the key says so ("nf" id → done,
// synced), so a record read again from the log after a crash (the same
// id) mails nobody twice. A buyer who follows the event and the venue
// gets one email.

var (
	keyOpens    = []byte("nw") // "nw" sale → opensAt(8): announced, not open yet
	keyFollowed = []byte("nf") // "nf" event id → the last user mailed, or followDone
	followDone  = []byte{0xff}
)

func opensKey(sale string) []byte    { return append(clone(keyOpens), sale...) }
func followedKey(id string) []byte   { return append(clone(keyFollowed), id...) }
func openEventID(sale string) string { return "evt_open_" + sale }

// loadOpens reads the sales waiting to open.
func (n *Notifier) loadOpens() error {
	n.opens = make(map[string]int64)
	return n.store.AuxScan(keyOpens, prefixEnd(keyOpens), 0, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("notify: bad pending open %x", k)
		}
		n.opens[string(k[len(keyOpens):])] = int64(binary.BigEndian.Uint64(v))
		return nil
	})
}

// trackOpen is the reader's look at a sale notification: an announced
// sale waits for its opening; a put moves a waiting sale's opens_at.
func (n *Notifier) trackOpen(x *engine.Notification, ops []wal.AuxOp) []wal.AuxOp {
	_, waiting := n.opens[x.SaleID]
	if x.Kind == engine.NotifyEventOnSale || x.Kind == engine.NotifySaleAnnounced && waiting {
		n.opens[x.SaleID] = x.Sale.OpensAtMs
		ops = append(ops, wal.AuxOp{Key: opensKey(x.SaleID), Value: u64(uint64(x.Sale.OpensAtMs))})
	}
	return ops
}

// dueOpens returns the ops that store, from head on, the records of
// the waiting sales that have opened by now and forget those sales (the
// caller deletes them from n.opens once the ops are written), and the
// next head.
func (n *Notifier) dueOpens(head uint64) ([]wal.AuxOp, []string, uint64) {
	nowMs := n.cfg.Now().UnixMilli()
	var due []string
	for sale, at := range n.opens {
		if at <= nowMs {
			due = append(due, sale)
		}
	}
	slices.Sort(due) // positions in a stable order, not the map's
	var ops []wal.AuxOp
	var forget []string
	for _, sale := range due {
		s, err := n.eng.Sale(context.Background(), sale)
		if err == nil && s.OpensAtMs > nowMs { // moved later by a put not read yet
			n.opens[sale] = s.OpensAtMs
			ops = append(ops, wal.AuxOp{Key: opensKey(sale), Value: u64(uint64(s.OpensAtMs))})
			continue
		}
		ops = append(ops, wal.AuxOp{Key: opensKey(sale)}) // deleted
		forget = append(forget, sale)
		if err != nil || s.Closed {
			continue // gone or closed by an admin: it does not open
		}
		x := engine.Notification{Kind: engine.NotifyEventOnSale, AtMs: s.OpensAtMs, SaleID: sale,
			Sale: engine.SaleInfo{Name: s.Name, OpensAtMs: s.OpensAtMs, Catalogue: s.Catalogue}}
		r := n.record(&x, openEventID(sale), nil)
		ops = append(ops, wal.AuxOp{Key: outboxKey(head), Value: r.encode()})
		head++
	}
	return ops, forget, head
}

// onSaleData fills an event.on_sale payload's data.
func onSaleData(d *Data, x *engine.Notification, id string) {
	d.Phase = engine.OnSaleAnnounced
	if strings.HasPrefix(id, "evt_open_") {
		d.Phase = engine.OnSaleOpen
	}
	d.Name, d.Event, d.Venue, d.Category = x.Sale.Name, x.Sale.Event, x.Sale.Venue, x.Sale.Category
	opens := time.UnixMilli(x.Sale.OpensAtMs).UTC()
	d.OpensAt = &opens
}

// mailFollowers mails an on_sale record to the buyers who follow its
// sale, each once (see the comment at the top); false when the notifier
// stopped first.
func (w *emailWorker) mailFollowers(r *record) bool {
	n := w.n
	key := followedKey(r.EventID)
	var after string
	var done bool
	_ = n.store.AuxScan(key, prefixEnd(key), 1, func(k, v []byte) error {
		if bytes.Equal(k, key) {
			done, after = bytes.Equal(v, followDone), string(v)
		}
		return nil
	})
	if done {
		return true
	}
	var p Payload
	if err := jsonv2.Unmarshal(r.Body, &p); err != nil {
		n.cfg.Logger.Error("bad outbox body; on_sale email skipped", "event_id", r.EventID, "err", err)
		return true
	}
	matches := engine.FollowMatches(&engine.Catalogue{Event: p.Data.Event, Venue: p.Data.Venue, Category: p.Data.Category})
	followers := n.eng.Followers
	if n.cfg.Followers != nil { // a fleet partition's: the follows are the home partition's
		followers = n.cfg.Followers
	}
	for {
		var users []string
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
			var err error
			users, err = followers(ctx, matches, after, engine.FollowersPageMax)
			cancel()
			if err == nil {
				break
			}
			n.cfg.Logger.Warn("cannot read the followers; will retry", "event_id", r.EventID, "err", err)
			if !n.sleep(n.backoff(attempt)) {
				return false
			}
		}
		if len(users) == 0 {
			break
		}
		for _, u := range users {
			if !w.sendOnSale(&p, u) {
				return false
			}
			after = u
			if err := n.store.AuxWrite([]wal.AuxOp{{Key: key, Value: []byte(u)}}, false); err != nil {
				n.cfg.Logger.Error("cannot save the on_sale email cursor", "err", err)
			}
		}
	}
	if err := n.store.AuxWrite([]wal.AuxOp{{Key: key, Value: followDone}}, true); err != nil {
		n.cfg.Logger.Error("cannot save the on_sale email cursor", "err", err)
	}
	return true
}

// sendOnSale mails one follower, retrying a temporary failure; false when
// the notifier stopped first.
func (w *emailWorker) sendOnSale(p *Payload, user string) bool {
	n := w.n
	for attempt := 0; ; attempt++ {
		err := w.tryOnSale(p, user)
		switch {
		case err == nil:
			n.m.onSaleEmails["ok"].Inc()
			return true
		case errors.Is(err, errNoAddress):
			n.m.onSaleEmails["no_address"].Inc()
			return true
		}
		n.m.onSaleEmails["error"].Inc()
		var tp *textproto.Error
		if errors.As(err, &tp) && tp.Code >= 500 {
			n.cfg.Logger.Error("email refused for good; skipped", "event_id", p.ID, "err", err)
			return true
		}
		n.cfg.Logger.Warn("cannot send email; will retry", "event_id", p.ID, "attempt", attempt+1, "err", err)
		if !n.sleep(n.backoff(attempt)) {
			return false
		}
	}
}

func (w *emailWorker) tryOnSale(p *Payload, user string) error {
	src := w.n.src.Load()
	if src.EmailOf == nil {
		return errNoAddress
	}
	to, err := src.EmailOf(user)
	if err != nil {
		return err
	}
	if to == "" || strings.ContainsAny(to, "\r\n<>") {
		return errNoAddress
	}
	msg := composeOnSaleEmail(w.n.cfg.SMTP, to, user, p, w.n.cfg.Now())
	return sendMail(w.n.cfg.SMTP, w.n.cfg.Timeout, to, msg)
}

// composeOnSaleEmail writes a plain text message; the sale's name, which
// an admin typed, is folded onto one line and MIME-encoded in the subject.
func composeOnSaleEmail(cfg SMTPConfig, to, user string, p *Payload, now time.Time) []byte {
	d := &p.Data
	name := strings.Join(strings.Fields(d.Name), " ")
	subject := "On sale soon: " + name
	var text strings.Builder
	if d.Phase == engine.OnSaleOpen {
		subject = "On sale now: " + name
		text.WriteString("A sale you follow is open: tickets can be bought now.\r\n\r\n")
	} else {
		text.WriteString("A sale you follow was announced.\r\n\r\n")
	}
	fmt.Fprintf(&text, "Sale: %s (%s)\r\n", name, d.SaleID)
	for _, f := range [][2]string{{"Event", d.Event}, {"Venue", d.Venue}, {"Category", d.Category}} {
		if f[1] != "" {
			fmt.Fprintf(&text, "%s: %s\r\n", f[0], strings.Join(strings.Fields(f[1]), " "))
		}
	}
	if d.OpensAt != nil {
		fmt.Fprintf(&text, "Opens: %s\r\n", d.OpensAt.Format(time.RFC3339))
	}
	if cfg.PublicURL != "" {
		fmt.Fprintf(&text, "Tickets: %s/v1/sales/%s\r\n", strings.TrimSuffix(cfg.PublicURL, "/"), d.SaleID)
	}
	text.WriteString("\r\nYou get this because you follow it; unfollow with DELETE /v1/me/follows/{id}.\r\n")
	h := sha256.Sum256([]byte(user))
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%s@onsale>\r\nMIME-Version: 1.0\r\n",
		cfg.From, to, mime.QEncoding.Encode("utf-8", subject), now.UTC().Format(time.RFC1123Z), p.ID, hex.EncodeToString(h[:8]))
	msg.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	msg.WriteString(text.String())
	return msg.Bytes()
}
