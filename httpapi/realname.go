package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/onsale/onsale/engine"
)

// Real-name sales (实名制): a purchase names one attendee per ticket, with
// an identity document; the engine allows at most the sale's
// per_document_limit tickets per document (engine/realname.go).
//
// Document numbers and names stop here. Per attendee the engine gets a
// keyed hash, HMAC-SHA256(key, type 0x00 normalised-number) with a key
// derived from the data key (an identity number has too little entropy for
// a plain hash: anyone with the log could try them all), the last four
// characters for display, and the name sealed with AES-256-GCM (sealData,
// the sale id as associated data). Neither the log nor a snapshot holds a
// number or a name in clear.

// personalKeys are the keys derived from Config.DataKey for buyers'
// personal data.
type personalKeys struct {
	documentHash []byte // HMAC key of attendees' documents
	attendeeName []byte // AES-256-GCM key of attendees' names
	profile      []byte // AES-256-GCM key of profiles' email and phone (profile.go)
}

func newPersonalKeys(dataKey []byte) personalKeys {
	return personalKeys{
		documentHash: deriveDataKey(dataKey, "attendee-document-hash/v1"),
		attendeeName: deriveDataKey(dataKey, "attendee-name/v1"),
		profile:      deriveDataKey(dataKey, "profile-contact/v1"),
	}
}

// attendeeBody is one attendee as a purchase sends it.
type attendeeBody struct {
	Name           string `json:"name"`
	DocumentType   string `json:"document_type"`
	DocumentNumber string `json:"document_number"`
}

// attendeeNameLenMax is in characters: a name in any script.
const attendeeNameLenMax = 100

// documentTypes are the documents a real-name sale accepts, with the
// length bounds of their normalised numbers. Only the Chinese resident ID
// card has a check digit; the others are checked for length and charset.
var documentTypes = map[string][2]int{
	"id_card":                    {18, 18}, // 中华人民共和国居民身份证: ISO 7064 MOD 11-2
	"passport":                   {5, 20},
	"hk_macao_permit":            {8, 11}, // 港澳居民来往内地通行证
	"taiwan_permit":              {8, 10}, // 台湾居民来往大陆通行证
	"foreign_permanent_resident": {15, 18},
}

// sealAttendees checks a purchase's attendees and turns each into what the
// engine stores. The problem names the attendee by its index, never by its
// number.
func (s *Server) sealAttendees(saleID string, in []attendeeBody) ([]engine.Attendee, string) {
	if len(in) == 0 {
		return nil, ""
	}
	if len(in) > engine.QuantityPerOrderMax {
		return nil, fmt.Sprintf("attendees: at most %d, one per ticket", engine.QuantityPerOrderMax)
	}
	out := make([]engine.Attendee, len(in))
	for i := range in {
		a := &in[i]
		name := strings.TrimSpace(a.Name)
		if n := utf8.RuneCountInString(name); n == 0 || n > attendeeNameLenMax || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
			return nil, fmt.Sprintf("attendees[%d].name must be 1 to %d characters on one line", i, attendeeNameLenMax)
		}
		number, problem := normaliseDocument(a.DocumentType, a.DocumentNumber)
		if problem != "" {
			return nil, fmt.Sprintf("attendees[%d].%s", i, problem)
		}
		out[i] = engine.Attendee{
			DocumentHash:  s.documentHash(a.DocumentType, number),
			DocumentLast4: number[len(number)-4:],
			SealedName:    sealData(s.personal.attendeeName, "onsale attendee/"+saleID, []byte(name)),
		}
	}
	return out, ""
}

// documentHash is the keyed hash the engine counts a document by.
func (s *Server) documentHash(docType, number string) [32]byte {
	m := hmac.New(sha256.New, s.personal.documentHash)
	m.Write([]byte(docType))
	m.Write([]byte{0})
	m.Write([]byte(number))
	var h [32]byte
	m.Sum(h[:0])
	return h
}

// normaliseDocument trims, upper-cases and strips spaces and hyphens, then
// checks the number for its type. The problem never quotes the number.
func normaliseDocument(docType, number string) (string, string) {
	bounds, ok := documentTypes[docType]
	if !ok {
		return "", "document_type must be one of id_card, passport, hk_macao_permit, taiwan_permit, foreign_permanent_resident"
	}
	if len(number) > 64 {
		return "", "document_number is too long"
	}
	b := make([]byte, 0, len(number))
	for _, c := range []byte(strings.TrimSpace(number)) {
		switch {
		case c == ' ' || c == '-':
		case 'a' <= c && c <= 'z':
			b = append(b, c-'a'+'A')
		case 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			b = append(b, c)
		default:
			return "", "document_number may hold only letters, digits, spaces and hyphens"
		}
	}
	if len(b) < bounds[0] || len(b) > bounds[1] {
		if bounds[0] == bounds[1] {
			return "", fmt.Sprintf("document_number of a %s has %d characters", docType, bounds[0])
		}
		return "", fmt.Sprintf("document_number of a %s has %d to %d characters", docType, bounds[0], bounds[1])
	}
	if docType == "id_card" && !validResidentID(b) {
		return "", "document_number is not a valid resident ID card number (its check digit does not match)"
	}
	return string(b), ""
}

// validResidentID checks an 18-character Chinese resident ID number
// (GB 11643-1999): 17 digits and a check character, ISO 7064 MOD 11-2,
// where X stands for 10.
func validResidentID(b []byte) bool {
	sum := 0
	for i := range 17 {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
		// weight 2^(17-i) mod 11
		sum += int(b[i]-'0') * (1 << (17 - i) % 11)
	}
	check := (12 - sum%11) % 11
	switch last := b[17]; {
	case check == 10:
		return last == 'X'
	default:
		return last == byte('0'+check)
	}
}

// attendeeName opens an attendee's sealed name; "" if it does not open.
func (s *Server) attendeeName(saleID string, a *engine.Attendee) string {
	name, err := openData(s.personal.attendeeName, "onsale attendee/"+saleID, a.SealedName)
	if err != nil {
		return ""
	}
	return string(name)
}

// appendAttendee appends `,"attendee":{"name":...,"document_last4":...}`
// for ticket n of a real-name order, nothing for another order.
func (s *Server) appendAttendee(b []byte, o *engine.Order, n int) []byte {
	if n >= len(o.Attendees) {
		return b
	}
	a := &o.Attendees[n]
	b = append(b, `,"attendee":{"name":`...)
	b = appendString(b, s.attendeeName(o.SaleID, a))
	b = append(b, `,"document_last4":`...)
	b = appendString(b, a.DocumentLast4)
	return append(b, '}')
}

// realNameBody is a sale's real_name member.
type realNameBody struct {
	Required         bool `json:"required"`
	PerDocumentLimit int  `json:"per_document_limit"`
}

// appendRealNameRule appends a sale's real_name member, nothing for a sale
// without the rule.
func appendRealNameRule(b []byte, r engine.RealNameRule) []byte {
	if r == (engine.RealNameRule{}) {
		return b
	}
	b = append(b, `,"real_name":{"required":`...)
	b = strconv.AppendBool(b, r.Required)
	b = append(b, `,"per_document_limit":`...)
	b = strconv.AppendInt(b, int64(r.PerDocumentLimit), 10)
	return append(b, '}')
}
