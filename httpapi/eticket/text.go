package eticket

import (
	"strings"
	"sync"
	"unicode"

	"github.com/mozillazg/go-unidecode"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
)

// regularFont is Go Regular, parsed once to ask which characters it has.
// Go Bold and Go Mono (also embedded) cover the same characters.
var regularFont = sync.OnceValue(func() *sfnt.Font {
	f, err := sfnt.Parse(goregular.TTF)
	if err != nil {
		panic("eticket: the embedded Go font does not parse: " + err.Error()) // a broken build, not bad input
	}
	return f
})

// printable returns s as the embedded fonts can draw it: characters they
// have stay as they are (Latin with any accents, Greek, Cyrillic); a
// character they lack is transliterated to Latin letters ("张伟" becomes
// "Zhang Wei", "محمد" "mhmd"), which door staff can still read against an
// ID, where the PDF would otherwise show empty boxes. Control characters
// are dropped and runs of spaces folded. The alternative, embedding a CJK
// font, costs 10-20 MB per PDF or a subsetter we do not have.
func printable(s string) string {
	font := regularFont()
	var buf sfnt.Buffer
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			if g, err := font.GlyphIndex(&buf, r); err == nil && g != 0 {
				b.WriteRune(r)
				continue
			}
			b.WriteByte(' ')
			b.WriteString(unidecode.Unidecode(string(r)))
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
