package eticket

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"

	qr "github.com/piglig/go-qr"
)

// Ticket is what one page of the e-ticket PDF shows.
type Ticket struct {
	Code      string    // the signed ticket code, drawn as the QR and printed below it
	OrderID   string    // the order the ticket belongs to
	N         int       // the ticket's index in its order, from 0 as the API lists it; printed from 1
	Event     string    // the sale's name
	Tier      string    // the tier's name
	Holder    string    // the buyer's name as the ticket should show it; "" leaves the line out
	Venue     string    // "" leaves the line out
	StartsAt  time.Time // zero leaves the line out; printed in its own location
	PriceText string    // already formatted, e.g. "45.00 EUR"; "" leaves the line out
	// IssuedAt is the PDF's creation date (e.g. when the order was paid).
	// Zero gives a fixed date, never the clock, so that one order always
	// gives the same bytes.
	IssuedAt time.Time
}

// ticketsMax bounds one PDF: an order's tickets, with room to spare.
const ticketsMax = 1000

// Page geometry, in millimetres. A4 portrait because e-tickets are printed
// at home as often as shown on a phone, and every home printer takes A4
// (Letter printers scale it down by 3% without cropping the QR, which sits
// well inside the margins). An A6 ticket-sized page would print as a small
// patch in a corner of the sheet.
const (
	pageWmm   = 210.0
	marginMm  = 20.0
	contentMm = pageWmm - 2*marginMm
	// qrSideMm is the QR with its quiet zone: 80 mm makes a version 8
	// module 1.4 mm, readable by a door scanner from a printout and from a
	// phone screen showing the page at its width (a module of 0.4 mm on a
	// 6-inch screen, well above what a camera at 20 cm resolves).
	qrSideMm = 80.0
)

// fixedIssuedAt is the creation date of a PDF whose tickets carry none.
var fixedIssuedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PDF writes an e-ticket PDF to w, one A4 page per ticket: the event, its
// date and venue, the tier and price, the holder, the order and ticket
// number, and the QR of the code large enough to scan from paper or a
// phone. Output is deterministic for the same tickets. Nothing is written
// when a ticket is invalid.
func PDF(w io.Writer, tickets []Ticket) error {
	switch {
	case len(tickets) == 0:
		return errors.New("eticket: no tickets")
	case len(tickets) > ticketsMax:
		return fmt.Errorf("eticket: %d tickets, more than %d in one PDF", len(tickets), ticketsMax)
	}
	syms := make([]*qr.QrCode, len(tickets))
	for i := range tickets {
		sym, err := encode(tickets[i].Code)
		if err != nil {
			return fmt.Errorf("ticket %d: %w", i, err)
		}
		syms[i] = sym
	}
	doc := newDocument(tickets[0])
	for i := range tickets {
		drawPage(doc, &tickets[i], syms[i])
	}
	if err := doc.Output(w); err != nil {
		return fmt.Errorf("eticket: cannot write PDF: %w", err)
	}
	return nil
}

func newDocument(first Ticket) *fpdf.Fpdf {
	doc := fpdf.New("P", "mm", "A4", "")
	doc.SetMargins(marginMm, marginMm, marginMm)
	doc.SetAutoPageBreak(false, 0)
	doc.SetCatalogSort(true) // sorted dictionaries: the same bytes every time
	issued := first.IssuedAt
	if issued.IsZero() {
		issued = fixedIssuedAt
	}
	doc.SetCreationDate(issued)
	doc.SetModificationDate(issued)
	doc.SetCreator("onsale", false)
	doc.SetProducer("onsale", false)
	doc.SetTitle(printable(first.Event)+" - tickets", true)
	doc.AddUTF8FontFromBytes("go", "", goregular.TTF)
	doc.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	doc.AddUTF8FontFromBytes("gomono", "", gomono.TTF)
	return doc
}

func drawPage(doc *fpdf.Fpdf, t *Ticket, sym *qr.QrCode) {
	doc.AddPage()
	doc.SetTextColor(0, 0, 0)
	doc.SetFont("go", "B", 22)
	doc.MultiCell(contentMm, 10, printable(t.Event), "", "L", false)
	doc.SetFont("go", "", 13)
	if !t.StartsAt.IsZero() {
		doc.CellFormat(contentMm, 7, t.StartsAt.Format("Monday 2 January 2006, 15:04 MST"), "", 1, "L", false, 0, "")
	}
	if t.Venue != "" {
		doc.MultiCell(contentMm, 7, printable(t.Venue), "", "L", false)
	}

	qrTop := doc.GetY() + 6
	drawQR(doc, sym, marginMm+(contentMm-qrSideMm)/2, qrTop, qrSideMm)
	doc.SetY(qrTop + qrSideMm + 2)
	doc.SetFont("gomono", "", 7)
	doc.SetTextColor(80, 80, 80)
	doc.MultiCell(contentMm, 3.2, t.Code, "", "C", false)
	doc.SetTextColor(0, 0, 0)
	doc.Ln(6)

	rows := [][2]string{{"Tier", printable(t.Tier)}}
	if t.PriceText != "" {
		rows = append(rows, [2]string{"Price", printable(t.PriceText)})
	}
	if t.Holder != "" {
		rows = append(rows, [2]string{"Holder", printable(t.Holder)})
	}
	rows = append(rows,
		[2]string{"Order", printable(t.OrderID)},
		[2]string{"Ticket", "No. " + strconv.Itoa(t.N+1)})
	for _, r := range rows {
		doc.SetFont("go", "", 11)
		doc.CellFormat(30, 8, r[0], "", 0, "L", false, 0, "")
		doc.SetFont("go", "B", 13)
		doc.MultiCell(contentMm-30, 8, r[1], "", "L", false)
	}

	doc.SetY(297 - marginMm - 12)
	doc.SetFont("go", "", 9)
	doc.SetTextColor(80, 80, 80)
	doc.MultiCell(contentMm, 4.5, "Show this page at the door, printed or on your phone. The QR code is the ticket: "+
		"it admits one person once, so do not share it.", "", "L", false)
}

// drawQR draws sym as vector squares, one path filled once, inside a
// white square of side sideMm at (x, y), its quiet zone included. Vectors,
// not an image: sharp at any zoom or printer resolution, a few kilobytes,
// and deterministic (fpdf orders the images of equal width as its map
// iterates). Each row's run of dark modules is one rectangle, and the
// whole symbol one fill, so no viewer draws hairlines between modules.
func drawQR(doc *fpdf.Fpdf, sym *qr.QrCode, x, y, sideMm float64) {
	n := sym.Size() + 2*quietZoneMd
	mod := sideMm / float64(n)
	k := doc.GetConversionRatio() // points per mm
	_, pageH := doc.GetPageSize()
	var b strings.Builder
	b.WriteString("% onsale-qr\nq 1 g ")
	writeRect(&b, x*k, (pageH-y-sideMm)*k, sideMm*k, sideMm*k)
	b.WriteString(" f 0 g\n")
	for my := range sym.Size() {
		for mx := 0; mx < sym.Size(); {
			if !sym.Module(mx, my) {
				mx++
				continue
			}
			run := 1
			for mx+run < sym.Size() && sym.Module(mx+run, my) {
				run++
			}
			left := x + float64(quietZoneMd+mx)*mod
			top := y + float64(quietZoneMd+my)*mod
			writeRect(&b, left*k, (pageH-top-mod)*k, float64(run)*mod*k, mod*k)
			b.WriteByte('\n')
			mx += run
		}
	}
	b.WriteString("f Q\n")
	doc.RawWriteStr(b.String())
}

// writeRect appends a PDF "re" operator in points, bottom-left origin.
func writeRect(b *strings.Builder, x, y, w, h float64) {
	for _, v := range [4]float64{x, y, w, h} {
		b.WriteString(strconv.FormatFloat(v, 'f', 3, 64))
		b.WriteByte(' ')
	}
	b.WriteString("re")
}
