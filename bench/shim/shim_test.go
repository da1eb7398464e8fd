package shim

import (
	"testing"

	"github.com/onsale/onsale/bench/api"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("whsec")
	body := []byte(`{"id":"evt_1"}`)
	const now = 1_700_000_000
	good := api.Sign(secret, now, body)
	if !verifySignature(secret, good, body, now) {
		t.Fatal("good signature refused")
	}
	for name, c := range map[string]struct {
		header string
		body   []byte
		now    int64
	}{
		"other body":       {good, []byte(`{"id":"evt_2"}`), now},
		"other secret":     {api.Sign([]byte("other"), now, body), body, now},
		"too old":          {good, body, now + signatureToleranceSec + 1},
		"from the future":  {good, body, now - signatureToleranceSec - 1},
		"no header":        {"", body, now},
		"no v1":            {"t=1700000000", body, now},
		"not hex":          {"t=1700000000,v1=zz", body, now},
		"bad timestamp":    {"t=abc,v1=00", body, now},
		"truncated digest": {good[:len(good)-2], body, now},
	} {
		if verifySignature(secret, c.header, c.body, c.now) {
			t.Errorf("%s: accepted", name)
		}
	}
	if !verifySignature(secret, good, body, now+signatureToleranceSec) {
		t.Error("signature at the edge of the tolerance refused")
	}
}
