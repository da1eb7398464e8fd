package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Buyer tokens are JWTs (RFC 7519) in the compact form of a JWS signed
// with HMAC-SHA256 (RFC 7515, alg HS256):
//
//	base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256(key, base64url(header) "." base64url(claims)))
//
// base64url without padding. onsale mints the header {"alg":"HS256","typ":"JWT"}
// and the claims {"sub","exp","iat"}, as golang-jwt and most libraries do,
// so a frontend with its own login may mint them too.
//
// hs256 checks them without a general JWT library: a token is split into
// its three segments, the signature of the first two is compared in
// constant time, and only then is any JSON read, so bytes nobody signed
// never reach a parser. It accepts what golang-jwt's parser accepts with
// onsale's options (only HS256, exp required, sub, nbf and iat read; the
// differential test in jwt_test.go compares both on generated tokens),
// except what only a careless or hostile signer would send, which it
// refuses on purpose:
//
//   - a segment in non-canonical base64url (line breaks, non-zero
//     trailing bits): golang-jwt decodes those, so one signature had
//     several spellings;
//   - a header with a "typ" other than "JWT", with "crit" (RFC 7515 says
//     to refuse extensions one does not understand), or with "alg" or
//     "typ" twice;
//   - claims that name sub, exp, nbf, iat, iss, aud or jti twice or in
//     another case ("Sub"), where encoding/json lets the last one win;
//   - a date written as a string ("exp":"1700000000") or beyond ±2^53
//     seconds, and a sub that is not valid UTF-8.
type hs256 struct {
	macs sync.Pool // of *hs256State
}

// hs256State is one HMAC with its buffers, reused through the pool: a
// token's bytes are copied into signed because handing the caller's slice
// to an interface method (hash.Hash.Write) would move it to the heap.
type hs256State struct {
	mac    hash.Hash
	signed []byte
	sum    []byte
}

const (
	// jwtHeaderHS256 is base64url({"alg":"HS256","typ":"JWT"}): the header
	// onsale mints; a token that has it skips the header's decoding.
	jwtHeaderHS256 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	// jwtSignatureLen is the length of an HS256 signature's segment.
	jwtSignatureLen = 43
	// jwtClaimsLenMax bounds a decoded segment of a token of tokenLenMax.
	jwtClaimsLenMax = tokenLenMax / 4 * 3
	// jwtDateAbsMax bounds exp, nbf and iat: float64 counts seconds exactly
	// up to 2^53 (285 million years), and time.Time holds that.
	jwtDateAbsMax = 1 << 53
)

// jwtBase64 decodes segments: unpadded base64url, with zero trailing bits.
// (It still skips line breaks, which decodeSegment refuses first.)
var jwtBase64 = base64.RawURLEncoding.Strict()

func newHS256(secret []byte) *hs256 {
	key := bytes.Clone(secret)
	k := &hs256{}
	k.macs.New = func() any {
		return &hs256State{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
	}
	return k
}

// jwtClaims are the claims onsale reads. sub refers to the buffer the
// token was decoded into.
type jwtClaims struct {
	sub            []byte
	exp, nbf       int64 // Unix seconds
	hasExp, hasNbf bool
}

// check verifies token's signature and reads its claims; sub is decoded
// into buf. It does not look at the clock: the caller compares exp and nbf.
func (k *hs256) check(token []byte, buf *[jwtClaimsLenMax]byte) (jwtClaims, bool) {
	header, rest, ok1 := bytes.Cut(token, []byte{'.'})
	payload, sig, ok2 := bytes.Cut(rest, []byte{'.'})
	if !ok1 || !ok2 || len(sig) != jwtSignatureLen || len(token) > tokenLenMax {
		return jwtClaims{}, false
	}
	var want [jwtSignatureLen]byte
	k.sign(&want, token[:len(header)+1+len(payload)])
	// Comparing the encoded form makes any other spelling of the same bytes
	// a mismatch.
	if subtle.ConstantTimeCompare(want[:], sig) != 1 {
		return jwtClaims{}, false
	}
	if string(header) != jwtHeaderHS256 {
		h, ok := decodeSegment(buf, header)
		if !ok || !checkJWTHeader(h) {
			return jwtClaims{}, false
		}
	}
	p, ok := decodeSegment(buf, payload)
	if !ok {
		return jwtClaims{}, false
	}
	return parseJWTClaims(p)
}

// sign writes the base64url of HMAC-SHA256(key, signed) to sig.
func (k *hs256) sign(sig *[jwtSignatureLen]byte, signed []byte) {
	st := k.macs.Get().(*hs256State)
	st.signed = append(st.signed[:0], signed...)
	st.mac.Reset()
	st.mac.Write(st.signed)
	st.sum = st.mac.Sum(st.sum[:0])
	base64.RawURLEncoding.Encode(sig[:], st.sum)
	if cap(st.signed) <= tokenLenMax { // a rare huge mint is let go
		k.macs.Put(st)
	}
}

// mint returns a signed token with onsale's header and the claims
// {"sub","exp","iat"}, in golang-jwt's order.
func (k *hs256) mint(sub string, expUnix, iatUnix int64) string {
	claims := appendString(append(make([]byte, 0, 64+len(sub)), `{"sub":`...), sub)
	claims = strconv.AppendInt(append(claims, `,"exp":`...), expUnix, 10)
	claims = strconv.AppendInt(append(claims, `,"iat":`...), iatUnix, 10)
	claims = append(claims, '}')

	b := make([]byte, 0, len(jwtHeaderHS256)+2+base64.RawURLEncoding.EncodedLen(len(claims))+jwtSignatureLen)
	b = append(b, jwtHeaderHS256+"."...)
	b = base64.RawURLEncoding.AppendEncode(b, claims)
	var sig [jwtSignatureLen]byte
	k.sign(&sig, b)
	b = append(append(b, '.'), sig[:]...)
	return string(b)
}

// decodeSegment decodes a canonical base64url segment into buf.
func decodeSegment(buf *[jwtClaimsLenMax]byte, seg []byte) ([]byte, bool) {
	if jwtBase64.DecodedLen(len(seg)) > len(buf) || bytes.IndexByte(seg, '\n') >= 0 || bytes.IndexByte(seg, '\r') >= 0 {
		return nil, false
	}
	n, err := jwtBase64.Decode(buf[:], seg)
	return buf[:n], err == nil
}

// checkJWTHeader accepts a JOSE header that names HS256 and, if it has a
// typ, says JWT. Other members (kid, cty...) are ignored, crit refused.
func checkJWTHeader(h []byte) bool {
	s := jsonScan{b: h}
	if !s.consume('{') {
		return false
	}
	var alg, typ bool
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		switch {
		case !ok:
			return false
		case done:
			return alg && s.end()
		}
		switch string(name) {
		case "alg":
			v, ok := s.str()
			if alg || !ok || string(v) != "HS256" {
				return false
			}
			alg = true
		case "typ":
			v, ok := s.str()
			if typ || !ok || !bytes.EqualFold(v, []byte("JWT")) {
				return false
			}
			typ = true
		case "crit":
			return false
		default:
			if !s.skip() {
				return false
			}
		}
	}
}

// The registered claims (RFC 7519, section 4.1), which golang-jwt decodes
// into typed fields: each must have its type even when onsale ignores it.
const (
	claimSub = iota
	claimExp
	claimNbf
	claimIat
	claimIss
	claimAud
	claimJti
	claimOther   = -1
	claimVariant = -2 // a case variant of a registered name: refused
)

var registeredClaims = [...]string{"sub", "exp", "nbf", "iat", "iss", "aud", "jti"}

func registeredClaim(name []byte) int {
	for i, r := range registeredClaims {
		if string(name) == r {
			return i
		}
	}
	for _, r := range registeredClaims {
		if bytes.EqualFold(name, []byte(r)) {
			return claimVariant
		}
	}
	return claimOther
}

// parseJWTClaims reads the claims object. A null registered claim counts
// as absent, as it does in golang-jwt.
func parseJWTClaims(p []byte) (jwtClaims, bool) {
	var c jwtClaims
	s := jsonScan{b: p}
	if !s.consume('{') {
		return c, false
	}
	var seen uint8
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return c, false
		}
		if done {
			return c, s.end() && utf8.Valid(c.sub)
		}
		claim := registeredClaim(name)
		if claim == claimVariant || claim >= 0 && seen&(1<<claim) != 0 {
			return c, false
		}
		if claim >= 0 {
			seen |= 1 << claim
			if s.null() {
				continue
			}
		}
		switch claim {
		case claimSub:
			c.sub, ok = s.str()
		case claimExp:
			c.exp, ok = s.numericDate()
			c.hasExp = true
		case claimNbf:
			c.nbf, ok = s.numericDate()
			c.hasNbf = true
		case claimIat:
			_, ok = s.numericDate()
		case claimIss, claimJti:
			_, ok = s.str()
		case claimAud:
			ok = s.audience()
		default:
			ok = s.skip()
		}
		if !ok {
			return c, false
		}
	}
}

// numericDate reads a NumericDate: seconds since the epoch, possibly with a
// fraction, which is dropped (rounding down, as golang-jwt does).
func (s *jsonScan) numericDate() (int64, bool) {
	raw, ok := s.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !(f > -jwtDateAbsMax && f < jwtDateAbsMax) {
		return 0, false
	}
	return int64(math.Floor(f)), true
}

// audience reads aud: a string or an array of strings.
func (s *jsonScan) audience() bool {
	if !s.consume('[') {
		_, ok := s.str()
		return ok
	}
	if s.consume(']') {
		return true
	}
	for {
		if _, ok := s.str(); !ok {
			return false
		}
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}
