package engine

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"strconv"
)

// Ticket codes: what a ticket's QR code holds, verifiable offline with the
// sale's public key. Pure functions, no engine state; httpapi signs and
// verifies with them, outside the shards.
//
//	offset  size  field
//	0       1     version (1)
//	1       1     kid: the sale's key that signed it (1-255)
//	2       1     n = length of the sale id (1-64)
//	3       n     sale id, [A-Za-z0-9_-]
//	3+n     16    the order's key (the order id is "<sale id>.<key in base32, lower case>")
//	19+n    1     ticket index in the order (0-63)
//	20+n    1     tier index in the sale (0-63)
//	21+n    1-10  issued at: unix seconds, uvarint (minimal)
//	..      1     flags: 0 (bits reserved for optional fields, such as a holder's name)
//	..      64    Ed25519 signature of every byte before it
//
// The text is the bytes in base32 (RFC 4648 alphabet, upper case, no
// padding): only characters of the QR alphanumeric mode. A 20-character
// sale id makes 111 bytes, 178 characters: QR version 7 at error
// correction M.
const (
	ticketCodeVersion = 1
	// TicketCodeLenMax bounds the text of a code: 160 bytes at most.
	TicketCodeLenMax = (160*8 + 4) / 5
)

// TicketPayload is what a ticket code says, before its signature.
type TicketPayload struct {
	Kid      uint8
	SaleID   string
	Order    [16]byte
	Ticket   uint8
	Tier     uint8
	IssuedAt int64 // unix seconds
}

var ticketCodeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

var (
	errTicketCodeLength    = errors.New("engine: ticket code: wrong length")
	errTicketCodeText      = errors.New("engine: ticket code: not base32 (A-Z 2-7, no padding)")
	errTicketCodeVersion   = errors.New("engine: ticket code: version not understood")
	errTicketCodeField     = errors.New("engine: ticket code: a field is out of range")
	errTicketCodeFlags     = errors.New("engine: ticket code: flags not understood")
	errTicketCodeSignature = errors.New("engine: ticket code: signature does not verify")
	errTicketCodeKey       = errors.New("engine: ticket code: no such key")
)

// OrderID is the id of the order the code belongs to.
func (p *TicketPayload) OrderID() string { return formatOrderID(p.SaleID, p.Order) }

// TicketID is the plain id of the ticket: "<order_id>.<n>".
func (p *TicketPayload) TicketID() string {
	return p.OrderID() + "." + strconv.Itoa(int(p.Ticket))
}

func (p *TicketPayload) appendUnsigned(b []byte) []byte {
	b = append(b, ticketCodeVersion, p.Kid, byte(len(p.SaleID)))
	b = append(b, p.SaleID...)
	b = append(b, p.Order[:]...)
	b = append(b, p.Ticket, p.Tier)
	b = binary.AppendUvarint(b, uint64(max(p.IssuedAt, 0)))
	return append(b, 0) // flags
}

// SignTicketCode returns the text of a code for p, signed with key (the
// private key of p.Kid, DeriveTicketKey).
func SignTicketCode(p TicketPayload, key ed25519.PrivateKey) string {
	var buf [160]byte
	b := p.appendUnsigned(buf[:0])
	b = append(b, ed25519.Sign(key, b)...)
	return ticketCodeEncoding.EncodeToString(b)
}

// ParseTicketCode reads a code's text and fields without checking its
// signature; it returns the payload, the signed bytes and the signature.
// Any input that is not a well-formed code is an error; it never panics.
func ParseTicketCode(code string) (p TicketPayload, signed, sig []byte, err error) {
	if len(code) == 0 || len(code) > TicketCodeLenMax {
		return p, nil, nil, errTicketCodeLength
	}
	b := make([]byte, ticketCodeEncoding.DecodedLen(len(code)))
	n, err := ticketCodeEncoding.Decode(b, []byte(code))
	// One spelling per code: the decoder skips line breaks and ignores a
	// last character's unused bits, the encoding of what it read does not.
	var again [TicketCodeLenMax]byte
	if err != nil || ticketCodeEncoding.EncodedLen(n) != len(code) {
		return p, nil, nil, errTicketCodeText
	}
	if ticketCodeEncoding.Encode(again[:], b[:n]); string(again[:len(code)]) != code {
		return p, nil, nil, errTicketCodeText
	}
	b = b[:n]
	const fixed = 3 + 16 + 2 + 1 + 1 + ed25519.SignatureSize // without the sale id; issued-at at least 1 byte
	if len(b) < fixed+1 {
		return p, nil, nil, errTicketCodeLength
	}
	if b[0] != ticketCodeVersion {
		return p, nil, nil, errTicketCodeVersion
	}
	p.Kid = b[1]
	idLen := int(b[2])
	if p.Kid == 0 || idLen == 0 || idLen > IDLenMax || len(b) < fixed+idLen {
		return p, nil, nil, errTicketCodeField
	}
	p.SaleID = string(b[3 : 3+idLen])
	rest := b[3+idLen:]
	copy(p.Order[:], rest)
	p.Ticket, p.Tier = rest[16], rest[17]
	issued, w := binary.Uvarint(rest[18:])
	if !validID(p.SaleID) || p.Ticket >= QuantityPerOrderMax || p.Tier >= TiersPerSaleMax ||
		w <= 0 || w != uvarintLen(issued) || issued > 1<<40 {
		return p, nil, nil, errTicketCodeField
	}
	p.IssuedAt = int64(issued)
	rest = rest[18+w:]
	if len(rest) != 1+ed25519.SignatureSize {
		return p, nil, nil, errTicketCodeLength
	}
	if rest[0] != 0 {
		return p, nil, nil, errTicketCodeFlags
	}
	return p, b[:len(b)-ed25519.SignatureSize], rest[1:], nil
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return len(binary.AppendUvarint(buf[:0], v))
}

// VerifyTicketCode parses a code and checks its signature with the public
// key that publicKey returns for its sale and kid (nil: no such key).
func VerifyTicketCode(code string, publicKey func(saleID string, kid uint8) ed25519.PublicKey) (TicketPayload, error) {
	p, signed, sig, err := ParseTicketCode(code)
	if err != nil {
		return p, err
	}
	key := publicKey(p.SaleID, p.Kid)
	if key == nil {
		return p, errTicketCodeKey
	}
	if !ed25519.Verify(key, signed, sig) {
		return p, errTicketCodeSignature
	}
	return p, nil
}

// DeriveTicketKey derives the signing key kid of a sale from the server's
// data key: its seed is HMAC-SHA256(dataKey, "onsale ticket key v1" 0x00
// sale id 0x00 kid in decimal). The same inputs give the same key on every
// start, so only the kid is ever logged.
func DeriveTicketKey(dataKey []byte, saleID string, kid int) ed25519.PrivateKey {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("onsale ticket key v1\x00"))
	m.Write([]byte(saleID))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, int64(kid), 10))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
}
