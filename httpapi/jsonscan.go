package httpapi

import (
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScan reads JSON (RFC 8259) in place, without allocating: the buyer
// token's header and claims, after their signature has been checked. It
// knows the grammar and nothing of Go types; callers walk an object member
// by member and read each value with the method its type needs. Strings are
// unescaped where they lie, which is why b must be the caller's to write:
// an unescaped string is never longer than its JSON form.
//
// Every method returns false when the input is not what it reads; the scan
// is then abandoned.
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (s *jsonScan) peek() byte {
	s.ws()
	if s.i == len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// consume skips whitespace and c, if c is next.
func (s *jsonScan) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// end reports whether only whitespace is left.
func (s *jsonScan) end() bool { return s.peek() == 0 && s.i == len(s.b) }

// member reads up to the value of an object's next member and returns the
// member's name. first is true for the call right after the opening '{'.
// done is true at the object's closing '}'.
func (s *jsonScan) member(first bool) (name []byte, done, ok bool) {
	if s.consume('}') {
		return nil, true, true
	}
	if !first && !s.consume(',') {
		return nil, false, false
	}
	if s.peek() != '"' {
		return nil, false, false
	}
	name, ok = s.str()
	if !ok || !s.consume(':') {
		return nil, false, false
	}
	s.ws()
	return name, false, true
}

// null reads a null, if one is next.
func (s *jsonScan) null() bool {
	if s.peek() == 'n' {
		return s.literal("null")
	}
	return false
}

func (s *jsonScan) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// str reads a string and returns its unescaped bytes, written over its JSON
// form. Escaped surrogates that do not pair become U+FFFD, as encoding/json
// has them; raw bytes are left as they are, valid UTF-8 or not.
func (s *jsonScan) str() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start, w := s.i, s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start:w], true
		case c < 0x20:
			return nil, false
		case c != '\\':
			s.b[w] = c
			w++
			s.i++
			continue
		}
		if s.i+1 == len(s.b) {
			return nil, false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			s.b[w] = e
		case 'b':
			s.b[w] = '\b'
		case 'f':
			s.b[w] = '\f'
		case 'n':
			s.b[w] = '\n'
		case 'r':
			s.b[w] = '\r'
		case 't':
			s.b[w] = '\t'
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				r = s.lowSurrogate(r)
			}
			w += utf8.EncodeRune(s.b[w:], r)
			continue
		default:
			return nil, false
		}
		w++
	}
	return nil, false
}

// hex4 reads the four hex digits of a \u escape.
func (s *jsonScan) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.i += 4
	return r, true
}

// lowSurrogate completes the surrogate pair that high starts, if a \u escape
// of its low half follows; else it returns U+FFFD and reads nothing.
func (s *jsonScan) lowSurrogate(high rune) rune {
	if len(s.b)-s.i < 6 || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
		return utf8.RuneError
	}
	save := s.i
	s.i += 2
	low, ok := s.hex4()
	if r := utf16.DecodeRune(high, low); ok && r != utf8.RuneError {
		return r
	}
	s.i = save
	return utf8.RuneError
}

// number reads a number and returns its JSON form.
func (s *jsonScan) number() ([]byte, bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case !s.digits():
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// digits reads one or more decimal digits.
func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// skip reads any one value. Nesting is bounded by the input's length,
// which the callers bound.
func (s *jsonScan) skip() bool {
	switch s.peek() {
	case '"':
		_, ok := s.str()
		return ok
	case '{':
		s.i++
		for first := true; ; first = false {
			_, done, ok := s.member(first)
			if !ok || done {
				return ok
			}
			if !s.skip() {
				return false
			}
		}
	case '[':
		s.i++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skip() {
				return false
			}
			if s.consume(']') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}
