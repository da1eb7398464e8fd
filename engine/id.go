package engine

import (
	"encoding/base32"
	"strings"
)

// orderKey is the random part of an order id: 128 bits from crypto/rand,
// drawn by the caller before the command reaches the shard (the state
// machine reads no randomness).
type orderKey [16]byte

// orderKeyEncoding spells an orderKey in 26 lower-case characters.
var orderKeyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const orderKeyLen = 26

// formatOrderID names the order's sale, so any order routes to its shard:
// "<sale id>.<26 base32 chars>". Sale ids never contain '.'.
func formatOrderID(saleID string, k orderKey) string {
	var b strings.Builder
	b.Grow(len(saleID) + 1 + orderKeyLen)
	b.WriteString(saleID)
	b.WriteByte('.')
	var enc [orderKeyLen]byte
	orderKeyEncoding.Encode(enc[:], k[:])
	b.Write(enc[:])
	return b.String()
}

func parseOrderID(id string) (saleID string, k orderKey, ok bool) {
	dot := len(id) - orderKeyLen - 1
	if dot < 1 || id[dot] != '.' || !validID(id[:dot]) {
		return "", k, false
	}
	var dec [17]byte
	n, err := orderKeyEncoding.Decode(dec[:], []byte(id[dot+1:]))
	if err != nil || n != len(k) {
		return "", k, false
	}
	copy(k[:], dec[:n])
	// Reject non-canonical spellings (the trailing bits of the last char).
	if formatOrderID(id[:dot], k) != id {
		return "", k, false
	}
	return id[:dot], k, true
}

// validID reports whether s is a sale or tier id: 1 to IDLenMax of
// [A-Za-z0-9_-].
func validID(s string) bool {
	if len(s) == 0 || len(s) > IDLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// fnv32a hashes a sale id to its shard; it must never change, or sales would
// move between shards' logs (recovery repartitions if they do).
func fnv32a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
