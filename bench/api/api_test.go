package api

import (
	"errors"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/golang-jwt/jwt/v5"
)

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080":     true,
		"127.3.4.5:1":        true,
		"[::1]:8080":         true,
		"localhost:80":       true,
		"10.0.0.1:8080":      false,
		"192.168.1.10:80":    false,
		"8.8.8.8:53":         false,
		"example.com:80":     false,
		"0.0.0.0:8080":       false,
		"127.0.0.1":          false, // no port
		"127.0.0.1:99999":    false,
		"[::ffff:1.2.3.4]:1": false,
	} {
		err := CheckLoopback(addr)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", addr, err, ok)
		}
	}
	if err := CheckLoopback("10.0.0.1:80"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("want ErrNotLoopback, got %v", err)
	}
	if _, err := NewClient(ClientConfig{Addr: "192.168.0.1:80"}); err == nil {
		t.Error("NewClient accepted a non-loopback target")
	}
}

func TestProblemCode(t *testing.T) {
	for body, want := range map[string]string{
		`{"type":"about:blank","title":"Conflict","status":409,"code":"sold_out"}`: CodeSoldOut,
		`{"code" : "limit_exceeded","detail":"x"}`:                                 CodeLimitExceeded,
		`{"code":"brand_new_code"}`:                                                "brand_new_code",
		`{"title":"no code"}`:                                                      "",
		`{"code":42}`:                                                              "",
		`{"code":"unterminated`:                                                    "",
		``:                                                                         "",
	} {
		if got := problemCode([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

func TestSign(t *testing.T) {
	// Checked against Python's hmac.new(b"whsec", b'1700000000.{"id":"evt_1"}', sha256).
	got := Sign([]byte("whsec"), 1_700_000_000, []byte(`{"id":"evt_1"}`))
	want := "t=1700000000,v1=e7e846cdb96220c3674ade89e534304fc91f6f15064facee1e7a7096f5f57f62"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "ga", `quo"te`, `back\slash`, "new\nline\x01", "ünïcode"} {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%q encoded as %s, decodes to %q (%v)", s, b, back, err)
		}
	}
}

func TestMintUserToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok, err := MintUserToken([]byte("secret"), "u42", exp)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("secret"), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := parsed.Claims.GetSubject()
	gotExp, _ := parsed.Claims.GetExpirationTime()
	if sub != "u42" || !gotExp.Time.Equal(exp) {
		t.Fatalf("sub %q exp %v", sub, gotExp)
	}
}

func TestResultBusiness(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want bool
	}{
		{Result{Status: 201}, true},
		{Result{Status: 200}, true},
		{Result{Status: 409, Code: CodeSoldOut}, true},
		{Result{Status: 409, Code: CodeLimitExceeded}, true},
		{Result{Status: 409, Code: CodeSaleNotOpen}, true},
		{Result{Status: 409, Code: "stock_below_sold"}, false},
		{Result{Status: 429, Code: CodeOverloaded}, false},
		{Result{Status: 422, Code: CodeIdempotencyConflict}, false},
		{Result{Status: 500}, false},
		{Result{Code: CodeTimeout}, false},
	} {
		if got := tc.r.Business(); got != tc.want {
			t.Errorf("%+v: %v", tc.r, got)
		}
	}
}
