package httpapi

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"
)

// Buyer profiles: GET and PATCH /v1/me, POST /v1/me/password.
//
// Only onsale's own accounts (users.go: POST /v1/users, user id
// "user:<username>") have a profile: a display name, an email and a phone,
// kept in the account's record in the user store, sealed together with
// AES-256-GCM (sealData, a key derived from the data key for profiles, the
// username as associated data), so the store holds no email or phone in
// clear. A buyer whose token the site minted, or its identity provider
// signed, has no account here: GET /v1/me answers what the token says (the
// user id) with "account":"site", and PATCH /v1/me and the password route
// answer 404 no_account, since the profile lives where the login does.
//
// A password change does not end the sessions already open: buyer tokens
// are stateless JWTs, checked by signature and cached until they expire,
// so a token minted before the change stays valid until its exp, at most
// Config.TokenTTL (1 h by default). The answer carries a new token. Ending
// sessions at once would need a per-user check on every request, which the
// purchase path does not pay for.

const codeNoAccount = "no_account"

// Profile bounds.
const (
	displayNameRunesMax = 100
	phoneDigitsMin      = 8 // E.164: a country code and a national number
	phoneDigitsMax      = 15
)

// profile is what is sealed in an account's record.
type profile struct {
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
}

// profileBody is PATCH /v1/me's body: a member left out keeps its value,
// "" clears it.
type profileBody struct {
	DisplayName *string `json:"display_name"`
	Email       *string `json:"email"`
	Phone       *string `json:"phone"`
}

type passwordBody struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

type meResponse struct {
	UserID      string     `json:"user_id"`
	Account     string     `json:"account"` // "onsale" or "site"
	Username    string     `json:"username,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	DisplayName string     `json:"display_name,omitempty"`
	Email       string     `json:"email,omitempty"`
	Phone       string     `json:"phone,omitempty"`
}

// meRoute picks the route of /v1/me and /v1/me/password by method: the
// path serves two routes, and route matching sees paths only.
func meRoute(r route, method []byte) route {
	if r == routeMe && bytes.Equal(method, []byte("PATCH")) {
		return routeUpdateMe
	}
	return r
}

// me: GET /v1/me.
func (s *Server) me(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	username, ok := strings.CutPrefix(who.userID, userIDPrefix)
	if !ok {
		s.writeJSON(ctx, fasthttp.StatusOK, meResponse{UserID: who.userID, Account: "site"})
		return
	}
	rec, ok := s.account(ctx, username)
	if !ok {
		return
	}
	p, ok := s.openProfile(ctx, username, rec)
	if !ok {
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, meAnswer(username, rec, p))
}

func meAnswer(username string, rec *userRecord, p profile) meResponse {
	created := rec.Created.UTC()
	return meResponse{UserID: userIDPrefix + username, Account: "onsale", Username: username, CreatedAt: &created,
		DisplayName: p.DisplayName, Email: p.Email, Phone: p.Phone}
}

// updateMe: PATCH /v1/me.
func (s *Server) updateMe(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	var body profileBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	var change profile
	if problem := checkProfile(&body, &change); problem != "" {
		writeProblem(ctx, codeInvalidRequest, problem, -1)
		return
	}
	username, ok := s.ownAccount(ctx, who)
	if !ok {
		return
	}
	u := s.users
	u.registers.Lock() // Get then Put must not interleave with another write
	defer u.registers.Unlock()
	rec, ok := s.account(ctx, username)
	if !ok {
		return
	}
	p, ok := s.openProfile(ctx, username, rec)
	if !ok {
		return
	}
	if body.DisplayName != nil {
		p.DisplayName = change.DisplayName
	}
	if body.Email != nil {
		p.Email = change.Email
	}
	if body.Phone != nil {
		p.Phone = change.Phone
	}
	rec.Profile = nil
	if p != (profile{}) {
		plain, err := jsonv2.Marshal(p)
		if err != nil {
			panic(err) // three strings always encode
		}
		rec.Profile = sealData(s.personal.profile, "onsale profile/"+username, plain)
	}
	if !s.putAccount(ctx, username, rec) {
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, meAnswer(username, rec, p))
}

// changePassword: POST /v1/me/password {old_password, new_password} →
// 200 with a new session (sessions already open stay valid until they
// expire: see the package comment above).
func (s *Server) changePassword(ctx *fasthttp.RequestCtx, _ []byte, who principal) {
	var body passwordBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if len(body.NewPassword) < passwordLenMin || len(body.NewPassword) > passwordLenMax {
		writeProblem(ctx, codeInvalidRequest, fmt.Sprintf("new_password must be %d to %d bytes", passwordLenMin, passwordLenMax), -1)
		return
	}
	username, ok := s.ownAccount(ctx, who)
	if !ok {
		return
	}
	u := s.users
	release, ok := u.acquireHashSlot(ctx)
	if !ok {
		return
	}
	defer release()
	u.registers.Lock()
	defer u.registers.Unlock()
	rec, ok := s.account(ctx, username)
	if !ok {
		return
	}
	if len(body.OldPassword) > passwordLenMax || bcrypt.CompareHashAndPassword([]byte(rec.Hash), []byte(body.OldPassword)) != nil {
		writeProblem(ctx, codeInvalidCredentials, "old_password is wrong", -1)
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(body.NewPassword), s.cfg.BcryptCost)
	if err != nil {
		s.log.Error("cannot hash password", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	}
	rec.Hash = string(hash)
	if !s.putAccount(ctx, username, rec) {
		return
	}
	userID := userIDPrefix + username
	token, exp, err := s.tokens.mint(userID, s.now(), s.cfg.TokenTTL)
	if err != nil {
		s.log.Error("cannot sign token", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, sessionResponse{Token: token, TokenType: "Bearer", ExpiresAt: exp.UTC(), UserID: userID})
}

// ownAccount returns the caller's username, or answers 404 no_account for
// a buyer whose login is the site's.
func (s *Server) ownAccount(ctx *fasthttp.RequestCtx, who principal) (string, bool) {
	username, ok := strings.CutPrefix(who.userID, userIDPrefix)
	if !ok {
		writeProblem(ctx, codeNoAccount, "your sign-in comes from the site, not from an onsale account: change your profile and password there", -1)
	}
	return username, ok
}

// account reads an account's record; a token for an account that does not
// exist (a site that mints "user:" ids itself) is 404 no_account.
func (s *Server) account(ctx *fasthttp.RequestCtx, username string) (*userRecord, bool) {
	raw, found, err := s.cfg.Users.Get(userKeyPrefix + username)
	if err != nil {
		s.log.Error("cannot read user store", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return nil, false
	}
	if !found {
		writeProblem(ctx, codeNoAccount, "no onsale account has this user id", -1)
		return nil, false
	}
	var rec userRecord
	if err := jsonv2.Unmarshal(raw, &rec); err != nil {
		s.log.Error("corrupt user record", "username", username, "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return nil, false
	}
	return &rec, true
}

func (s *Server) putAccount(ctx *fasthttp.RequestCtx, username string, rec *userRecord) bool {
	raw, err := jsonv2.Marshal(rec)
	if err != nil {
		panic(err) // strings, bytes and a time always encode
	}
	if err := s.cfg.Users.Put(userKeyPrefix+username, raw); err != nil {
		s.log.Error("cannot write user store", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return false
	}
	return true
}

func (s *Server) openProfile(ctx *fasthttp.RequestCtx, username string, rec *userRecord) (profile, bool) {
	var p profile
	if len(rec.Profile) == 0 {
		return p, true
	}
	plain, err := openData(s.personal.profile, "onsale profile/"+username, rec.Profile)
	if err == nil {
		err = jsonv2.Unmarshal(plain, &p)
	}
	if err != nil {
		s.log.Error("cannot open a profile (was the data key changed?)", "username", username, "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return p, false
	}
	return p, true
}

// checkProfile validates the members sent and writes their normalised
// values to out; "" clears a member.
func checkProfile(b *profileBody, out *profile) string {
	if b.DisplayName == nil && b.Email == nil && b.Phone == nil {
		return "send at least one of display_name, email, phone"
	}
	if b.DisplayName != nil && *b.DisplayName != "" {
		name := strings.TrimSpace(*b.DisplayName)
		if n := utf8.RuneCountInString(name); n == 0 || n > displayNameRunesMax || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
			return fmt.Sprintf("display_name must be 1 to %d characters on one line", displayNameRunesMax)
		}
		out.DisplayName = name
	}
	if b.Email != nil && *b.Email != "" {
		email, ok := checkEmail(*b.Email)
		if !ok {
			return "email must be an email address such as ann@example.com"
		}
		out.Email = email
	}
	if b.Phone != nil && *b.Phone != "" {
		phone, ok := normalisePhone(*b.Phone)
		if !ok {
			return fmt.Sprintf("phone must be in international form: + and %d to %d digits, such as +86 138 0013 8000", phoneDigitsMin, phoneDigitsMax)
		}
		out.Phone = phone
	}
	return ""
}

// normalisePhone returns a phone number in E.164 form: + and its digits,
// spaces, hyphens, dots and parentheses dropped.
func normalisePhone(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, "+") || len(raw) > 32 {
		return "", false
	}
	b := []byte{'+'}
	for _, c := range []byte(raw[1:]) {
		switch {
		case '0' <= c && c <= '9':
			b = append(b, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	if n := len(b) - 1; n < phoneDigitsMin || n > phoneDigitsMax || b[1] == '0' {
		return "", false
	}
	return string(b), true
}
