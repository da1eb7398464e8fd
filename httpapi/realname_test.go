package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onsale/onsale/wal"
)

// newDiskJournal opens a wal.Log in dir on the real disk.
func newDiskJournal(t testing.TB, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, wal.Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFatal: func(msg string) { panic("wal: " + msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// residentID completes 17 digits with their ISO 7064 MOD 11-2 check
// character.
func residentID(digits17 string) string {
	sum := 0
	for i := range 17 {
		sum += int(digits17[i]-'0') * (1 << (17 - i) % 11)
	}
	return digits17 + string("10X98765432"[sum%11])
}

func TestNormaliseDocument(t *testing.T) {
	for _, tt := range []struct {
		typ, number, want, problem string
	}{
		{"id_card", "11010519491231002X", "11010519491231002X", ""}, // the standard's example
		{"id_card", " 110105-1949 1231-002x ", "11010519491231002X", ""},
		{"id_card", residentID("44030419900101123"), residentID("44030419900101123"), ""},
		{"id_card", "110105194912310021", "", "check digit"},
		{"id_card", "11010519491231002", "", "18 characters"},
		{"id_card", "1101051949123100XX", "", "check digit"},
		{"passport", "e1234567", "E1234567", ""},
		{"passport", "E12", "", "5 to 20"},
		{"passport", "E1234567/8", "", "only letters"},
		{"passport", "Е1234567", "", "only letters"}, // a Cyrillic Е
		{"driving_licence", "12345678", "", "document_type must be one of"},
		{"hk_macao_permit", "H12345678", "H12345678", ""},
	} {
		got, problem := normaliseDocument(tt.typ, tt.number)
		if got != tt.want || !strings.Contains(problem, tt.problem) || (tt.problem == "") != (problem == "") {
			t.Errorf("%s %q: %q %q, want %q %q", tt.typ, tt.number, got, problem, tt.want, tt.problem)
		}
		if problem != "" && strings.Contains(problem, strings.TrimSpace(tt.number)) {
			t.Errorf("problem %q quotes the number", problem)
		}
	}
}

func (e *testEnv) putRealNameSale(id string, stock, perDoc int) {
	e.t.Helper()
	body := strings.TrimSuffix(e.saleJSON(stock, 10), "}") + fmt.Sprintf(`,"real_name":{"required":true,"per_document_limit":%d}}`, perDoc)
	r := e.want(e.do("PUT", "/v1/admin/sales/"+id, e.admin(), body), 201, "")
	if !strings.Contains(string(r.body), fmt.Sprintf(`"real_name":{"required":true,"per_document_limit":%d}`, perDoc)) {
		e.t.Fatalf("sale without its rule: %s", r.body)
	}
}

func attendeeJSON(name, typ, number string) string {
	return fmt.Sprintf(`{"name":%q,"document_type":%q,"document_number":%q}`, name, typ, number)
}

func (e *testEnv) buyNamed(sale, user, key string, attendees ...string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/sales/"+sale+"/purchase", e.buyer(user).with("Idempotency-Key", key),
		fmt.Sprintf(`{"tier":"floor","quantity":%d,"attendees":[%s]}`, len(attendees), strings.Join(attendees, ",")))
}

// TestRealNameSale: a document holds at most the sale's limit across
// accounts racing for it; a cancel gives a slot back; tickets show the
// attendee; and after the run neither the data directory nor the log
// holds a document number or a name.
func TestRealNameSale(t *testing.T) {
	dir := t.TempDir()
	const (
		number  = "11010519491231002X"
		spelled = "110105-19491231-002x"
		name    = "张伟 Zhang Wei"
		other   = "E98765432"
		name2   = "Ana Müller-Lüdenscheid"
	)
	secrets := []string{number, "11010519491231002x", spelled, other, "98765432", "张伟", "Zhang Wei", "Müller"}
	// Registered before startEnv's cleanups, so it runs after them: the
	// server, the engine and the log have closed, snapshots included.
	t.Cleanup(func() {
		if leaked := grepDir(t, dir, secrets, "latecomer-7"); len(leaked) > 0 {
			t.Errorf("the data directory holds %v in clear", leaked)
		}
	})
	e := startEnv(t, envOptions{dir: dir, snapshotEvents: 4})
	e.putRealNameSale("rn", 100, 2)
	e.putSale("plain", 100, 10)

	e.want(e.buyNamed("rn", "u0", "k", attendeeJSON(name, "id_card", number), attendeeJSON(name, "id_card", spelled)), 422, "duplicate_document")
	e.want(e.do("POST", "/v1/sales/rn/purchase", e.buyer("u0").with("Idempotency-Key", "k"), `{"tier":"floor","quantity":1}`), 422, "attendees_required")
	e.want(e.buyNamed("plain", "u0", "k", attendeeJSON(name, "id_card", number)), 422, "attendees_required")
	bad := e.want(e.buyNamed("rn", "u0", "k", attendeeJSON(name, "id_card", "110105194912310021")), 422, "invalid_request")
	if !strings.Contains(bad.str("detail"), "attendees[0].document_number") || strings.Contains(string(bad.body), "110105194912310021") {
		t.Fatalf("problem %s", bad.body)
	}
	e.want(e.buyNamed("rn", "u0", "k", attendeeJSON("", "passport", other)), 422, "invalid_request")

	// 16 accounts race with the same document: exactly 2 tickets.
	var mu sync.Mutex
	statuses := map[int]int{}
	var orders []string
	var wg sync.WaitGroup
	for u := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.buyNamed("rn", fmt.Sprint("racer-", u), "k", attendeeJSON(name, "id_card", number))
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			if r.status == 201 {
				orders = append(orders, r.str("order_id"))
			} else if r.code() != "document_limit_exceeded" || !strings.Contains(r.str("detail"), "attendees[0]") {
				t.Errorf("racer %d: %d %s", u, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if statuses[201] != 2 || statuses[409] != 14 {
		t.Fatalf("statuses %v, want 2 created and 14 refused", statuses)
	}
	// A second attendee on the same order is named by its index.
	r := e.want(e.buyNamed("rn", "latecomer-7", "k", attendeeJSON(name2, "passport", other), attendeeJSON(name, "id_card", spelled)), 409, "document_limit_exceeded")
	if !strings.Contains(r.str("detail"), "attendees[1]") || strings.Contains(string(r.body), "002X") {
		t.Fatalf("problem %s", r.body)
	}

	// A cancel gives the slot back.
	e.want(e.do("POST", "/v1/orders/"+orders[0]+"/cancel", e.buyer(racerOf(e, orders[0])), ""), 200, "")
	got := e.want(e.buyNamed("rn", "latecomer-7", "k2", attendeeJSON(name2, "passport", other), attendeeJSON(name, "id_card", spelled)), 201, "")
	id := got.str("order_id")
	amount, _ := got.json()["amount_cents"].(json.Number).Int64()
	e.want(e.pay("evt_rn", "payment.succeeded", id, amount, "EUR"), 200, "")

	tickets := e.want(e.do("GET", "/v1/orders/"+id+"/tickets", e.buyer("latecomer-7"), ""), 200, "")
	want := []string{`"attendee":{"name":"Ana Müller-Lüdenscheid","document_last4":"5432"}`, `"attendee":{"name":"张伟 Zhang Wei","document_last4":"002X"}`}
	for _, w := range want {
		if !bytes.Contains(tickets.body, []byte(w)) {
			t.Fatalf("tickets lack %s: %s", w, tickets.body)
		}
	}
	pdf := e.want(e.do("GET", "/v1/orders/"+id+"/tickets.pdf", e.buyer("latecomer-7"), ""), 200, "")
	if len(pdf.body) == 0 {
		t.Fatal("empty PDF")
	}
	if log := e.logs.text(); strings.Contains(log, number) || strings.Contains(log, "Zhang") || strings.Contains(log, other) {
		t.Fatal("the server log holds a document number or a name")
	}
}

// racerOf finds which racer owns an order, by asking as each.
func racerOf(e *testEnv, orderID string) string {
	for u := range 16 {
		user := fmt.Sprint("racer-", u)
		if e.do("GET", "/v1/orders/"+orderID, e.buyer(user), "").status == 200 {
			return user
		}
	}
	e.t.Fatalf("no racer owns %s", orderID)
	return ""
}

// grepDir returns the strings of secrets found in any file under dir. It
// fails the test unless control, which the log must hold, is found: a
// search that finds nothing proves nothing.
func grepDir(t *testing.T, dir string, secrets []string, control string) []string {
	t.Helper()
	var all bytes.Buffer
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files++
		all.Write(b)
		all.WriteByte(0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Pebble compresses its tables, so a string in a table need not appear
	// in the raw bytes: add every key and value as Pebble reads them back.
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("cannot reopen the log to read it: %v", err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		all.Write(it.Key())
		all.Write(it.Value())
		all.WriteByte(0)
	}
	if err := errors.Join(it.Close(), db.Close()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(all.Bytes(), []byte(control)) {
		t.Fatalf("%d files, %d bytes, and not even %q in them", files, all.Len(), control)
	}
	var leaked []string
	for _, s := range secrets {
		if bytes.Contains(all.Bytes(), []byte(s)) {
			leaked = append(leaked, s)
		}
	}
	return leaked
}
