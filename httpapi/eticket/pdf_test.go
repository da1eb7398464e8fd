package eticket

import (
	"bytes"
	"image"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/eticket/etickettest"
)

func sampleTickets(rng *rand.Rand) []Ticket {
	paris, _ := time.LoadLocation("Europe/Paris")
	if paris == nil {
		paris = time.UTC
	}
	holders := []string{"Zoë Müller", "张伟", "Ελένη Παπαδοπούλου", "Ørjan Ærø-Åsen", ""}
	var ts []Ticket
	for i, h := range holders {
		ts = append(ts, Ticket{
			Code: randomCode(rng, base32, 150+rng.IntN(41)), OrderID: "fest26_01HZX3Q9", N: i,
			Event: "Fête de la Musique 2026 — Main Stage", Tier: "Fosse (standing)", Holder: h,
			Venue: "Parc de la Villette, Paris", StartsAt: time.Date(2026, 6, 21, 19, 30, 0, 0, paris),
			PriceText: "45,00 €", IssuedAt: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC),
		})
	}
	return ts
}

func mustPDF(t *testing.T, ts []Ticket) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := PDF(&buf, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPDFQRsScanBack reads the PDF back without a PDF library: it inflates
// every content stream, rasterises the QR squares drawn on each page, and
// scans them with gozxing. Each page must hold its ticket's code, in order.
func TestPDFQRsScanBack(t *testing.T) {
	ts := sampleTickets(rand.New(rand.NewPCG(9, 10)))
	pdf := mustPDF(t, ts)
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.Contains(pdf, []byte("%%EOF")) {
		t.Fatalf("not a PDF: %.40q", pdf)
	}
	if n := bytes.Count(pdf, []byte("/Type /Page\n")); n != len(ts) {
		t.Errorf("%d pages, want %d", n, len(ts))
	}
	qrs := pageQRs(t, pdf)
	if len(qrs) != len(ts) {
		t.Fatalf("%d QR codes drawn, want %d", len(qrs), len(ts))
	}
	for i, img := range qrs {
		got, level := scan(t, img)
		if got != ts[i].Code || level != "M" {
			t.Errorf("page %d: scanned %q at level %s, want %q at M", i+1, got, level, ts[i].Code)
		}
	}
}

// TestPDFQRIsLarge pins the printed size: 80 mm with its quiet zone.
func TestPDFQRIsLarge(t *testing.T) {
	pdf := mustPDF(t, sampleTickets(rand.New(rand.NewPCG(1, 1)))[:1])
	blocks := qrBlocks(t, pdf)
	if len(blocks) != 1 {
		t.Fatalf("%d QR blocks", len(blocks))
	}
	r := rects(blocks[0])[0] // the white square behind the symbol
	if mm := r[2] / 72 * 25.4; mm < 79.9 || mm > 80.1 {
		t.Errorf("QR square %.1f mm, want 80", mm)
	}
}

func TestPDFIsDeterministic(t *testing.T) {
	ts := sampleTickets(rand.New(rand.NewPCG(11, 12)))
	if a, b := mustPDF(t, ts), mustPDF(t, ts); !bytes.Equal(a, b) {
		t.Fatal("two renderings of the same tickets differ")
	}
	ts[0].IssuedAt = time.Time{}
	if a, b := mustPDF(t, ts), mustPDF(t, ts); !bytes.Equal(a, b) {
		t.Fatal("without IssuedAt, two renderings differ: the clock leaks in")
	}
}

func TestPDFRefusesBadInput(t *testing.T) {
	good := sampleTickets(rand.New(rand.NewPCG(1, 1)))[0]
	bad := good
	bad.Code = ""
	for _, tc := range []struct {
		name string
		ts   []Ticket
		want string
	}{
		{"none", nil, "eticket: no tickets"},
		{"too many", make([]Ticket, ticketsMax+1), "more than 1000"},
		{"empty code", []Ticket{good, bad}, "ticket 1: eticket: empty code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := PDF(&buf, tc.ts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë Müller":         "Zoë Müller",
		"Ελένη Παπαδοπούλου": "Ελένη Παπαδοπούλου",
		"Пётр Ильич":         "Пётр Ильич",
		"张伟":                 "Zhang Wei",
		"Zoë 张伟":             "Zoë Zhang Wei",
		"tab\tand\nnewline":  "tab and newline",
		"  spaced   out ":    "spaced out",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func qrBlocks(t *testing.T, pdf []byte) []string {
	t.Helper()
	blocks, err := etickettest.QRBlocks(pdf)
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

func rects(block string) [][4]float64 { return etickettest.Rects(block) }

func pageQRs(t *testing.T, pdf []byte) []image.Image {
	t.Helper()
	imgs, err := etickettest.PageQRs(pdf)
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}
