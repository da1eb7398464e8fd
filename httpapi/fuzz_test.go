package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The decoders of everything a client sends, fuzzed. Seeds are in f.Add
// and in testdata/fuzz/<name>/, so plain `go test` runs them; `go test
// -fuzz=FuzzPurchaseBody ./httpapi/` searches further.

// FuzzPurchaseBody: the strict decoder never panics, and what it accepts
// encoding/json reads the same way (the strict one only refuses more). The
// purchase's shortcut (decodePurchaseBody) gives decodeStrict's answer,
// error words included, and leaves the body as it was.
func FuzzPurchaseBody(f *testing.F) {
	for _, s := range []string{
		`{"tier":"floor","quantity":2}`, `{"tier":"a","quantity":1,"tier":"b"}`, `{"TIER":"a"}`,
		`{"tier":"\u00e9","quantity":-1}`, `{"tier":"a"} {}`, `null`, `{"quantity":1e3}`, "{\"tier\":\"\xff\"}",
		` { "quantity" : -12 , "tier" : "é" } `, `{"tier":"a","quantity":-0}`, `{"quantity":01}`,
		`{"quantity":123456789012345678}`, `{"quantity":1234567890123456789}`, `{"quantity":1,"quantity":1}`,
		`{"tier":"a","quantity":1,"coupon":"EARLY-10"}`, `{"coupon":"x","coupon":"y"}`, `{"coupon":"\u0041"}`, `{"Coupon":"A"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		var fast, strict purchaseBody
		errFast, errStrict := decodePurchaseBody(body, &fast), decodeStrict(body, &strict)
		if fmt.Sprint(errFast) != fmt.Sprint(errStrict) || errStrict == nil && !reflect.DeepEqual(fast, strict) {
			t.Fatalf("decodePurchaseBody %+v, %v; decodeStrict %+v, %v: %q", fast, errFast, strict, errStrict, body)
		}
		if !bytes.Equal(body, orig) {
			t.Fatalf("the body changed: %q, was %q", body, orig)
		}
		var got purchaseBody
		if err := decodeStrict(body, &got); err != nil {
			return
		}
		var std purchaseBody
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("strict accepted what encoding/json refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("strict %+v, encoding/json %+v: %q", got, std, body)
		}
	})
}

// FuzzWebhookBody: the hand-read webhook body (webhook_body.go) accepts
// exactly what decodeStrict accepts, with the same values and the same
// error, and never writes to the body.
func FuzzWebhookBody(f *testing.F) {
	for _, s := range []string{
		`{"id":"evt_1","type":"payment.succeeded","order_id":"s.abc","amount_cents":9000,"currency":"EUR"}`,
		`{"id":"evt_1","type":"payment.failed","order_id":"s.abc","amount_cents":-1,"currency":"EUR"}`,
		`{"id":"a","id":"b"}`, `{"ID":"a"}`, `{"amount_cents":null}`, `{"amount_cents":1e3}`, `{"amount_cents":-0}`,
		`{"amount_cents":123456789012345678}`, `{"amount_cents":1234567890123456789}`, `{"id":"\u0041"}`,
		"{\"currency\":\"\xff\"}", ` { "type" : "x" , "currency" : "é" } `, `{}`, `{"id":"a"} {}`, `null`,
		`{"id":"a","extra":1}`, `{"amount_cents":01}`, `{"amount_cents":1,"amount_cents":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		var fast, strict webhookBody
		errFast, errStrict := decodeWebhookBody(body, &fast), decodeStrict(body, &strict)
		if fmt.Sprint(errFast) != fmt.Sprint(errStrict) || errStrict == nil && !reflect.DeepEqual(fast, strict) {
			t.Fatalf("decodeWebhookBody %+v, %v; decodeStrict %+v, %v: %q", fast, errFast, strict, errStrict, body)
		}
		if !bytes.Equal(body, orig) {
			t.Fatalf("the body changed: %q, was %q", body, orig)
		}
	})
}

// FuzzSaleBody: the admin's sale document decodes without panics, and a
// config() that succeeds has every tier with a price and a stock.
func FuzzSaleBody(f *testing.F) {
	f.Add([]byte(`{"name":"N","currency":"EUR","opens_at":"2026-05-01T10:00:00Z","closes_at":"2026-05-02T10:00:00Z",` +
		`"hold_seconds":600,"per_user_limit":4,"tiers":[{"id":"a","name":"A","price_cents":100,"stock":5}]}`))
	f.Add([]byte(`{"sales":[{"id":"s","tiers":[{"id":"a","price_cents":null}]}]}`))
	f.Add([]byte(`{"opens_at":"2026-13-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b saleBody
		if err := decodeStrict(body, &b); err == nil {
			cfg, msg := b.config()
			if msg == "" && len(cfg.Tiers) != len(b.Tiers) {
				t.Fatalf("config lost tiers: %+v", cfg)
			}
			var std saleBody
			if err := json.Unmarshal(body, &std); err != nil || !reflect.DeepEqual(b, std) {
				t.Fatalf("strict %+v, encoding/json %+v (%v): %q", b, std, err, body)
			}
		}
		var l loadBody
		_ = decodeStrict(body, &l)
	})
}

// FuzzSignatureHeader: the Onsale-Signature parser never panics, bounds
// what it keeps, and a header signed with the secret always verifies.
func FuzzSignatureHeader(f *testing.F) {
	f.Add([]byte("t=1700000000,v1="+strings.Repeat("ab", 32)), []byte(`{}`))
	f.Add([]byte("t=1,v1=zz,v0=x"), []byte(``))
	f.Add([]byte("t=1,t=2,v1="+strings.Repeat("0", 64)), []byte(`x`))
	f.Add([]byte(",,=,t="), []byte(`x`))
	f.Fuzz(func(t *testing.T, header, body []byte) {
		sh, err := parseSignatureHeader(header)
		if err == nil && (sh.n < 1 || sh.n > signaturesMax || sh.timestamp < 0) {
			t.Fatalf("parsed %+v from %q", sh, header)
		}
		now := time.Unix(1_700_000_000, 0)
		secret := []byte("fuzz-secret")
		if err := verifySignature([]byte(SignWebhook(secret, body, now)), body, [][]byte{secret}, now); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err == nil && verifySignature(header, body, [][]byte{secret}, now) == nil {
			want := SignWebhook(secret, body, time.Unix(sh.timestamp, 0))
			if !strings.Contains(string(header), want[strings.Index(want, "v1="):]) {
				t.Fatalf("verified a header without our signature: %q", header)
			}
		}
	})
}

// FuzzUserToken: a token as an attacker sends it. The check never panics,
// accepts only what golang-jwt accepts, with the same user id, and refuses
// only what golang-jwt refuses, but for the features refused on purpose
// (see hs256).
func FuzzUserToken(f *testing.F) {
	secret := []byte("fuzz-user-secret")
	now := time.Unix(1_700_000_000, 0)
	good, _ := MintUserToken(secret, "u1", now, time.Hour)
	f.Add([]byte(good))
	f.Add([]byte("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0."))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(good + "x"))
	f.Add([]byte(signJWT(secret, []byte(`{"alg":"HS256"}`), []byte(`{"sub":"u\u00e9","exp":1700000004,"nbf":1700000005}`))))
	f.Fuzz(func(t *testing.T, token []byte) {
		v := newTokenVerifier(secret)
		sub, err := v.verify(token, now)
		refSub, refErr := verifyGolangJWT(secret, token, now)
		if (sub != refSub || err != refErr) && (err == nil || !tokenRefusedOnPurpose(token)) {
			t.Fatalf("verify %q, %v; golang-jwt %q, %v", sub, err, refSub, refErr)
		}
		if err != nil {
			return
		}
		// Accepted twice (the second from the cache) with the same answer.
		if sub2, err := v.verify(token, now); err != nil || sub2 != sub {
			t.Fatalf("cache disagrees: %q %v", sub2, err)
		}
	})
}

// FuzzSignedToken: a token signed with the key, of any header and claims,
// as a frontend with a faulty library might mint. Both checks agree but on
// the features refused on purpose (see hs256), which the verifier refuses.
func FuzzSignedToken(f *testing.F) {
	secret := []byte("fuzz-user-secret")
	now := time.Unix(1_700_000_000, 0)
	for _, s := range [][2]string{
		{`{"alg":"HS256","typ":"JWT"}`, `{"sub":"u1","exp":1700003600,"iat":1700000000}`},
		{`{"alg":"HS256","kid":"k"}`, `{"sub":"\ud83d\ude00\u0041","exp":1.7000036e9,"nbf":null,"aud":["a"],"x":[{}]}`},
		{`{"alg":"HS256","crit":["b64"]}`, `{"sub":"u1","exp":1700003600}`},
		{`{"alg":"HS256"}`, `{"Sub":"u1","sub":"u2","exp":"1700003600"}`},
		{`{"alg":"none"}`, `{"sub":"u1","exp":1699999990}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		token := []byte(signJWT(secret, header, claims))
		sub, err := newTokenVerifier(secret).verify(token, now)
		refSub, refErr := verifyGolangJWT(secret, token, now)
		if refusedOnPurpose(header, claims) {
			if err != errTokenInvalid && err != errTokenTooLong {
				t.Fatalf("accepted a token refused on purpose: %q, %v", sub, err)
			}
			return
		}
		if sub != refSub || err != refErr {
			t.Fatalf("verify %q, %v; golang-jwt %q, %v", sub, err, refSub, refErr)
		}
	})
}
