package eticket

import (
	"bytes"
	"compress/zlib"
	"image"
	"image/color"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

// qrBlocks returns the QR drawing of each page, in page order: the
// inflated content streams' text from "% onsale-qr" to the fill.
func qrBlocks(t *testing.T, pdf []byte) []string {
	t.Helper()
	var blocks []string
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte("stream\n"))
		if i < 0 {
			return blocks
		}
		rest = rest[i+len("stream\n"):]
		j := bytes.Index(rest, []byte("\nendstream"))
		if j < 0 {
			t.Fatal("stream without endstream")
		}
		body := rest[:j]
		rest = rest[j+len("\nendstream"):]
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			continue // not a Flate stream (fonts may be stored otherwise)
		}
		content, err := io.ReadAll(zr)
		if err != nil {
			continue
		}
		if k := bytes.Index(content, []byte("% onsale-qr\n")); k >= 0 {
			block := content[k:]
			block = block[:bytes.Index(block, []byte("f Q\n"))]
			blocks = append(blocks, string(block))
		}
	}
}

var reOp = regexp.MustCompile(`(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) re`)

// rects parses the "x y w h re" operators of a block, in points.
func rects(block string) [][4]float64 {
	var out [][4]float64
	for _, m := range reOp.FindAllStringSubmatch(block, -1) {
		var r [4]float64
		for i := range r {
			r[i], _ = strconv.ParseFloat(m[i+1], 64)
		}
		out = append(out, r)
	}
	return out
}

// pageQRs rasterises each page's QR at 4 pixels a point: the first
// rectangle is the white square, the others the dark modules.
func pageQRs(t *testing.T, pdf []byte) []image.Image {
	t.Helper()
	var imgs []image.Image
	for _, block := range qrBlocks(t, pdf) {
		rs := rects(block)
		if len(rs) < 2 {
			t.Fatalf("QR block without modules: %.200q", block)
		}
		const pxPerPt = 4
		sq := rs[0]
		side := int(sq[2] * pxPerPt)
		img := image.NewGray(image.Rect(0, 0, side, side))
		for i := range img.Pix {
			img.Pix[i] = 0xff
		}
		for _, r := range rs[1:] {
			// PDF y grows upwards: flip into image rows.
			x0 := int((r[0] - sq[0]) * pxPerPt)
			x1 := int((r[0] + r[2] - sq[0]) * pxPerPt)
			y0 := int((sq[1] + sq[3] - r[1] - r[3]) * pxPerPt)
			y1 := int((sq[1] + sq[3] - r[1]) * pxPerPt)
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					img.SetGray(x, y, color.Gray{})
				}
			}
		}
		imgs = append(imgs, img)
	}
	return imgs
}
