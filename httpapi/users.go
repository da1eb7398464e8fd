package httpapi

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"
)

// Accounts for sites without a login of their own. A registered user's id
// (the sub of their tokens) is "user:" + username, so it cannot collide
// with the ids a frontend mints for its own users unless that frontend uses
// the same prefix.
const (
	userKeyPrefix  = "user/"
	userIDPrefix   = "user:"
	usernameLenMin = 3
	usernameLenMax = 64
	passwordLenMin = 8
	passwordLenMax = 72 // bcrypt reads no further
	// hashWaitMax is how long a registration or login waits for a hashing
	// slot before it is answered 429: bcrypt is slow on purpose, and a
	// flood of logins must not take the CPU the purchase path needs.
	hashWaitMax = 2 * time.Second
)

type userService struct {
	s         *Server
	registers sync.Mutex    // one registration at a time: Get then Put must not interleave
	hashSlots chan struct{} // bounds concurrent bcrypt work
	dummyHash func() []byte // compared when the user is unknown, so both cases cost the same
}

type userRecord struct {
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Profile []byte    `json:"profile,omitempty"` // sealed (profile.go); none until a PATCH /v1/me
}

type credentialsBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func newUserService(s *Server) *userService {
	// Made on first use, not at start: it costs a bcrypt hash (~80 ms),
	// which a restart should not wait for.
	dummy := sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), s.cfg.BcryptCost)
		if err != nil {
			panic(fmt.Sprintf("httpapi: bcrypt: %v", err))
		}
		return h
	})
	return &userService{s: s, hashSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), dummyHash: dummy}
}

// register: POST /v1/users {username, password} → 201 {user_id, username, created_at}.
func (s *Server) register(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	var body credentialsBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	if msg := checkUsername(body.Username); msg != "" {
		writeProblem(ctx, codeInvalidRequest, msg, -1)
		return
	}
	if len(body.Password) < passwordLenMin || len(body.Password) > passwordLenMax {
		writeProblem(ctx, codeInvalidRequest,
			fmt.Sprintf("password must be %d to %d bytes", passwordLenMin, passwordLenMax), -1)
		return
	}
	u := s.users
	release, ok := u.acquireHashSlot(ctx)
	if !ok {
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(body.Password), s.cfg.BcryptCost)
	release()
	if err != nil {
		s.log.Error("cannot hash password", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	}
	created := s.now().UTC().Truncate(time.Millisecond)
	rec, err := jsonv2.Marshal(userRecord{Hash: string(hash), Created: created})
	if err != nil {
		panic(err) // a struct of a string and a time always encodes
	}
	key := userKeyPrefix + body.Username

	u.registers.Lock()
	defer u.registers.Unlock()
	if _, found, err := s.cfg.Users.Get(key); err != nil {
		s.log.Error("cannot read user store", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	} else if found {
		writeProblem(ctx, codeUsernameTaken, fmt.Sprintf("username %q is taken", body.Username), -1)
		return
	}
	if err := s.cfg.Users.Put(key, rec); err != nil {
		s.log.Error("cannot write user store", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusCreated, userResponse{
		UserID: userIDPrefix + body.Username, Username: body.Username, CreatedAt: created,
	})
}

type userResponse struct {
	UserID    string    `json:"user_id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
}

type sessionResponse struct {
	Token     string    `json:"token"`
	TokenType string    `json:"token_type"`
	ExpiresAt time.Time `json:"expires_at"`
	UserID    string    `json:"user_id"`
}

// login: POST /v1/sessions {username, password} → 200 {token, expires_at, ...}.
func (s *Server) login(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	var body credentialsBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	u := s.users
	hash := u.dummyHash()
	known := false
	if checkUsername(body.Username) == "" && len(body.Password) <= passwordLenMax {
		raw, found, err := s.cfg.Users.Get(userKeyPrefix + body.Username)
		if err != nil {
			s.log.Error("cannot read user store", "err", err)
			writeProblem(ctx, codeInternal, "internal error", -1)
			return
		}
		if found {
			var rec userRecord
			if err := jsonv2.Unmarshal(raw, &rec); err != nil {
				s.log.Error("corrupt user record", "username", body.Username, "err", err)
				writeProblem(ctx, codeInternal, "internal error", -1)
				return
			}
			hash, known = []byte(rec.Hash), true
		}
	}
	release, ok := u.acquireHashSlot(ctx)
	if !ok {
		return
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(body.Password))
	release()
	if err != nil || !known {
		writeProblem(ctx, codeInvalidCredentials, "unknown username or wrong password", -1)
		return
	}
	userID := userIDPrefix + body.Username
	token, exp, err := s.tokens.mint(userID, s.now(), s.cfg.TokenTTL)
	if err != nil {
		s.log.Error("cannot sign token", "err", err)
		writeProblem(ctx, codeInternal, "internal error", -1)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, sessionResponse{Token: token, TokenType: "Bearer", ExpiresAt: exp.UTC(), UserID: userID})
}

// acquireHashSlot waits for a bcrypt slot; on timeout it answers 429.
func (u *userService) acquireHashSlot(ctx *fasthttp.RequestCtx) (release func(), ok bool) {
	select {
	case u.hashSlots <- struct{}{}:
		return u.releaseHashSlot, true
	default:
	}
	wait, cancel := context.WithTimeout(context.Background(), hashWaitMax)
	defer cancel()
	select {
	case u.hashSlots <- struct{}{}:
		return u.releaseHashSlot, true
	case <-wait.Done():
		writeProblem(ctx, codeOverloaded, "too many logins and registrations at once; retry in a second", -1)
		return nil, false
	}
}

func (u *userService) releaseHashSlot() { <-u.hashSlots }

// checkUsername returns what is wrong with a username, or "".
func checkUsername(name string) string {
	if len(name) < usernameLenMin || len(name) > usernameLenMax {
		return fmt.Sprintf("username must be %d to %d characters of a-z 0-9 _ . -", usernameLenMin, usernameLenMax)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "username must be lower-case letters, digits and _ . - only"
		}
	}
	if c := name[0]; c == '.' || c == '-' || c == '_' {
		return "username must start with a letter or a digit"
	}
	return ""
}
