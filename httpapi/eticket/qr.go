package eticket

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"sync"

	qr "github.com/piglig/go-qr"
)

// Limits of the inputs. A ticket code is about 150-190 characters; the
// bound leaves room for longer keys without letting a caller ask for a
// version-40 symbol or a 100-megapixel image.
const (
	codeLenMax  = 1024 // bytes of a code
	sizePxMin   = 64
	sizePxMax   = 4096
	quietZoneMd = 4 // modules of white around the symbol, as ISO/IEC 18004 asks
)

// eccLevel is the error correction level: M restores 15% of the symbol,
// enough for a scuffed printout or a cracked phone screen, and keeps a
// 190-character code at version 10 or below (57x57 modules).
const eccLevel = qr.Medium

var errEmptyCode = errors.New("eticket: empty code")

// PNG renders code as a QR code in a square PNG of at most sizePx pixels a
// side: the largest whole number of pixels per module that fits, so the
// image may be a little smaller than sizePx. It is a 1-bit black on white
// image. An error says why the code or the size cannot be drawn.
func PNG(code string, sizePx int) ([]byte, error) {
	sym, err := encode(code)
	if err != nil {
		return nil, err
	}
	img, err := raster(sym, sizePx)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(img.Pix) / 16) // a QR compresses to a few % of its pixels
	if err := pngEncoder.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("eticket: cannot encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// Version is the QR version (1-40) that code needs at level M: the symbol
// is 17+4*version modules a side, plus the quiet zone.
func Version(code string) (int, error) {
	sym, err := encode(code)
	if err != nil {
		return 0, err
	}
	return versionOf(sym), nil
}

// Modules is the side of code's QR image in modules, quiet zone included:
// the smallest sizePx that PNG accepts for it, at one pixel per module.
func Modules(code string) (int, error) {
	sym, err := encode(code)
	if err != nil {
		return 0, err
	}
	return sym.Size() + 2*quietZoneMd, nil
}

// encode makes the QR symbol of code: the library picks numeric,
// alphanumeric or byte mode from the text, and the smallest version that
// holds it at exactly level M (no boost: the level is part of what we
// promise the door scanners).
func encode(code string) (*qr.QrCode, error) {
	switch {
	case code == "":
		return nil, errEmptyCode
	case len(code) > codeLenMax:
		return nil, fmt.Errorf("eticket: code is %d bytes, more than %d", len(code), codeLenMax)
	}
	segs, err := qr.MakeSegments(code)
	if err != nil {
		return nil, fmt.Errorf("eticket: cannot encode code: %w", err)
	}
	sym, err := qr.EncodeSegments(segs, eccLevel, qr.MinVersion, qr.MaxVersion, -1, false)
	if err != nil {
		return nil, fmt.Errorf("eticket: cannot encode code: %w", err)
	}
	return sym, nil
}

func versionOf(sym *qr.QrCode) int { return (sym.Size() - 17) / 4 }

// palette is white (index 0) and black (index 1): image/png writes a
// two-colour paletted image with 1 bit per pixel.
var palette = color.Palette{color.Gray{Y: 0xff}, color.Gray{Y: 0}}

// raster draws sym with its quiet zone at the largest whole scale that
// fits sizePx. The library's own PNG writer is not used: it draws RGBA
// pixel by pixel through image.Set, about 30 times the bytes to compress.
func raster(sym *qr.QrCode, sizePx int) (*image.Paletted, error) {
	if sizePx < sizePxMin || sizePx > sizePxMax {
		return nil, fmt.Errorf("eticket: size must be %d..%d px, not %d", sizePxMin, sizePxMax, sizePx)
	}
	n := sym.Size() + 2*quietZoneMd
	scale := sizePx / n
	if scale < 1 {
		return nil, fmt.Errorf("eticket: %d px cannot show a version %d code (%d modules with its quiet zone)", sizePx, versionOf(sym), n)
	}
	side := n * scale
	img := image.NewPaletted(image.Rect(0, 0, side, side), palette)
	for my := range sym.Size() {
		row := img.Pix[(quietZoneMd+my)*scale*img.Stride:]
		for mx := range sym.Size() {
			if !sym.Module(mx, my) {
				continue
			}
			px := row[(quietZoneMd+mx)*scale:]
			for i := range scale {
				px[i] = 1
			}
		}
		for i := 1; i < scale; i++ { // the module row's other pixel rows
			copy(row[i*img.Stride:(i+1)*img.Stride], row[:img.Stride])
		}
	}
	return img, nil
}

// pngEncoder reuses its compression buffers across calls (and goroutines).
var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &encoderPool{}}

type encoderPool struct{ p sync.Pool }

func (e *encoderPool) Get() *png.EncoderBuffer {
	b, _ := e.p.Get().(*png.EncoderBuffer)
	return b
}

func (e *encoderPool) Put(b *png.EncoderBuffer) { e.p.Put(b) }
