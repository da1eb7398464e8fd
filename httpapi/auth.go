package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// principal is who is calling.
type principal struct {
	kind   principalKind
	userID string // for principalBuyer: the JWT's sub
}

type principalKind uint8

const (
	principalNone principalKind = iota
	principalAdmin
	principalDoor
	principalBuyer
)

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
		allowed = who.kind == principalDoor || who.kind == principalAdmin
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
		return "this route needs the door token or the admin token"
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
	digest := sha256.Sum256(token)
	// Compare digests, so the compare takes the same time whatever the
	// length of what was sent.
	if subtle.ConstantTimeCompare(digest[:], s.adminDigest[:]) == 1 {
		return principal{kind: principalAdmin}, ""
	}
	if subtle.ConstantTimeCompare(digest[:], s.doorDigest[:]) == 1 {
		return principal{kind: principalDoor}, ""
	}
	userID, err := s.tokens.verify(token, s.now())
	if err != nil {
		return principal{}, err.Error()
	}
	return principal{kind: principalBuyer, userID: userID}, ""
}

// tokenVerifier checks buyer JWTs: HS256 only, exp and sub required. Tokens
// that verified are remembered until they expire, so a buyer's repeated
// requests skip the JWT parse and its allocations: the cache key is the
// whole token, signature included, so a hit is a token this server checked.
type tokenVerifier struct {
	secret []byte
	parser *jwt.Parser
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

func newTokenVerifier(secret []byte, now func() time.Time) *tokenVerifier {
	v := &tokenVerifier{
		secret: secret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(tokenLeeway),
			jwt.WithTimeFunc(now),
		),
	}
	for i := range v.shards {
		v.shards[i].m = make(map[string]cachedToken)
	}
	return v
}

var errTokenSubject = fmt.Errorf("the token's sub must be 1 to %d bytes", engine.UserLenMax)

// verify returns the user id of a valid token.
func (v *tokenVerifier) verify(token []byte, now time.Time) (string, error) {
	if len(token) > tokenLenMax {
		return "", errors.New("the token is too long")
	}
	sh := &v.shards[fnv32(token)%uint32(len(v.shards))]
	sh.mu.Lock()
	c, ok := sh.m[string(token)]
	sh.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.userID, nil
	}
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(string(token), &claims, v.key)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errors.New("the token has expired; log in again")
	case err != nil:
		return "", errors.New("the token is not valid")
	case len(claims.Subject) == 0 || len(claims.Subject) > engine.UserLenMax:
		return "", errTokenSubject
	}
	sh.mu.Lock()
	if len(sh.m) >= tokensPerShardMax {
		clear(sh.m)
	}
	sh.m[string(token)] = cachedToken{userID: claims.Subject, expires: claims.ExpiresAt.Add(tokenLeeway)}
	sh.mu.Unlock()
	return claims.Subject, nil
}

func (v *tokenVerifier) key(t *jwt.Token) (any, error) { return v.secret, nil }

// mint signs a buyer token for userID, valid for ttl.
func (v *tokenVerifier) mint(userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	exp := now.Add(ttl).Truncate(time.Second)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := t.SignedString(v.secret)
	return s, exp, err
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
	v := tokenVerifier{secret: userSecret}
	token, _, err := v.mint(userID, now, ttl)
	return token, err
}
