package httpapi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDecodeStrict: what is refused, and as which kind: a body that is not
// JSON at all (400 malformed_json) or JSON that does not fit the route's
// struct (422 invalid_request).
func TestDecodeStrict(t *testing.T) {
	const notJSON, unfit = codeMalformedJSON, codeInvalidRequest
	tests := []struct {
		name    string
		body    string
		want    purchaseBody
		code    string // "" for success
		wantErr string // substring of the sentence
	}{
		{"ok", `{"tier":"floor","quantity":2}`, purchaseBody{Tier: "floor", Quantity: 2}, "", ""},
		{"whitespace around", " \n{\"tier\":\"a\",\"quantity\":1}\n ", purchaseBody{Tier: "a", Quantity: 1}, "", ""},
		{"missing members are zero", `{}`, purchaseBody{}, "", ""},
		{"empty body", ``, purchaseBody{}, notJSON, "empty"},
		{"unknown member", `{"tier":"a","quantity":1,"price":1}`, purchaseBody{}, unfit, "unknown"},
		{"duplicate member", `{"tier":"a","quantity":1,"quantity":5}`, purchaseBody{}, unfit, "duplicate"},
		{"duplicate member same value", `{"tier":"a","tier":"a","quantity":1}`, purchaseBody{}, unfit, "duplicate"},
		{"case variant", `{"Tier":"a","quantity":1}`, purchaseBody{}, unfit, "unknown"},
		{"case variant upper", `{"tier":"a","QUANTITY":1}`, purchaseBody{}, unfit, "unknown"},
		{"case variant as duplicate", `{"tier":"a","Tier":"b","quantity":1}`, purchaseBody{}, unfit, "unknown"},
		{"trailing value", `{"tier":"a","quantity":1}{}`, purchaseBody{}, notJSON, "not json"},
		{"trailing garbage", `{"tier":"a","quantity":1} x`, purchaseBody{}, notJSON, "not json"},
		{"not an object", `[1]`, purchaseBody{}, unfit, "invalid"},
		{"string for int", `{"tier":"a","quantity":"1"}`, purchaseBody{}, unfit, "invalid"},
		{"fraction for int", `{"tier":"a","quantity":1.5}`, purchaseBody{}, unfit, "invalid"},
		{"overflow", `{"tier":"a","quantity":99999999999999999999}`, purchaseBody{}, unfit, "invalid"},
		{"invalid utf-8", "{\"tier\":\"\xff\",\"quantity\":1}", purchaseBody{}, notJSON, "utf-8"},
		{"invalid utf-8 after an unknown member", "{\"x\":\"\xff\"}", purchaseBody{}, notJSON, "utf-8"},
		{"truncated", `{"tier":"a",`, purchaseBody{}, notJSON, "not json"},
		{"truncated after an unknown member", `{"x":1,`, purchaseBody{}, notJSON, "not json"},
		{"a form", `tier=a&quantity=1`, purchaseBody{}, notJSON, "not json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got purchaseBody
			err := decodeStrict([]byte(tt.body), &got)
			if tt.code == "" {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			var de *decodeError
			if !errors.As(err, &de) || de.code != tt.code || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) {
				t.Fatalf("got %+v, err %#v; want %s with a sentence containing %q", got, err, tt.code, tt.wantErr)
			}
		})
	}
}

func TestDecodeSaleBody(t *testing.T) {
	body := `{"name":"N","currency":"EUR","opens_at":"2026-05-01T10:00:00+02:00","closes_at":"2026-05-01T12:00:00.5Z",
		"hold_seconds":600,"per_user_limit":4,"tiers":[{"id":"a","name":"A","price_cents":0,"stock":10}]}`
	var b saleBody
	if err := decodeStrict([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	cfg, msg := b.config()
	if msg != "" {
		t.Fatal(msg)
	}
	if want := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC).UnixMilli(); cfg.OpensAtMs != want {
		t.Errorf("opens_at: %d, want %d", cfg.OpensAtMs, want)
	}
	if want := time.Date(2026, 5, 1, 12, 0, 0, 500e6, time.UTC).UnixMilli(); cfg.ClosesAtMs != want {
		t.Errorf("closes_at: %d, want %d", cfg.ClosesAtMs, want)
	}
	if cfg.Tiers[0].PriceCents != 0 || cfg.Tiers[0].Stock != 10 || cfg.HoldMs != 600_000 {
		t.Errorf("config: %+v", cfg)
	}

	for _, bad := range []string{
		strings.Replace(body, `"price_cents":0,`, ``, 1),                          // required price
		strings.Replace(body, `"opens_at":"2026-05-01T10:00:00+02:00",`, ``, 1),   // required time
		strings.Replace(body, `"hold_seconds":600,`, ``, 1),                       // required hold
		strings.Replace(body, `2026-05-01T10:00:00+02:00`, `2026-05-01 10:00`, 1), // not RFC 3339
		strings.Replace(body, `"stock":10`, `"stock":10,"Stock":11`, 1),           // case variant
		strings.Replace(body, `"name":"A"`, `"name":"A","name":"B"`, 1),           // nested duplicate
		strings.Replace(body, `"name":"A"`, `"name":"A","colour":"red"`, 1),       // nested unknown
	} {
		var b saleBody
		err := decodeStrict([]byte(bad), &b)
		if err == nil {
			_, msg := b.config()
			if msg == "" {
				t.Errorf("accepted %s", bad)
			}
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"a\nb\tc\x01", `"a\nb\tc\u0001"`},
		{"<&>", `"\u003c\u0026\u003e"`},
		{"é€", `"é€"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"\u2028", `"\u2028"`},
	}
	for _, tt := range tests {
		if got := string(appendString(nil, tt.in)); got != tt.want {
			t.Errorf("appendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
