package notify

import (
	"bytes"
	"context"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// shiftClock is the notifier's clock: real time plus an offset the test
// moves, so a sale's opens_at can pass without waiting for it.
type shiftClock struct {
	mu    sync.Mutex
	shift time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.shift)
}

func (c *shiftClock) add(d time.Duration) {
	c.mu.Lock()
	c.shift += d
	c.mu.Unlock()
}

// TestOnSaleTellsFollowers: a followed sale's creation mails each matching
// follower once (a buyer following both its event and its venue too) and
// notifies the endpoint once; its opening does the same with phase
// "open"; a put of the sale announces nothing; a follower of something
// else gets nothing; a restart sends nothing again.
func TestOnSaleTellsFollowers(t *testing.T) {
	dir := t.TempDir()
	mb := &mailbox{}
	addr, clientTLS := startMailbox(t, mb)
	clock := &shiftClock{}
	cfg := Config{Now: clock.Now, RoundInterval: 10 * time.Millisecond, RoundMin: time.Millisecond,
		SMTP: SMTPConfig{Addr: addr, From: "tickets@onsale.example", User: "onsale", Password: "mail-password",
			StartTLS: true, TLS: clientTLS, PublicURL: "https://tickets.example"}}
	addresses := map[string]string{"user:ann": "ann@example.com", "user:bob": "bob@example.com", "user:cat": "cat@example.com"}
	sources := Sources{EmailOf: func(u string) (string, error) { return addresses[u], nil }}
	nd := startNode(t, dir, cfg)
	nd.n.SetSources(sources)
	ctx := context.Background()
	rcv := newReceiver(t, "endpoint-secret-0123456789")
	addEndpoint(t, nd, "wh_onsale", rcv.srv.URL, "endpoint-secret-0123456789", engine.NotifyEventOnSale)
	for i, f := range []engine.Follow{
		{UserID: "user:ann", Kind: "venue", Value: "Arena"},
		{UserID: "user:ann", Kind: "event", Value: "Tour-2026"}, // the same sale: still one email
		{UserID: "user:bob", Kind: "category", Value: "concert"},
		{UserID: "user:cat", Kind: "venue", Value: "Elsewhere"},
	} {
		f.ID = "fol_" + string(rune('a'+i))
		if _, _, err := nd.eng.CreateFollow(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	sale := testSale("s1")
	sale.OpensAtMs = time.Now().Add(time.Hour).UnixMilli()
	sale.ClosesAtMs = sale.OpensAtMs + 24*3600_000
	sale.Catalogue = engine.Catalogue{Event: "tour-2026", Venue: "ARENA", Category: "concert"}
	if _, _, err := nd.eng.PutSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	sale.Name = "Concert s1, second date"
	if _, _, err := nd.eng.PutSale(ctx, sale); err != nil { // an update: not announced again
		t.Fatal(err)
	}
	got := mb.waitFor(t, 2)
	wantMails(t, got, []string{"ann@example.com", "bob@example.com"}, "On sale soon: ")
	onSale := func(ps []Payload) []Payload {
		return slices.DeleteFunc(slices.Clone(ps), func(p Payload) bool { return p.Type != engine.NotifyEventOnSale })
	}
	ps := rcv.waitFor(t, "the announcement", func(ps []Payload) bool { return len(onSale(ps)) >= 1 })
	if a := onSale(ps)[0]; a.Data.Phase != "announced" || a.Data.SaleID != "s1" || a.Data.Venue != "ARENA" || a.Data.OpensAt == nil ||
		a.Data.OpensAt.UnixMilli() != sale.OpensAtMs {
		t.Fatalf("announcement %+v", a)
	}

	clock.add(2 * time.Hour) // the sale opens
	got = mb.waitFor(t, 4)
	wantMails(t, got[2:], []string{"ann@example.com", "bob@example.com"}, "On sale now: ")
	ps = rcv.waitFor(t, "the opening", func(ps []Payload) bool { return len(onSale(ps)) >= 2 })
	if o := onSale(ps)[1]; o.Data.Phase != "open" || o.ID != "evt_open_s1" || o.Data.Name != "Concert s1, second date" {
		t.Fatalf("opening %+v", o)
	}

	nd.stop()
	nd = startNode(t, dir, cfg)
	nd.n.SetSources(sources)
	// Something observable after the restart: a sale only cat follows.
	// Its email comes after anything sent again would have.
	other := testSale("s2")
	other.OpensAtMs = time.Now().Add(10 * time.Hour).UnixMilli()
	other.ClosesAtMs = other.OpensAtMs + 24*3600_000
	other.Catalogue = engine.Catalogue{Venue: "elsewhere"}
	if _, _, err := nd.eng.PutSale(ctx, other); err != nil {
		t.Fatal(err)
	}
	got = mb.waitFor(t, 5)
	wantMails(t, got[4:], []string{"cat@example.com"}, "On sale soon: ")
	ps = rcv.waitFor(t, "s2's announcement", func(ps []Payload) bool { return len(onSale(ps)) >= 3 })
	if p := onSale(ps); len(p) != 3 || p[2].Data.SaleID != "s2" {
		t.Fatalf("on_sale deliveries after the restart: %+v", p)
	}
	if got := len(mb.waitFor(t, 5)); got != 5 {
		t.Fatalf("%d emails, want 5", got)
	}
}

// wantMails checks that msgs went to exactly to (in any order), each one
// with a subject starting with subject and the sale's link.
func wantMails(t *testing.T, msgs []received, to []string, subject string) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		got = append(got, m.to...)
		msg, err := mail.ReadMessage(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		if s := msg.Header.Get("Subject"); !strings.HasPrefix(s, subject) {
			t.Fatalf("subject %q, want %q...", s, subject)
		}
		if !bytes.Contains(m.data, []byte("https://tickets.example/v1/sales/")) {
			t.Fatalf("no link to the sale:\n%s", m.data)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, to) {
		t.Fatalf("emails to %v, want %v", got, to)
	}
}
