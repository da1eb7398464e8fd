package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Staff and seller credentials: bearer tokens an admin creates for door
// staff and box-office sellers, each scoped to a list of sales.
//
// A token is "stf_" or "sel_" and 43 characters of base64url (32 random
// bytes): the prefix makes a leaked token recognisable (secret scanners,
// logs) and lets authenticate tell it from a buyer's JWT with one compare,
// before the JWT path. The engine stores only HMAC-SHA256(key, token), with a
// key derived from the data key, and publishes the table after every durable
// change; a request hashes the token it got and looks the hash up in the
// table it loads (credentialTokenHash). Nothing is cached, so a revocation
// is in force for the next request.

const (
	tokenPrefixStaff   = "stf_"
	tokenPrefixSeller  = "sel_"
	credentialIDPrefix = "cred_"
)

// credentialKeys are the keys derived from Config.DataKey for staff,
// sellers and the box office.
type credentialKeys struct {
	tokenHash []byte // HMAC key of token hashes
	buyerID   []byte // HMAC key of box-office buyers' user ids (boxoffice.go)
	contact   []byte // AES-256-GCM key of box-office buyers' contacts (boxoffice.go)
}

func newCredentialKeys(dataKey []byte) credentialKeys {
	return credentialKeys{
		tokenHash: deriveDataKey(dataKey, "staff-token-hash/v1"),
		buyerID:   deriveDataKey(dataKey, "box-office-buyer-id/v1"),
		contact:   deriveDataKey(dataKey, "box-office-contact/v1"),
	}
}

// deriveDataKey derives a 32-byte key for one purpose from the data key:
// HMAC-SHA256(dataKey, "onsale/" + purpose). Each purpose gets its own key,
// so one key's use never reveals another's.
func deriveDataKey(dataKey []byte, purpose string) []byte {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("onsale/" + purpose))
	return m.Sum(nil)
}

// credentialTokenHash is the keyed hash the engine stores of a token.
func (k *credentialKeys) credentialTokenHash(token []byte) [32]byte {
	m := hmac.New(sha256.New, k.tokenHash)
	m.Write(token)
	var h [32]byte
	m.Sum(h[:0])
	return h
}

// isCredentialToken reports whether a bearer token is a staff or seller
// token: a buyer's JWT starts "eyJ", so the fourth byte decides almost
// always.
func isCredentialToken(token []byte) bool {
	return len(token) > 4 && token[3] == '_' &&
		(string(token[:4]) == tokenPrefixStaff || string(token[:4]) == tokenPrefixSeller)
}

// authenticateCredential finds the credential of a staff or seller token in
// the newest published table.
func (s *Server) authenticateCredential(token []byte, now time.Time) (principal, string) {
	if len(token) > tokenLenMax {
		return principal{}, errTokenTooLong.Error()
	}
	h := s.credKeys.credentialTokenHash(token)
	c, ok := s.eng.Credentials().ByHash(h)
	// The table finds by hash; the compare of what it found is constant
	// time all the same, so no code path leaks how much of a hash matched.
	if !ok || subtle.ConstantTimeCompare(c.TokenHash[:], h[:]) != 1 {
		return principal{}, "the token is not valid"
	}
	wantPrefix := tokenPrefixStaff
	if c.Role == engine.RoleSeller {
		wantPrefix = tokenPrefixSeller
	}
	switch {
	case string(token[:4]) != wantPrefix:
		return principal{}, "the token is not valid"
	case c.RevokedAtMs != 0:
		return principal{}, fmt.Sprintf("credential %s was revoked at %s; ask an admin for a new one", c.ID, formatTime(c.RevokedAtMs))
	case !c.Active(now.UnixMilli()):
		return principal{}, fmt.Sprintf("credential %s expired at %s; ask an admin for a new one", c.ID, formatTime(c.ExpiresAtMs))
	}
	kind := principalStaff
	if c.Role == engine.RoleSeller {
		kind = principalSeller
	}
	return principal{kind: kind, cred: c}, ""
}

// credentialBody is POST /v1/admin/credentials (schema CredentialInput).
type credentialBody struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Sales     []string   `json:"sales"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// createCredential: POST /v1/admin/credentials. 201 with the credential and
// its token, which is shown this once: the server keeps only its hash.
func (s *Server) createCredential(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	var body credentialBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	c := engine.Credential{Name: body.Name, Sales: body.Sales}
	prefix := tokenPrefixStaff
	switch body.Role {
	case "staff":
		c.Role = engine.RoleStaff
	case "seller":
		c.Role, prefix = engine.RoleSeller, tokenPrefixSeller
	default:
		writeProblem(ctx, codeInvalidRequest, `role must be "staff" or "seller"`, -1)
		return
	}
	if body.ExpiresAt != nil {
		if c.ExpiresAtMs = body.ExpiresAt.UnixMilli(); c.ExpiresAtMs <= s.now().UnixMilli() {
			writeProblem(ctx, codeInvalidRequest, "expires_at must be in the future", -1)
			return
		}
	}
	var secret [32]byte
	var id [10]byte
	rand.Read(secret[:]) // never fails (crypto/rand, Go 1.24+)
	rand.Read(id[:])
	token := prefix + base64.RawURLEncoding.EncodeToString(secret[:])
	c.ID = credentialIDPrefix + credentialIDEncoding.EncodeToString(id[:])
	c.TokenHash = s.credKeys.credentialTokenHash([]byte(token))
	stored, err := s.eng.CreateCredential(s.engineCtx(ctx), c)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/admin/credentials/"+stored.ID)
	s.writeCredential(ctx, fasthttp.StatusCreated, &stored, token)
}

var credentialIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// listCredentials: GET /v1/admin/credentials, in creation order; never a
// token or a hash.
func (s *Server) listCredentials(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	now := s.now().UnixMilli()
	all := s.eng.Credentials().All()
	b := []byte(`{"credentials":[`)
	for i, c := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCredential(b, c, now, "")
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// revokeCredential: DELETE /v1/admin/credentials/{id}. 200 with the revoked
// credential; revoking it again answers the same.
func (s *Server) revokeCredential(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	c, err := s.eng.RevokeCredential(s.engineCtx(ctx), string(id))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeCredential(ctx, fasthttp.StatusOK, &c, "")
}

func (s *Server) writeCredential(ctx *fasthttp.RequestCtx, status int, c *engine.Credential, token string) {
	b := appendCredential(nil, c, s.now().UnixMilli(), token)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// appendCredential appends the JSON of a credential (schema Credential);
// token is written when not empty.
func appendCredential(b []byte, c *engine.Credential, nowMs int64, token string) []byte {
	status := "active"
	switch {
	case c.RevokedAtMs != 0:
		status = "revoked"
	case !c.Active(nowMs):
		status = "expired"
	}
	b = append(b, `{"id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"role":"`...)
	b = append(b, c.Role.String()...)
	b = append(b, `","sales":[`...)
	for i, sale := range c.Sales {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, sale)
	}
	b = append(b, `],"status":"`...)
	b = append(b, status...)
	b = append(b, `","created_at":`...)
	b = appendTime(b, c.CreatedAtMs)
	if c.ExpiresAtMs != 0 {
		b = append(b, `,"expires_at":`...)
		b = appendTime(b, c.ExpiresAtMs)
	}
	if c.RevokedAtMs != 0 {
		b = append(b, `,"revoked_at":`...)
		b = appendTime(b, c.RevokedAtMs)
	}
	if token != "" {
		b = append(b, `,"token":`...)
		b = appendString(b, token)
	}
	return append(b, '}')
}

// credentialRoute picks the route of /v1/admin/credentials by method: the
// path serves two routes, and route matching sees paths only.
func credentialRoute(r route, method []byte) route {
	if r == routeAdminCreateCredential && (bytes.Equal(method, []byte("GET")) || bytes.Equal(method, []byte("HEAD"))) {
		return routeAdminListCredentials
	}
	return r
}

// registerCredentialMetrics adds onsale_credentials_active: credentials
// neither revoked nor expired, counted from the published table at scrape.
func (s *Server) registerCredentialMetrics() {
	s.cfg.Metrics.NewGauge("onsale_credentials_active", func() float64 {
		if s.gate.closed.Load()&gateStarting != 0 {
			return 0 // no engine yet
		}
		return float64(s.eng.Credentials().CountActive(s.now().UnixMilli()))
	})
	s.m.boxOfficeSales = s.cfg.Metrics.NewCounter("onsale_box_office_sales_total")
}
