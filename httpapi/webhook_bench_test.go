package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWebhookSignature: verifying Onsale-Signature with the server's
// pooled HMAC states against hmac.New per call (what verify did before).
func BenchmarkWebhookSignature(b *testing.B) {
	secret := []byte("whsec_bench_secret_0123456789")
	body := []byte(`{"id":"evt_0123456789abcdef","type":"payment.succeeded","order_id":"s1.01J9ZQ4K7B2M8N3P5R6T7V8W9X","amount_cents":15000,"currency":"EUR"}`)
	now := time.Unix(1_700_000_000, 0)
	header := []byte(SignWebhook(secret, body, now))
	b.Run("pooled", func(b *testing.B) {
		macs := newWebhookMACs([][]byte{secret})
		b.ReportAllocs()
		for range b.N {
			if err := macs.verify(header, body, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hmac_new", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			sh, err := parseSignatureHeader(header)
			if err != nil {
				b.Fatal(err)
			}
			var ts [20]byte
			tb := strconv.AppendInt(ts[:0], sh.timestamp, 10)
			var sum [sha256.Size]byte
			mac := hmac.New(sha256.New, secret)
			mac.Write(tb)
			mac.Write([]byte{'.'})
			mac.Write(body)
			mac.Sum(sum[:0])
			if !hmac.Equal(sum[:], sh.v1[0][:]) {
				b.Fatal("mismatch")
			}
		}
	})
}
