package httpapi

import (
	"bytes"
	"testing"
)

// TestProfile: an onsale account reads and changes its profile, validated
// and normalised; the user store holds no email or phone in clear; a
// password change needs the old one and answers with a new session; a
// buyer signed in by the site has no account here.
func TestProfile(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("POST", "/v1/users", nil, `{"username":"ann","password":"correct horse"}`), 201, "")
	login := e.want(e.do("POST", "/v1/sessions", nil, `{"username":"ann","password":"correct horse"}`), 200, "")
	ann := hdr{"Authorization": "Bearer " + login.str("token")}

	r := e.want(e.do("GET", "/v1/me", ann, ""), 200, "")
	if r.str("account") != "onsale" || r.str("username") != "ann" || r.str("user_id") != "user:ann" || r.str("email") != "" {
		t.Fatalf("me: %s", r.body)
	}
	for _, bad := range []string{`{}`, `{"phone":"138 0013 8000"}`, `{"phone":"+86 138 0013 8000 ext 5"}`, `{"email":"ann@"}`,
		`{"display_name":"a\nb"}`, `{"email":"ann@example.com","nick":"x"}`} {
		e.want(e.do("PATCH", "/v1/me", ann, bad), 422, "invalid_request")
	}
	r = e.want(e.do("PATCH", "/v1/me", ann, `{"display_name":" Ann Lee ","email":" Ann.Lee@Example.COM","phone":"+86 (138) 0013-8000"}`), 200, "")
	if r.str("display_name") != "Ann Lee" || r.str("email") != "ann.lee@example.com" || r.str("phone") != "+8613800138000" {
		t.Fatalf("patched: %s", r.body)
	}
	r = e.want(e.do("PATCH", "/v1/me", ann, `{"display_name":""}`), 200, "") // clears one, keeps the others
	if r.str("display_name") != "" || r.str("email") != "ann.lee@example.com" {
		t.Fatalf("cleared: %s", r.body)
	}
	if got := e.want(e.do("GET", "/v1/me", ann, ""), 200, ""); got.str("phone") != "+8613800138000" {
		t.Fatalf("me after patch: %s", got.body)
	}
	raw, found, err := e.srv.cfg.Users.Get(userKeyPrefix + "ann")
	if err != nil || !found {
		t.Fatal(found, err)
	}
	for _, clear := range []string{"ann.lee", "example.com", "8613800138000", "13800138000", "0013"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("the user store holds %q in clear: %s", clear, raw)
		}
	}
	if !bytes.Contains(raw, []byte(`"profile":`)) {
		t.Fatalf("no sealed profile in %s", raw)
	}

	e.want(e.do("POST", "/v1/me/password", ann, `{"old_password":"wrong horse","new_password":"battery staple"}`), 401, "invalid_credentials")
	e.want(e.do("POST", "/v1/me/password", ann, `{"old_password":"correct horse","new_password":"short"}`), 422, "invalid_request")
	changed := e.want(e.do("POST", "/v1/me/password", ann, `{"old_password":"correct horse","new_password":"battery staple"}`), 200, "")
	if changed.str("user_id") != "user:ann" || changed.str("token") == "" {
		t.Fatalf("password change: %s", changed.body)
	}
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"ann","password":"correct horse"}`), 401, "invalid_credentials")
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"ann","password":"battery staple"}`), 200, "")
	e.want(e.do("GET", "/v1/me", hdr{"Authorization": "Bearer " + changed.str("token")}, ""), 200, "")
	// Documented: a session opened before the change lasts until it expires.
	e.want(e.do("GET", "/v1/me", ann, ""), 200, "")
	// The profile survived the password change.
	if got := e.want(e.do("GET", "/v1/me", ann, ""), 200, ""); got.str("email") != "ann.lee@example.com" {
		t.Fatalf("me after the password change: %s", got.body)
	}

	site := e.buyer("site-user-42") // the site's own login
	r = e.want(e.do("GET", "/v1/me", site, ""), 200, "")
	if r.str("account") != "site" || r.str("user_id") != "site-user-42" || r.str("username") != "" {
		t.Fatalf("site buyer: %s", r.body)
	}
	e.want(e.do("PATCH", "/v1/me", site, `{"display_name":"X"}`), 404, "no_account")
	e.want(e.do("POST", "/v1/me/password", site, `{"old_password":"whatever1","new_password":"whatever2"}`), 404, "no_account")
	e.want(e.do("GET", "/v1/me", e.buyer("user:nobody"), ""), 404, "no_account") // a "user:" id with no account
	e.want(e.do("GET", "/v1/me", e.admin(), ""), 403, "forbidden")
}
