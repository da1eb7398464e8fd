package httpapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://id.example.test/"
	testAudience = "onsale-tickets"
)

// testKey is a signing key of the test identity provider.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newTestKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, alg, priv}
}

func (k testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign makes a token with the claims, adjusted by edit.
func (k testKey) sign(t *testing.T, now time.Time, sub string, edit func(*josejwt.Claims)) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	c := josejwt.Claims{Issuer: testIssuer, Subject: sub, Audience: josejwt.Audience{"other-app", testAudience},
		IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Hour))}
	if edit != nil {
		edit(&c)
	}
	tok, err := josejwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwksServer is the identity provider's jwks_uri on loopback.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...testKey) *jwksServer {
	s := &jwksServer{}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...testKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
	for _, k := range keys {
		s.keys = append(s.keys, k.public())
	}
}

func bearer(token string) hdr { return hdr{"Authorization": "Bearer " + token} }

// TestOIDCTokens: tokens of the identity provider signed RS256, ES256 and
// EdDSA are accepted, beside HS256 ones; every forgery and misfit is 401;
// a rotated key is fetched when a token names it, at most once per
// RefetchMin.
func TestOIDCTokens(t *testing.T) {
	rs := newTestKey(t, "rs-1", jose.RS256)
	es := newTestKey(t, "es-1", jose.ES256)
	ed := newTestKey(t, "ed-1", jose.EdDSA)
	idp := newJWKSServer(t, rs, es, ed)
	e := startEnv(t, envOptions{cfg: func(c *Config) {
		c.OIDC = OIDCConfig{JWKSURL: idp.URL, Issuer: testIssuer, Audience: testAudience, RefetchMin: time.Minute}
	}})
	now := e.clock.Now()
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}

	for _, k := range []testKey{rs, es, ed} {
		r := e.want(e.do("GET", "/v1/me", bearer(k.sign(t, now, "idp|"+k.kid, nil)), ""), 200, "")
		if r.str("user_id") != "idp|"+k.kid || r.str("account") != "site" {
			t.Fatalf("%s: %s", k.alg, r.body)
		}
	}
	e.want(e.do("GET", "/v1/me", e.buyer("hs-user"), ""), 200, "") // HS256 still works

	pub, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	valid := rs.sign(t, now, "idp|x", nil)
	head, rest, _ := strings.Cut(valid, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	tampered := []byte(sig)
	tampered[10] ^= 'A' ^ 'B'
	if tampered[10] == sig[10] {
		tampered[10] = 'C'
	}
	forged := []struct{ name, token string }{
		{"wrong iss", rs.sign(t, now, "idp|x", func(c *josejwt.Claims) { c.Issuer = "https://evil.example/" })},
		{"wrong aud", rs.sign(t, now, "idp|x", func(c *josejwt.Claims) { c.Audience = josejwt.Audience{"other-app"} })},
		{"expired", es.sign(t, now, "idp|x", func(c *josejwt.Claims) { c.Expiry = josejwt.NewNumericDate(now.Add(-time.Minute)) })},
		{"no exp", es.sign(t, now, "idp|x", func(c *josejwt.Claims) { c.Expiry = nil })},
		{"not yet valid", ed.sign(t, now, "idp|x", func(c *josejwt.Claims) { c.NotBefore = josejwt.NewNumericDate(now.Add(time.Hour)) })},
		{"onsale account id", ed.sign(t, now, "user:ann", nil)},
		{"alg none", b64(`{"alg":"none","typ":"JWT","kid":"rs-1"}`) + "." + payload + "."},
		{"HS256 with the public key", hs256With(pub, `{"alg":"HS256","typ":"JWT","kid":"rs-1"}`, payload)},
		{"HS256 with the JWK's n", hs256With([]byte(idp.keys[0].Key.(*rsa.PublicKey).N.String()), `{"alg":"HS256","kid":"rs-1"}`, payload)},
		{"tampered signature", head + "." + payload + "." + string(tampered)},
		{"tampered claims", head + "." + b64(`{"iss":"`+testIssuer+`","aud":"`+testAudience+`","sub":"idp|admin","exp":9999999999}`) + "." + sig},
		{"RS256 header on an EC key", relabel(t, es.sign(t, now, "idp|x", nil), `{"alg":"RS256","kid":"es-1"}`)},
	}
	for _, f := range forged {
		e.want(e.do("GET", "/v1/me", bearer(f.token), ""), 401, "unauthorized")
	}
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after forgeries with known kids, want 1", n)
	}
	e.want(e.do("GET", "/v1/me", bearer(valid), ""), 200, "")

	// The provider rotates: rs-2 replaces rs-1. A token naming rs-2
	// fetches the set again and is accepted; one naming rs-1 now is not.
	rs2 := newTestKey(t, "rs-2", jose.RS256)
	idp.set(rs2, es, ed)
	e.want(e.do("GET", "/v1/me", bearer(rs2.sign(t, now, "idp|rotated", nil)), ""), 401, "unauthorized") // the start's fetch was just now
	e.clock.Advance(61 * time.Second)
	now = e.clock.Now()
	e.want(e.do("GET", "/v1/me", bearer(rs2.sign(t, now, "idp|rotated", nil)), ""), 200, "")
	if n := idp.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after rotation, want 2", n)
	}
	e.want(e.do("GET", "/v1/me", bearer(rs.sign(t, now, "idp|old-key-new-token", nil)), ""), 401, "unauthorized")
	e.want(e.do("GET", "/v1/me", bearer(valid), ""), 200, "") // verified before the rotation: cached until it expires

	// Unknown kids fetch again at most once per RefetchMin.
	stranger := newTestKey(t, "made-up", jose.ES256)
	for range 5 {
		e.want(e.do("GET", "/v1/me", bearer(stranger.sign(t, now, "idp|x", nil)), ""), 401, "unauthorized")
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after unknown kids within a minute of the last, want 2", n)
	}
	e.clock.Advance(61 * time.Second)
	now = e.clock.Now()
	e.want(e.do("GET", "/v1/me", bearer(stranger.sign(t, now, "idp|x", nil)), ""), 401, "unauthorized")
	if n := idp.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after an unknown kid a minute later, want 3", n)
	}
}

// TestOIDCFromFile: a JWKS file works like a jwks_uri; a file that is not
// a key set is reported.
func TestOIDCFromFile(t *testing.T) {
	ed := newTestKey(t, "ed-file", jose.EdDSA)
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{ed.public()}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckJWKSFile(path); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 0o600)
	if err := CheckJWKSFile(bad); err == nil || !strings.Contains(err.Error(), "no RSA") {
		t.Fatalf("a set of a symmetric key: %v", err)
	}
	e := startEnv(t, envOptions{cfg: func(c *Config) {
		c.OIDC = OIDCConfig{JWKSFile: path, Issuer: testIssuer, Audience: testAudience}
	}})
	r := e.want(e.do("GET", "/v1/me", bearer(ed.sign(t, e.clock.Now(), "idp|file", nil)), ""), 200, "")
	if r.str("user_id") != "idp|file" {
		t.Fatalf("%s", r.body)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hs256With signs header.payload with HMAC-SHA256 under secret: the
// algorithm-confusion attack, a public key used as an HMAC secret.
func hs256With(secret []byte, header, payload string) string {
	signed := b64(header) + "." + payload
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// relabel swaps a token's header, keeping its payload and signature.
func relabel(t *testing.T, token, header string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", token)
	}
	return b64(header) + "." + parts[1] + "." + parts[2]
}
