package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// principal is who is calling.
type principal struct {
	kind   principalKind
	userID string             // for principalBuyer: the JWT's sub
	cred   *engine.Credential // for principalStaff and principalSeller: role, id, name, sales
}

type principalKind uint8

const (
	principalNone principalKind = iota
	principalAdmin
	principalDoor
	principalBuyer
	principalStaff  // a staff credential (credentials.go): door routes of its sales
	principalSeller // a seller credential: the box office of its sales (boxoffice.go)
)

// allowsSale reports whether the caller may act on a sale: staff and
// sellers are scoped to a list of sales; the admin and the door token reach
// every sale; a buyer acts on no sale's behalf.
func (p principal) allowsSale(saleID string) bool {
	switch p.kind {
	case principalAdmin, principalDoor:
		return true
	case principalStaff, principalSeller:
		return p.cred.AllowsSale(saleID)
	}
	return false
}

// tokenLeeway is how far a buyer token's exp may lie in the past, for clock
// skew between the frontend that minted it and this server.
const tokenLeeway = 5 * time.Second

// authorize checks the caller against the route's access rule. It answers
// 401 or 403 itself and returns ok false when the request must stop.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, rule access) (principal, bool) {
	if rule == accessPublic {
		return principal{}, true
	}
	who, problem := s.authenticate(ctx)
	if problem != "" {
		writeProblem(ctx, codeUnauthorized, problem, -1)
		return who, false
	}
	allowed := false
	switch rule {
	case accessAdmin:
		allowed = who.kind == principalAdmin
	case accessBuyer:
		allowed = who.kind == principalBuyer
	case accessBuyerOrAdmin:
		allowed = who.kind == principalBuyer || who.kind == principalAdmin
	case accessDoor:
		allowed = who.kind == principalDoor || who.kind == principalAdmin || who.kind == principalStaff
	case accessBuyerOrSeller:
		allowed = who.kind == principalBuyer || who.kind == principalSeller
	case accessOrderReader:
		allowed = who.kind == principalBuyer || who.kind == principalAdmin || who.kind == principalSeller
	case accessSeller:
		allowed = who.kind == principalSeller
	}
	if !allowed {
		writeProblem(ctx, codeForbidden, forbiddenDetail(rule), -1)
	}
	return who, allowed
}

func forbiddenDetail(rule access) string {
	switch rule {
	case accessAdmin:
		return "this route needs the admin token"
	case accessBuyer:
		return "this route needs a buyer's token (POST /v1/sessions)"
	case accessBuyerOrAdmin:
		return "this route needs a buyer's token or the admin token"
	case accessDoor:
		return "this route needs a staff token, the door token or the admin token"
	case accessBuyerOrSeller:
		return "this route needs a buyer's token or a seller's token"
	case accessOrderReader:
		return "this route needs a buyer's token, a seller's token or the admin token"
	case accessSeller:
		return "this route needs a seller's token"
	}
	return "not allowed"
}

// authenticate reads "Authorization: Bearer <token>". A problem string
// means 401 with that detail.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (principal, string) {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(h) == 0 {
		return principal{}, "missing Authorization header; send Authorization: Bearer <token>"
	}
	const scheme = "bearer "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return principal{}, "the Authorization header must be Bearer <token>"
	}
	token := bytes.TrimSpace(h[len(scheme):])
	now := s.now()
	if isCredentialToken(token) { // staff and sellers: never cached, so a revocation holds at once
		return s.authenticateCredential(token, now)
	}
	// A buyer's repeated requests end here, before the digest of the
	// token. The admin and door tokens never enter the cache: only tokens
	// that matched neither are verified, and only verified ones are kept.
	if userID, ok := s.tokens.cached(token, now); ok {
		return principal{kind: principalBuyer, userID: userID}, ""
	}
	digest := sha256.Sum256(token)
	// Compare digests, so the compare takes the same time whatever the
	// length of what was sent.
	if subtle.ConstantTimeCompare(digest[:], s.adminDigest[:]) == 1 {
		return principal{kind: principalAdmin}, ""
	}
	if subtle.ConstantTimeCompare(digest[:], s.doorDigest[:]) == 1 {
		return principal{kind: principalDoor}, ""
	}
	userID, err := s.tokens.verifyUncached(token, now) // the cache was asked above
	if err != nil {
		return principal{}, err.Error()
	}
	return principal{kind: principalBuyer, userID: userID}, ""
}

// tokenVerifier checks buyer JWTs (jwt.go): HS256 only, exp and sub
// required, nbf honoured. Tokens that verified are remembered until they
// expire, so a buyer's repeated requests skip the HMAC and the JSON: the
// cache key is the whole token, signature included, so a hit is a token
// this server checked.
type tokenVerifier struct {
	key    *hs256
	oidc   *oidcVerifier // tokens from the site's identity provider (oidc.go); nil: none
	seed   maphash.Seed  // picks a token's shard; random, so nobody can aim tokens at one
	shards [16]tokenShard
}

type tokenShard struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	userID  string
	expires time.Time // exp + leeway
}

// tokensPerShardMax bounds the cache: a full shard is emptied and refilled.
// 16 shards of 16,384 hold a crowd of 262,144 buyers (about 250 bytes each,
// 64 MiB at most). With 4,096 per shard a flash sale of 100k buyers kept
// emptying the shards, and parsing JWTs took 18% of the server's CPU.
const tokensPerShardMax = 16384

// tokenLenMax bounds what is parsed; a header is at most 8 KiB anyway.
const tokenLenMax = 4096

func newTokenVerifier(secret []byte) *tokenVerifier {
	v := &tokenVerifier{key: newHS256(secret), seed: maphash.MakeSeed()}
	for i := range v.shards {
		v.shards[i].m = make(map[string]cachedToken)
	}
	return v
}

var (
	errTokenTooLong = errors.New("the token is too long")
	errTokenInvalid = errors.New("the token is not valid")
	errTokenExpired = errors.New("the token has expired; log in again")
	errTokenSubject = fmt.Errorf("the token's sub must be 1 to %d bytes", engine.UserLenMax)
)

// cached returns the user id of a token verified before, while it is valid.
func (v *tokenVerifier) cached(token []byte, now time.Time) (string, bool) {
	sh := v.shard(token)
	sh.mu.Lock()
	c, ok := sh.m[string(token)]
	sh.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.userID, true
	}
	return "", false
}

func (v *tokenVerifier) shard(token []byte) *tokenShard {
	return &v.shards[maphash.Bytes(v.seed, token)%uint64(len(v.shards))]
}

// verify returns the user id of a valid token. The checks come in
// golang-jwt's order, which onsale used before, so that a token with two
// faults gets the same answer: expired before not yet valid before a bad sub.
func (v *tokenVerifier) verify(token []byte, now time.Time) (string, error) {
	if len(token) > tokenLenMax {
		return "", errTokenTooLong
	}
	if userID, ok := v.cached(token, now); ok {
		return userID, nil
	}
	return v.verifyUncached(token, now)
}

// verifyUncached is verify for a token the caller has just missed in the
// cache: one map look-up less on every new buyer's first request.
func (v *tokenVerifier) verifyUncached(token []byte, now time.Time) (string, error) {
	if len(token) > tokenLenMax {
		return "", errTokenTooLong
	}
	var buf [jwtClaimsLenMax]byte
	claims, ok := v.key.check(token, &buf)
	if !ok && v.oidc != nil { // not ours: perhaps the identity provider's (oidc.go)
		userID, expires, err := v.oidc.verify(token, now)
		if err != nil {
			return "", err
		}
		v.remember(token, userID, expires)
		return userID, nil
	}
	expires := time.Unix(claims.exp, 0).Add(tokenLeeway)
	switch {
	case !ok || !claims.hasExp:
		return "", errTokenInvalid
	case !now.Before(expires):
		return "", errTokenExpired
	case claims.hasNbf && now.Before(time.Unix(claims.nbf, 0).Add(-tokenLeeway)):
		return "", errTokenInvalid
	case len(claims.sub) == 0 || len(claims.sub) > engine.UserLenMax:
		return "", errTokenSubject
	}
	userID := string(claims.sub)
	v.remember(token, userID, expires)
	return userID, nil
}

// remember caches a verified token until it expires.
func (v *tokenVerifier) remember(token []byte, userID string, expires time.Time) {
	sh := v.shard(token)
	sh.mu.Lock()
	if len(sh.m) >= tokensPerShardMax {
		clear(sh.m)
	}
	sh.m[string(token)] = cachedToken{userID: userID, expires: expires}
	sh.mu.Unlock()
}

// mint signs a buyer token for userID, valid for ttl. It refuses a user id
// that verify would refuse.
func (v *tokenVerifier) mint(userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if len(userID) == 0 || len(userID) > engine.UserLenMax || !utf8.ValidString(userID) {
		return "", time.Time{}, fmt.Errorf("httpapi: cannot mint a token for user id %q: it must be 1 to %d bytes of UTF-8", userID, engine.UserLenMax)
	}
	exp := now.Add(ttl).Truncate(time.Second)
	return v.key.mint(userID, exp.Unix(), now.Unix()), exp, nil
}

func fnv32[T string | []byte](b T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(b); i++ {
		h ^= uint32(b[i])
		h *= 16777619
	}
	return h
}

// MintUserToken signs a buyer token as a frontend with its own login
// would: HS256 with the user secret, sub = userID, exp = now + ttl. For
// tests, the bench harness and the start-up example.
func MintUserToken(userSecret []byte, userID string, now time.Time, ttl time.Duration) (string, error) {
	v := tokenVerifier{key: newHS256(userSecret)}
	token, _, err := v.mint(userID, now, ttl)
	return token, err
}
