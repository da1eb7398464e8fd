package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// verifyGolangJWT is the buyer-token check as onsale did it before jwt.go:
// golang-jwt's parser with the same options and the same error words. It
// is the reference the verifier is compared with.
func verifyGolangJWT(secret, token []byte, now time.Time) (string, error) {
	if len(token) > tokenLenMax {
		return "", errTokenTooLong
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var claims jwt.RegisteredClaims
	_, err := parser.ParseWithClaims(string(token), &claims, func(*jwt.Token) (any, error) { return secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errTokenExpired
	case err != nil:
		return "", errTokenInvalid
	case len(claims.Subject) == 0 || len(claims.Subject) > 128:
		return "", errTokenSubject
	}
	return claims.Subject, nil
}

// signJWT makes a token of any header and claims, signed like HS256.
func signJWT(secret, header, claims []byte) string {
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// refusedOnPurpose reports whether a token with this header and these
// claims has one of the features the verifier refuses although golang-jwt
// accepts them (the list in the comment on hs256). It reads them with
// encoding/json, independently of jsonScan.
func refusedOnPurpose(header, claims []byte) bool {
	if hm, ok := topMembers(header); ok {
		if len(hm["alg"]) > 1 || len(hm["typ"]) > 1 || len(hm["crit"]) > 0 {
			return true
		}
		if typ := hm["typ"]; len(typ) == 1 {
			var s string
			if !bytes.HasPrefix(typ[0], []byte(`"`)) || json.Unmarshal(typ[0], &s) != nil || !strings.EqualFold(s, "JWT") {
				return true
			}
		}
	}
	cm, ok := topMembers(claims)
	if !ok {
		return false
	}
	for name, values := range cm {
		for _, r := range registeredClaims {
			if name != r && strings.EqualFold(name, r) || name == r && len(values) > 1 {
				return true
			}
		}
		if name != "exp" && name != "nbf" && name != "iat" {
			continue
		}
		var n json.Number // what golang-jwt reads a date as: a number, or a string of one
		if json.Unmarshal(values[0], &n) != nil || n == "" {
			continue
		}
		if bytes.HasPrefix(values[0], []byte(`"`)) {
			return true
		}
		if f, err := n.Float64(); err == nil && !(f > -jwtDateAbsMax && f < jwtDateAbsMax) {
			return true
		}
	}
	// Only sub must be valid UTF-8; anywhere in the claims is close enough
	// for a test's excuse.
	return !utf8.Valid(claims)
}

// tokenRefusedOnPurpose is refusedOnPurpose for a whole token, segments
// included.
func tokenRefusedOnPurpose(token []byte) bool {
	if !canonicalSegments(string(token)) {
		return true
	}
	segs := strings.Split(string(token), ".")
	if len(segs) != 3 {
		return false
	}
	h, err1 := base64.RawURLEncoding.DecodeString(segs[0])
	c, err2 := base64.RawURLEncoding.DecodeString(segs[1])
	return err1 == nil && err2 == nil && refusedOnPurpose(h, c)
}

// topMembers returns the members of a JSON object by name, in order.
func topMembers(b []byte) (map[string][]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	m := make(map[string][]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		m[tok.(string)] = append(m[tok.(string)], v)
	}
	return m, true
}

// canonicalSegments reports whether every segment of token is spelled as
// base64url writes its bytes (segments that do not decode count as
// canonical: golang-jwt refuses them too).
func canonicalSegments(token string) bool {
	for _, seg := range strings.Split(token, ".") {
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err == nil && base64.RawURLEncoding.EncodeToString(b) != seg {
			return false
		}
	}
	return true
}

var testNow = time.Unix(1_700_000_000, 250_000_000)

func TestTokenVerifierCases(t *testing.T) {
	secret := []byte("case-secret")
	now := testNow
	exp := fmt.Sprint(now.Unix() + 3600)
	ok := func(claims string) string {
		return signJWT(secret, []byte(`{"alg":"HS256","typ":"JWT"}`), []byte(claims))
	}
	good := ok(`{"sub":"u1","exp":` + exp + `}`)
	withHeader := func(h string) string { return signJWT(secret, []byte(h), []byte(`{"sub":"u1","exp":`+exp+`}`)) }
	hs512 := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "u1", "exp": now.Unix() + 3600}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	none := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u1", "exp": now.Unix() + 3600}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	sig := good[strings.LastIndexByte(good, '.')+1:]
	// The last character of a 32-byte signature carries 4 bits and 2 zero
	// bits: the next character in the alphabet decodes to the same bytes.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
	sloppySig := good[:len(good)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last+1])

	tests := []struct {
		name    string
		token   string
		sub     string
		err     error
		jwtToo  bool // golang-jwt accepts it: a refusal on purpose
		jwtSame bool // golang-jwt gives the same answer
	}{
		{"minted by onsale", good, "u1", nil, false, true},
		{"alg only", withHeader(`{"alg":"HS256"}`), "u1", nil, false, true},
		{"kid and members ignored", withHeader(`{"kid":"k1","alg":"HS256","x":[1,{"y":null}],"typ":"jwt"}`), "u1", nil, false, true},
		{"escaped alg", withHeader(`{"alg":"HS\u0032\u0035\u0036"}`), "u1", nil, false, true},
		{"alg none", none, "", errTokenInvalid, false, true},
		{"alg HS512", hs512, "", errTokenInvalid, false, true},
		{"HS512 header, HS256 signature", withHeader(`{"alg":"HS512"}`), "", errTokenInvalid, false, true},
		{"alg lower case", withHeader(`{"alg":"hs256"}`), "", errTokenInvalid, false, true},
		{"alg missing", withHeader(`{"typ":"JWT"}`), "", errTokenInvalid, false, true},
		{"alg a number", withHeader(`{"alg":256}`), "", errTokenInvalid, false, true},
		{"header null", withHeader(`null`), "", errTokenInvalid, false, true},
		{"header trailing comma", withHeader(`{"alg":"HS256",}`), "", errTokenInvalid, false, true},
		{"typ JOSE", withHeader(`{"alg":"HS256","typ":"JOSE"}`), "", errTokenInvalid, true, false},
		{"typ null", withHeader(`{"alg":"HS256","typ":null}`), "", errTokenInvalid, true, false},
		{"crit", withHeader(`{"alg":"HS256","crit":["exp"],"exp":1}`), "", errTokenInvalid, true, false},
		{"alg twice", withHeader(`{"alg":"none","alg":"HS256"}`), "", errTokenInvalid, true, false},
		{"wrong key", signJWT([]byte("other"), []byte(`{"alg":"HS256"}`), []byte(`{"sub":"u1","exp":`+exp+`}`)), "", errTokenInvalid, false, true},
		{"empty", "", "", errTokenInvalid, false, true},
		{"two segments", good[:strings.LastIndexByte(good, '.')], "", errTokenInvalid, false, true},
		{"four segments", good + ".x", "", errTokenInvalid, false, true},
		{"empty signature", good[:strings.LastIndexByte(good, '.')+1], "", errTokenInvalid, false, true},
		{"padded signature", good + "=", "", errTokenInvalid, false, true},
		{"signature trailing bits", sloppySig, "", errTokenInvalid, true, false},
		{"line break in signature", good[:len(good)-5] + "\n" + good[len(good)-5:], "", errTokenInvalid, true, false},
		{"too long", good + strings.Repeat("A", tokenLenMax), "", errTokenTooLong, false, true},

		{"expired", ok(`{"sub":"u1","exp":` + fmt.Sprint(now.Unix()-60) + `}`), "", errTokenExpired, false, true},
		{"expired within leeway", ok(`{"sub":"u1","exp":` + fmt.Sprint(now.Unix()-4) + `}`), "u1", nil, false, true},
		{"expired at leeway", ok(`{"sub":"u1","exp":` + fmt.Sprint(now.Unix()-5) + `}`), "", errTokenExpired, false, true},
		{"exp fraction dropped", ok(`{"sub":"u1","exp":` + fmt.Sprint(now.Unix()-5) + `.9}`), "", errTokenExpired, false, true},
		{"exp exponent", ok(`{"sub":"u1","exp":1.8e9}`), "u1", nil, false, true},
		{"exp missing", ok(`{"sub":"u1"}`), "", errTokenInvalid, false, true},
		{"exp null", ok(`{"sub":"u1","exp":null}`), "", errTokenInvalid, false, true},
		{"exp a word", ok(`{"sub":"u1","exp":"soon"}`), "", errTokenInvalid, false, true},
		{"exp quoted", ok(`{"sub":"u1","exp":"` + exp + `"}`), "", errTokenInvalid, true, false},
		{"exp huge", ok(`{"sub":"u1","exp":1e300}`), "", errTokenInvalid, false, false},
		{"nbf future", ok(`{"sub":"u1","exp":` + exp + `,"nbf":` + fmt.Sprint(now.Unix()+6) + `}`), "", errTokenInvalid, false, true},
		{"nbf within leeway", ok(`{"sub":"u1","exp":` + exp + `,"nbf":` + fmt.Sprint(now.Unix()+5) + `}`), "u1", nil, false, true},
		{"nbf null", ok(`{"sub":"u1","exp":` + exp + `,"nbf":null}`), "u1", nil, false, true},
		{"expired and not yet valid", ok(`{"sub":"u1","exp":1,"nbf":` + exp + `}`), "", errTokenExpired, false, true},
		{"iat a word", ok(`{"sub":"u1","exp":` + exp + `,"iat":"x"}`), "", errTokenInvalid, false, true},
		{"iat future is not checked", ok(`{"sub":"u1","exp":` + exp + `,"iat":` + exp + `}`), "u1", nil, false, true},
		{"sub missing", ok(`{"exp":` + exp + `}`), "", errTokenSubject, false, true},
		{"sub empty", ok(`{"sub":"","exp":` + exp + `}`), "", errTokenSubject, false, true},
		{"sub null", ok(`{"sub":null,"exp":` + exp + `}`), "", errTokenSubject, false, true},
		{"sub a number", ok(`{"sub":1,"exp":` + exp + `}`), "", errTokenInvalid, false, true},
		{"sub 128 bytes", ok(`{"sub":"` + strings.Repeat("u", 128) + `","exp":` + exp + `}`), strings.Repeat("u", 128), nil, false, true},
		{"sub 129 bytes", ok(`{"sub":"` + strings.Repeat("u", 129) + `","exp":` + exp + `}`), "", errTokenSubject, false, true},
		{"sub escaped", ok(`{"sub":"\u00e9l\u00E8ve \ud83d\ude00 \"q\" \\ \/","exp":` + exp + `}`), "élève 😀 \"q\" \\ /", nil, false, true},
		{"sub lone surrogate", ok(`{"sub":"a\ud800b\udc00\ud800\u0041","exp":` + exp + `}`), "a\uFFFDb\uFFFD\uFFFDA", nil, false, true},
		{"sub control character", ok("{\"sub\":\"a\x01\",\"exp\":" + exp + "}"), "", errTokenInvalid, false, true},
		{"sub invalid UTF-8", ok("{\"sub\":\"a\xff\",\"exp\":" + exp + "}"), "", errTokenInvalid, true, false},
		{"sub twice", ok(`{"sub":"u1","sub":"admin","exp":` + exp + `}`), "", errTokenInvalid, true, false},
		{"sub in capitals", ok(`{"SUB":"admin","exp":` + exp + `}`), "", errTokenInvalid, true, false},
		{"sub with a long s", ok(`{"sub":"u1","ſub":"admin","exp":` + exp + `}`), "", errTokenInvalid, true, false},
		{"aud forms", ok(`{"sub":"u1","exp":` + exp + `,"aud":["a","b"],"iss":"i","jti":null}`), "u1", nil, false, true},
		{"aud a number", ok(`{"sub":"u1","exp":` + exp + `,"aud":[1]}`), "", errTokenInvalid, false, true},
		{"iss a number", ok(`{"sub":"u1","exp":` + exp + `,"iss":1}`), "", errTokenInvalid, false, true},
		{"other claims", ok(` { "role" : "admin" , "admin":true,"n":[1,-2.5e-3,{"x":[]}],"sub":"u1","exp":` + exp + "}\n"), "u1", nil, false, true},
		{"claims trailing value", ok(`{"sub":"u1","exp":` + exp + `}{}`), "", errTokenInvalid, false, true},
		{"claims array", ok(`[]`), "", errTokenInvalid, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := newTokenVerifier(secret).verify([]byte(tt.token), now)
			if sub != tt.sub || err != tt.err {
				t.Errorf("verify: %q, %v; want %q, %v", sub, err, tt.sub, tt.err)
			}
			refSub, refErr := verifyGolangJWT(secret, []byte(tt.token), now)
			if tt.jwtToo && refErr != nil {
				t.Errorf("golang-jwt refuses it too (%v): not a refusal on purpose", refErr)
			}
			if tt.jwtSame && (refSub != sub || refErr != err) {
				t.Errorf("golang-jwt: %q, %v", refSub, refErr)
			}
		})
	}
}

// TestTokenVerifierMatchesGolangJWT compares the verifier with golang-jwt
// on generated tokens: valid ones, and ones tampered with, expired, not
// yet valid, of other algorithms, keys and claim types. Both must give
// the same answer (user id or error), except on a token with a feature
// refused on purpose, which the verifier must refuse.
func TestTokenVerifierMatchesGolangJWT(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	secret := []byte("differential-secret")
	n := 20000
	if testing.Short() {
		n = 2000
	}
	outcomes := map[string]int{}
	for i := 0; i < n; i++ {
		g := genToken(rng, secret, testNow)
		sub, err := newTokenVerifier(secret).verify([]byte(g.token), testNow)
		refSub, refErr := verifyGolangJWT(secret, []byte(g.token), testNow)
		onPurpose := g.refused || !canonicalSegments(g.token)
		if refusedOnPurpose(g.header, g.claims) != g.refused {
			t.Fatalf("seed %d: refusedOnPurpose disagrees with the generator (%v) on %s %s", seed, g.refused, g.header, g.claims)
		}
		switch {
		case onPurpose && err != errTokenInvalid && err != errTokenTooLong:
			t.Fatalf("seed %d: accepted a token refused on purpose (%q, %v): %s %s %q", seed, sub, err, g.header, g.claims, g.token)
		case !onPurpose && (sub != refSub || err != refErr):
			t.Fatalf("seed %d: verify %q, %v; golang-jwt %q, %v: %s %s %q", seed, sub, err, refSub, refErr, g.header, g.claims, g.token)
		}
		key := fmt.Sprint(err)
		if onPurpose {
			key = "refused on purpose, golang-jwt: " + fmt.Sprint(refErr)
		}
		outcomes[key]++
	}
	t.Logf("seed %d: %v", seed, outcomes)
	// The generator reaches every answer, so the comparison means something.
	for _, want := range []string{"<nil>", errTokenInvalid.Error(), errTokenExpired.Error(), errTokenSubject.Error(),
		errTokenTooLong.Error(), "refused on purpose, golang-jwt: <nil>"} {
		if outcomes[want] < n/500 {
			t.Errorf("seed %d: only %d tokens answered %q: %v", seed, outcomes[want], want, outcomes)
		}
	}
}

type genResult struct {
	header, claims []byte
	token          string
	refused        bool // the header or the claims are refused on purpose
}

// choice is a piece of JSON and whether the verifier refuses it on purpose.
type choice struct {
	json    string
	refused bool
}

// pick returns the first choice, a valid one, 70% of the time, so that
// enough tokens are valid but for one thing.
func pick(rng *rand.Rand, cs []choice) choice {
	if rng.IntN(10) < 7 {
		return cs[0]
	}
	return cs[rng.IntN(len(cs))]
}

func genToken(rng *rand.Rand, secret []byte, now time.Time) genResult {
	headers := []choice{
		{`{"alg":"HS256","typ":"JWT"}`, false},
		{`{"alg":"HS256"}`, false}, {`{"typ":"jwt","kid":"k1","alg":"HS256"}`, false},
		{`{"alg":"HS\u0032\u0035\u0036","x":[1,{"y":null}]}`, false},
		{`{"alg":"HS512","typ":"JWT"}`, false}, {`{"alg":"none"}`, false}, {`{"alg":"RS256"}`, false},
		{`{"typ":"JWT"}`, false}, {`{"alg":256}`, false}, {`null`, false}, {`{"alg":"HS256",}`, false}, {`{"alg":"HS256"} x`, false},
		{`{"alg":"HS256","typ":"JOSE"}`, true}, {`{"alg":"HS256","crit":["exp"]}`, true},
		{`{"alg":"none","alg":"HS256"}`, true}, {`{"alg":"HS256","typ":"JWT","typ":"JWT"}`, true},
	}
	unix := now.Unix()
	date := func(d int64) string { return strconv.FormatInt(unix+d, 10) }
	subs := []choice{
		{`"u1"`, false}, {``, false}, {`"user:alice"`, false}, {`""`, false}, {`null`, false}, {`42`, false},
		{`"` + strings.Repeat("u", 128) + `"`, false}, {`"` + strings.Repeat("u", 129) + `"`, false},
		{`"\u00e9l\u00e8ve \ud83d\ude00"`, false}, {`"a\ud800b"`, false}, {`"q\"\\\/\b\f\n\r\t"`, false},
		{"\"a\xffb\"", true},
	}
	exps := []choice{
		{date(3600), false}, {``, false}, {`null`, false}, {date(-3600), false},
		{date(-5), false}, {date(-4), false}, {date(-5) + ".999", false}, {"1.8e9", false}, {"-1.5", false}, {"0", false},
		{`"soon"`, false}, {`true`, false}, {`[1]`, false}, {"1e400", false},
		{`"` + date(3600) + `"`, true}, {"1e300", true}, {"-9007199254740993", true},
	}
	nbfs := []choice{
		{``, false}, {`null`, false}, {date(-3600), false}, {date(3600), false}, {date(5), false}, {date(6), false},
		{"-1.5", false}, {`"x"`, false}, {`"` + date(0) + `"`, true},
	}
	iats := []choice{{``, false}, {date(0), false}, {date(7200), false}, {`"x"`, false}, {`{}`, false}}
	others := []choice{
		{``, false}, {`"iss":"i"`, false}, {`"iss":1`, false}, {`"jti":null`, false},
		{`"aud":"a"`, false}, {`"aud":["a","b"]`, false}, {`"aud":[]`, false}, {`"aud":[null]`, false}, {`"aud":{}`, false},
		{`"role":"admin","admin":true`, false}, {`"n":{"deep":[1,-2.5e-3,{"x":[]}],"e":""}`, false},
		{`"pad":"` + strings.Repeat("x", tokenLenMax) + `"`, false},
		{`"Sub":"admin"`, true}, {`"EXP":1`, true}, {`"sub":"u2","sub":"u3"`, true}, {`"ſub":"admin"`, true},
	}

	h := pick(rng, headers)
	var members []string
	refused := h.refused
	for _, m := range []struct {
		name string
		c    choice
	}{{"sub", pick(rng, subs)}, {"exp", pick(rng, exps)}, {"nbf", pick(rng, nbfs)}, {"iat", pick(rng, iats)}, {"", pick(rng, others)}} {
		if m.c.json == "" {
			continue
		}
		refused = refused || m.c.refused
		if m.name == "" {
			members = append(members, m.c.json)
		} else {
			members = append(members, `"`+m.name+`":`+m.c.json)
		}
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	sep := []string{",", ", ", " ,\n\t"}[rng.IntN(3)]
	claims := "{" + strings.Join(members, sep) + "}"
	switch rng.IntN(10) {
	case 0:
		claims = " \r\n" + claims + "\n"
	case 1:
		claims = "[" + claims + "]"
		refused = h.refused
	}

	key := secret
	if rng.IntN(20) == 0 {
		key = []byte("another secret")
	}
	token := signJWT(key, []byte(h.json), []byte(claims))
	return genResult{header: []byte(h.json), claims: []byte(claims), token: tamper(rng, token, key), refused: refused}
}

// tamper changes a token one way or another, or not at all.
func tamper(rng *rand.Rand, token string, key []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	switch rng.IntN(24) {
	case 0: // one character changed
		i := rng.IntN(len(token))
		if token[i] == '.' {
			return token
		}
		return token[:i] + string(alphabet[rng.IntN(len(alphabet))]) + token[i+1:]
	case 1: // the signature's last character, often a spelling of the same bytes
		i := strings.IndexByte(alphabet, token[len(token)-1])
		return token[:len(token)-1] + string(alphabet[(i+1+rng.IntN(3))%len(alphabet)])
	case 2:
		return token + []string{".", ".x", "=", "A"}[rng.IntN(4)]
	case 3:
		return token[:rng.IntN(len(token))]
	case 4: // a line break, then signed again: golang-jwt decodes around it
		dot := strings.LastIndexByte(token, '.')
		i := rng.IntN(dot)
		if token[i] == '.' {
			return token
		}
		signed := token[:i] + "\n" + token[i:dot]
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(signed))
		return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	case 5: // alg none: the signature dropped
		return token[:strings.LastIndexByte(token, '.')+1]
	}
	return token
}

func TestMintedTokenIsStandard(t *testing.T) {
	secret := []byte("mint-secret")
	now := testNow
	tok, err := MintUserToken(secret, `user:"é"<>`, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, jwtHeaderHS256+".") {
		t.Errorf("header of %q", tok)
	}
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil || parsed.Header["typ"] != "JWT" {
		t.Fatalf("golang-jwt: %v %v", err, parsed.Header)
	}
	if claims.Subject != `user:"é"<>` || claims.ExpiresAt.Unix() != now.Unix()+3600 || claims.IssuedAt.Unix() != now.Unix() {
		t.Errorf("claims %+v", claims)
	}
	want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "u1", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
	}).SignedString(secret)
	if got, _ := MintUserToken(secret, "u1", now, time.Hour); err != nil || got != want {
		t.Errorf("minted %q, golang-jwt %q (%v)", got, want, err)
	}
	for _, bad := range []string{"", strings.Repeat("u", 129), "\xff"} {
		if _, err := MintUserToken(secret, bad, now, time.Hour); err == nil {
			t.Errorf("minted a token for %q", bad)
		}
	}
}

// TestTokenVerifyAllocations: a miss costs the user id and the cache's
// key, a hit nothing.
func TestTokenVerifyAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are off under the race detector")
	}
	secret := []byte("k")
	tok, _ := MintUserToken(secret, "u1", testNow, time.Hour)
	b := []byte(tok)
	v := newTokenVerifier(secret)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := v.verify(b, testNow); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("hit: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		clear(v.shard(b).m)
		if _, err := v.verify(b, testNow); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("miss: %v allocations", n)
	}
}
