package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/onsale/onsale/engine"
)

// Signing in with the site's identity provider (OpenID Connect): buyer
// tokens signed RS256, ES256 or EdDSA by the provider, verified with the
// public keys of its JWKS (a file, or the provider's jwks_uri), with iss
// and aud checked. HS256 tokens signed with the user secret work as before,
// beside them.
//
// The JOSE work (parsing, the signature, the key types) is go-jose's; this
// file picks the key and checks the claims. The algorithms are fixed
// (RS256, ES256, EdDSA): "none" and HS256 never reach a key from the JWKS,
// so a token "signed" with a public key as an HMAC secret is refused, and a
// key is used only with the algorithm of its type (and its "alg", when the
// JWKS names one).
//
// Keys rotate. The set is fetched again every Refresh, in the background,
// and at once when a token names a kid the set does not have (the provider
// signs with a new key before the next refresh), at most once per
// RefetchMin, so that tokens with made-up kids cannot make onsale hammer
// the provider. A verified token enters tokenVerifier's cache like an
// HS256 one: a buyer's next requests cost what they cost before.

// OIDCConfig configures tokens from an identity provider; zero disables
// them. Issuer and Audience are required with a JWKS.
type OIDCConfig struct {
	JWKSFile   string        // a JWKS document on disk
	JWKSURL    string        // or the provider's jwks_uri (https, or http on loopback)
	Issuer     string        // the iss tokens must carry
	Audience   string        // an aud tokens must carry
	Refresh    time.Duration // how old the set may get [10 min]
	RefetchMin time.Duration // unknown kids fetch again at most this often [30 s]
	HTTPClient *http.Client  // for JWKSURL [a client with a 10 s timeout]
}

func (c *OIDCConfig) enabled() bool { return c.JWKSFile != "" || c.JWKSURL != "" }

// oidcAlgorithms are the algorithms a provider's token may use.
var oidcAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

const (
	jwksBytesMax = 1 << 20
	jwksKeysMax  = 100
	rsaBitsMin   = 2048
)

type oidcVerifier struct {
	cfg   OIDCConfig
	log   *slog.Logger
	keys  atomic.Pointer[jwks] // nil until the first fetch succeeds
	fetch sync.Mutex           // one fetch at a time
	// lastTryNs is when a fetch last started (the caller's clock), for
	// RefetchMin; refreshing is set while a background refresh runs.
	lastTryNs  atomic.Int64
	refreshing atomic.Bool
	fetches    atomic.Int64 // fetches tried, for tests and logs
}

// jwks is a parsed key set; never modified once published.
type jwks struct {
	byKid     map[string]*jose.JSONWebKey
	all       []*jose.JSONWebKey
	fetchedAt time.Time
}

func newOIDCVerifier(cfg OIDCConfig, log *slog.Logger, now time.Time) *oidcVerifier {
	if cfg.Issuer == "" || cfg.Audience == "" {
		panic("httpapi: OIDCConfig needs Issuer and Audience with a JWKS")
	}
	if cfg.JWKSFile != "" && cfg.JWKSURL != "" {
		panic("httpapi: OIDCConfig takes JWKSFile or JWKSURL, not both")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.RefetchMin <= 0 {
		cfg.RefetchMin = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &oidcVerifier{cfg: cfg, log: log}
	if err := v.load(now); err != nil {
		// Not fatal: the provider may be down while onsale starts. Tokens
		// are refused until a fetch succeeds; each unknown kid tries again.
		log.Error("cannot load the identity provider's keys", "err", err)
	}
	return v
}

// verify checks a token from the identity provider and returns its sub and
// when it expires (exp + leeway).
func (v *oidcVerifier) verify(token []byte, now time.Time) (string, time.Time, error) {
	tok, err := josejwt.ParseSigned(string(token), oidcAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return "", time.Time{}, errTokenInvalid
	}
	h := tok.Headers[0]
	set := v.current(now)
	key := set.pick(h.KeyID, h.Algorithm)
	if key == nil && h.KeyID != "" && v.refetch(now) {
		set = v.keys.Load()
		key = set.pick(h.KeyID, h.Algorithm)
	}
	if key == nil {
		return "", time.Time{}, errTokenKey
	}
	var claims josejwt.Claims
	if err := tok.Claims(key.Key, &claims); err != nil {
		return "", time.Time{}, errTokenInvalid
	}
	switch err := claims.ValidateWithLeeway(josejwt.Expected{
		Issuer: v.cfg.Issuer, AnyAudience: josejwt.Audience{v.cfg.Audience}, Time: now,
	}, tokenLeeway); {
	case errors.Is(err, josejwt.ErrExpired):
		return "", time.Time{}, errTokenExpired
	case errors.Is(err, josejwt.ErrInvalidIssuer), errors.Is(err, josejwt.ErrInvalidAudience):
		return "", time.Time{}, errTokenAudience
	case err != nil, claims.Expiry == nil:
		return "", time.Time{}, errTokenInvalid
	}
	sub := claims.Subject
	switch {
	case len(sub) == 0 || len(sub) > engine.UserLenMax || !utf8.ValidString(sub):
		return "", time.Time{}, errTokenSubject
	case strings.HasPrefix(sub, userIDPrefix):
		// Ids of onsale's own accounts: a provider's user must not act as one.
		return "", time.Time{}, errTokenSubjectPrefix
	}
	return sub, claims.Expiry.Time().Add(tokenLeeway), nil
}

var (
	errTokenKey           = errors.New("the token is not signed by a key of the identity provider")
	errTokenAudience      = errors.New("the token was not issued by the accepted issuer for this audience")
	errTokenSubjectPrefix = fmt.Errorf("the token's sub must not start with %q, the prefix of onsale's own accounts", userIDPrefix)
)

// current returns the key set, starting a background refresh when it is
// older than Refresh. It never returns nil.
func (v *oidcVerifier) current(now time.Time) *jwks {
	set := v.keys.Load()
	if set == nil {
		return &jwks{}
	}
	if now.Sub(set.fetchedAt) >= v.cfg.Refresh && v.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer v.refreshing.Store(false)
			if err := v.load(now); err != nil {
				v.log.Warn("cannot refresh the identity provider's keys; keeping the old ones", "err", err)
			}
		}()
	}
	return set
}

// refetch fetches the set at once for an unknown kid, unless a fetch
// started less than RefetchMin ago; it reports whether it fetched.
func (v *oidcVerifier) refetch(now time.Time) bool {
	v.fetch.Lock()
	defer v.fetch.Unlock()
	if last := v.lastTryNs.Load(); last != 0 && now.Sub(time.Unix(0, last)) < v.cfg.RefetchMin {
		return false
	}
	if err := v.loadLocked(now); err != nil {
		v.log.Warn("cannot fetch the identity provider's keys for an unknown kid", "err", err)
		return false
	}
	return true
}

func (v *oidcVerifier) load(now time.Time) error {
	v.fetch.Lock()
	defer v.fetch.Unlock()
	return v.loadLocked(now)
}

func (v *oidcVerifier) loadLocked(now time.Time) error {
	v.lastTryNs.Store(now.UnixNano())
	v.fetches.Add(1)
	raw, err := v.read()
	if err != nil {
		return err
	}
	set, err := parseJWKS(raw)
	if err != nil {
		return err
	}
	set.fetchedAt = now
	v.keys.Store(set)
	return nil
}

func (v *oidcVerifier) read() ([]byte, error) {
	if v.cfg.JWKSFile != "" {
		f, err := os.Open(v.cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("httpapi: cannot read the JWKS file: %w", err)
		}
		defer f.Close()
		return readJWKS(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("httpapi: JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	res, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("httpapi: cannot fetch the JWKS: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("httpapi: cannot fetch the JWKS: %s answered %s", v.cfg.JWKSURL, res.Status)
	}
	return readJWKS(res.Body)
}

func readJWKS(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, jwksBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("httpapi: cannot read the JWKS: %w", err)
	}
	if len(raw) > jwksBytesMax {
		return nil, fmt.Errorf("httpapi: the JWKS is over %d bytes", jwksBytesMax)
	}
	return raw, nil
}

// CheckJWKSFile reads and parses a JWKS file as the server will: for main,
// to refuse to start with a file it cannot use.
func CheckJWKSFile(path string) error {
	v := oidcVerifier{cfg: OIDCConfig{JWKSFile: path}}
	raw, err := v.read()
	if err == nil {
		_, err = parseJWKS(raw)
	}
	return err
}

// parseJWKS keeps the set's public signing keys that onsale accepts: RSA of
// 2048 bits or more, EC on P-256, Ed25519. Others (encryption keys, private
// keys, other curves) are left out, so a token naming one is refused.
func parseJWKS(raw []byte) (*jwks, error) {
	var doc jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("httpapi: the JWKS is not a JSON Web Key Set: %w", err)
	}
	set := &jwks{byKid: make(map[string]*jose.JSONWebKey)}
	for i := range doc.Keys {
		k := &doc.Keys[i]
		if len(set.all) == jwksKeysMax {
			break
		}
		if !k.IsPublic() || k.Use != "" && k.Use != "sig" || keyAlgorithm(k) == "" ||
			k.Algorithm != "" && k.Algorithm != string(keyAlgorithm(k)) {
			continue
		}
		set.all = append(set.all, k)
		if k.KeyID != "" {
			set.byKid[k.KeyID] = k
		}
	}
	if len(set.all) == 0 {
		return nil, errors.New("httpapi: the JWKS holds no RSA (2048 bits or more), P-256 or Ed25519 public signing key")
	}
	return set, nil
}

// keyAlgorithm is the one algorithm a key may verify; "" for a key onsale
// does not accept.
func keyAlgorithm(k *jose.JSONWebKey) jose.SignatureAlgorithm {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() >= rsaBitsMin {
			return jose.RS256
		}
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P256() {
			return jose.ES256
		}
	case ed25519.PublicKey:
		return jose.EdDSA
	}
	return ""
}

// pick returns the key a token names, if its algorithm is the key's. A
// token without a kid may use the set's only key.
func (s *jwks) pick(kid, alg string) *jose.JSONWebKey {
	var k *jose.JSONWebKey
	switch {
	case kid != "":
		k = s.byKid[kid]
	case len(s.all) == 1:
		k = s.all[0]
	}
	if k == nil || string(keyAlgorithm(k)) != alg {
		return nil
	}
	return k
}
