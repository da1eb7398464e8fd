// Package etickettest reads back what package eticket draws, for tests: a
// QR image through gozxing (a decoder independent of the encoder), and the
// QR of each page of an e-ticket PDF, redrawn from the page's vector
// operators. It is imported by tests only, so the server binary carries no
// decoder.
package etickettest

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"regexp"
	"strconv"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

// ScanQR reads img as a phone would (finding the symbol), and when that
// fails, as a scanner of a clean flat image does (PURE_BARCODE: the symbol
// fills the image). It returns the text and the error correction level.
//
// gozxing's detector misses about 1 in 200 perfectly sharp symbols of
// versions 6-8 at 4 or more pixels a module (not at 1-3) whatever the mask,
// while its pure mode, and the encoder's own decoder, read the same images:
// the symbol is right, the detector's geometry is not. The fallback keeps
// tests about the symbol's content.
func ScanQR(img image.Image) (text, level string, err error) {
	var firstErr error
	for _, hints := range []map[gozxing.DecodeHintType]any{nil, {gozxing.DecodeHintType_PURE_BARCODE: true}} {
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			return "", "", err
		}
		res, err := zxqr.NewQRCodeReader().Decode(bmp, hints)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		lvl, _ := res.GetResultMetadata()[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL].(string)
		return res.GetText(), lvl, nil
	}
	return "", "", fmt.Errorf("gozxing cannot read the QR: %w", firstErr)
}

// QRBlocks returns the QR drawing of each page, in page order: the
// inflated content streams' text from "% onsale-qr" to the fill.
func QRBlocks(pdf []byte) ([]string, error) {
	var blocks []string
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte("stream\n"))
		if i < 0 {
			return blocks, nil
		}
		rest = rest[i+len("stream\n"):]
		j := bytes.Index(rest, []byte("\nendstream"))
		if j < 0 {
			return nil, errors.New("stream without endstream")
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
			end := bytes.Index(block, []byte("f Q\n"))
			if end < 0 {
				return nil, errors.New("QR block without its fill")
			}
			blocks = append(blocks, string(block[:end]))
		}
	}
}

var reOp = regexp.MustCompile(`(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) re`)

// Rects parses the "x y w h re" operators of a block, in points.
func Rects(block string) [][4]float64 {
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

// PageQRs rasterises each page's QR at 4 pixels a point: the first
// rectangle is the white square, the others the dark modules.
func PageQRs(pdf []byte) ([]image.Image, error) {
	blocks, err := QRBlocks(pdf)
	if err != nil {
		return nil, err
	}
	var imgs []image.Image
	for _, block := range blocks {
		rs := Rects(block)
		if len(rs) < 2 {
			return nil, fmt.Errorf("QR block without modules: %.200q", block)
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
	return imgs, nil
}
