package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// The waiting room's routes (engine/queue.go holds the rules):
//
//	POST /v1/sales/{sale_id}/queue        join (buyer); 201, or 200 with the place held already
//	GET  /v1/sales/{sale_id}/queue/me     where the buyer stands; Retry-After while waiting
//	GET  /v1/sales/{sale_id}/queue/draw   the draw: commitment, seed, join ids, order (public)
//
// and on POST /v1/sales/{sale_id}/purchase of a queued sale the header
// Onsale-Admission: the token that /queue/me gave the admitted buyer.
//
// A buyer is known to the queue by a join id, HMAC-SHA256(key, sale id
// 0x00 user id) cut to 16 bytes, with a key derived from the data key: the
// engine, the log and the published draw never hold a user id, and the
// same buyer has unrelated ids in two sales.
//
// The admission token is base64url (no padding) of
//
//	version(1) | join id(16) | place(4) | wave(4) | expires at ms(8) | mac(16)
//
// with integers big-endian and mac the first 16 bytes of
// HMAC-SHA256(admission key, "onsale admission v1" 0x00 sale id 0x00 the
// bytes before it). It only carries what the engine checks (the engine's
// state decides whether it is still good: unused and unexpired); the MAC
// keeps a buyer from naming someone else's place. The same admission
// always gives the same token, so polling does not multiply them.
//
// Positions are read through the sale's shard (a read, no log write);
// the SSE stream of the sale (GET /v1/sales/{sale_id}/live, live.go)
// carries the queue's head (queue.admitted) and sold_out, so a waiting
// page computes its position as place - admitted without polling.

// queueKeys are the keys derived from Config.DataKey for the queue.
type queueKeys struct {
	joinID    []byte
	admission []byte
}

func newQueueKeys(dataKey []byte) queueKeys {
	return queueKeys{
		joinID:    deriveDataKey(dataKey, "queue-join-id/v1"),
		admission: deriveDataKey(dataKey, "queue-admission/v1"),
	}
}

const (
	admissionTokenVersion = 1
	admissionTokenLen     = 1 + 16 + 4 + 4 + 8 + 16
	// queueRetryAfterMax bounds the Retry-After of a waiting buyer's
	// answers: the estimate moves, and a page should look again.
	queueRetryAfterMax = 30
)

var headerAdmission = []byte("Onsale-Admission")

func (k *queueKeys) joinIDOf(saleID, userID string) engine.JoinID {
	m := hmac.New(sha256.New, k.joinID)
	m.Write([]byte(saleID))
	m.Write([]byte{0})
	m.Write([]byte(userID))
	var sum [32]byte
	m.Sum(sum[:0])
	return engine.JoinID(sum[:16])
}

func (k *queueKeys) admissionMAC(saleID string, payload []byte) []byte {
	m := hmac.New(sha256.New, k.admission)
	m.Write([]byte("onsale admission v1\x00"))
	m.Write([]byte(saleID))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// admissionToken signs an admitted buyer's admission.
func (k *queueKeys) admissionToken(saleID string, st *engine.QueueStatus) string {
	b := make([]byte, 0, admissionTokenLen)
	b = append(b, admissionTokenVersion)
	b = append(b, st.JoinID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(st.Place))
	b = binary.BigEndian.AppendUint32(b, st.Wave)
	b = binary.BigEndian.AppendUint64(b, uint64(st.AdmissionExpiryMs))
	b = append(b, k.admissionMAC(saleID, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseAdmission checks a token's MAC and that it names the buyer; the
// engine checks the rest.
func (k *queueKeys) parseAdmission(saleID, userID string, token []byte) (*engine.QueueAdmission, bool) {
	var raw [admissionTokenLen + 3]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], token)
	if err != nil || n != admissionTokenLen || raw[0] != admissionTokenVersion {
		return nil, false
	}
	payload := raw[:admissionTokenLen-16]
	if !hmac.Equal(raw[admissionTokenLen-16:admissionTokenLen], k.admissionMAC(saleID, payload)) {
		return nil, false
	}
	a := &engine.QueueAdmission{Place: int(binary.BigEndian.Uint32(payload[17:])), Wave: binary.BigEndian.Uint32(payload[21:])}
	copy(a.JoinID[:], payload[1:17])
	if a.JoinID != k.joinIDOf(saleID, userID) {
		return nil, false
	}
	return a, true
}

// purchaseAdmission reads a purchase's Onsale-Admission header: nil
// without one (the engine refuses that on a queued sale), false when it is
// not a token of this buyer and sale.
func (s *Server) purchaseAdmission(ctx *fasthttp.RequestCtx, saleID []byte, userID string) (*engine.QueueAdmission, bool) {
	token := ctx.Request.Header.PeekBytes(headerAdmission)
	if len(token) == 0 {
		return nil, true
	}
	return s.queue.parseAdmission(string(saleID), userID, token)
}

// queueJoin: POST /v1/sales/{sale_id}/queue.
func (s *Server) queueJoin(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	id := string(saleID)
	if s.isLottery(id) { // offers.go
		s.offerRegister(ctx, saleID, who, engine.BookLottery)
		return
	}
	if s.overUserRate(ctx, routeQueueJoin, who) || s.overAddrRate(ctx) {
		return
	}
	doc, ok := s.queueJoinDocument(ctx) // offers.go: real-name sales
	if !ok {
		return
	}
	var st engine.QueueStatus
	var err error
	if doc != nil {
		st, err = s.eng.QueueJoinDocument(s.reqCtx(), id, s.queue.joinIDOf(id, who.userID), *doc)
	} else {
		st, err = s.eng.QueueJoin(s.reqCtx(), id, s.queue.joinIDOf(id, who.userID))
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	status := fasthttp.StatusOK
	if st.Created {
		status = fasthttp.StatusCreated
	}
	s.writeQueueStatus(ctx, status, id, &st)
}

// queueMe: GET /v1/sales/{sale_id}/queue/me.
func (s *Server) queueMe(ctx *fasthttp.RequestCtx, saleID []byte, who principal) {
	id := string(saleID)
	if s.isLottery(id) { // offers.go
		s.offerMe(ctx, saleID, who, engine.BookLottery)
		return
	}
	st, err := s.eng.QueuePosition(s.reqCtx(), id, s.queue.joinIDOf(id, who.userID))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeQueueStatus(ctx, fasthttp.StatusOK, id, &st)
}

// overAddrRate limits joins per client address (Config.QueueJoinAddrRatePerSec).
func (s *Server) overAddrRate(ctx *fasthttp.RequestCtx) bool {
	if s.addrLimiter == nil {
		return false
	}
	ok, wait := s.addrLimiter.allow(ctx.RemoteIP().String(), s.now())
	if ok {
		return false
	}
	writeProblem(ctx, codeRateLimited, "too many queue joins from this address; nothing was done, retry after Retry-After seconds", -1)
	var b [20]byte
	ctx.Response.Header.SetCanonical(headerRetryAfter, strconv.AppendInt(b[:0], int64(retryAfterSeconds(wait)), 10))
	s.m.rateLimited[routeQueueJoin].Inc()
	return true
}

// writeQueueStatus answers a buyer's place (schema QueueStatus), with the
// admission token once admitted, and Retry-After while there is nothing
// to do but wait.
func (s *Server) writeQueueStatus(ctx *fasthttp.RequestCtx, status int, saleID string, st *engine.QueueStatus) {
	nowMs := s.now().UnixMilli()
	v, _ := s.eng.SaleView(saleID)
	rate, soldOut := 1, false
	if v != nil {
		rate, soldOut = max(v.SaleConfig.Queue.AdmitRatePerSec, 1), saleSoldOut(v)
	}
	b := append(make([]byte, 0, 512), `{"sale_id":`...)
	b = appendString(b, saleID)
	b = append(b, `,"join_id":"`...)
	b = hex.AppendEncode(b, st.JoinID[:])
	b = append(b, `","state":"`...)
	b = append(b, st.State.String()...)
	b = append(b, `","place":`...)
	b = strconv.AppendInt(b, int64(st.Place), 10)
	b = append(b, `,"ahead":`...)
	b = strconv.AppendInt(b, int64(st.Ahead), 10)
	b = append(b, `,"joined":`...)
	b = strconv.AppendInt(b, int64(st.Joined), 10)
	b = append(b, `,"admitted":`...)
	b = strconv.AppendInt(b, int64(st.Admitted), 10)
	b = append(b, `,"sold_out":`...)
	b = strconv.AppendBool(b, soldOut)
	retry := 0
	switch st.State {
	case engine.QueueWaiting:
		est := (st.Ahead + rate) / rate // whole seconds, at least 1
		b = append(b, `,"estimate_seconds":`...)
		b = strconv.AppendInt(b, int64(est), 10)
		retry = min(max(est/4, 1), queueRetryAfterMax)
	case engine.QueueRegistered:
		if v != nil {
			retry = min(max(int((v.OpensAtMs-nowMs)/2000), 1), queueRetryAfterMax)
		}
	case engine.QueueAdmitted:
		b = append(b, `,"admission":{"token":"`...)
		b = append(b, s.queue.admissionToken(saleID, st)...)
		b = append(b, `","expires_at":`...)
		b = appendTime(b, st.AdmissionExpiryMs)
		b = append(b, '}')
	}
	b = append(b, "}\n"...)
	if retry > 0 && !soldOut {
		ctx.Response.Header.SetCanonical(headerRetryAfter, strconv.AppendInt(nil, int64(retry), 10))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// saleSoldOut: nothing available and nothing held, so nothing can come
// back: a waiting buyer may stop.
func saleSoldOut(v *engine.Sale) bool {
	for _, c := range v.TierCounts {
		if c.Available > 0 || c.Held > 0 {
			return false
		}
	}
	return true
}

// queueDraw: GET /v1/sales/{sale_id}/queue/draw (schema QueueDraw).
func (s *Server) queueDraw(ctx *fasthttp.RequestCtx, saleID []byte, _ principal) {
	d, err := s.eng.QueueDrawOf(s.reqCtx(), string(saleID))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	b := appendQueueDraw(make([]byte, 0, 256+len(d.Order)*70), string(saleID), &d)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// QueueDrawAlgorithm names the draw's algorithm in the published draw.
const QueueDrawAlgorithm = "sort join_ids by HMAC-SHA256(key=seed, message=join_id), ascending as big-endian numbers; ties by join_id"

func appendQueueDraw(b []byte, saleID string, d *engine.QueueDraw) []byte {
	b = append(b, `{"sale_id":`...)
	b = appendString(b, saleID)
	b = append(b, `,"algorithm":`...)
	b = appendString(b, QueueDrawAlgorithm)
	b = append(b, `,"seed_sha256":"`...)
	b = hex.AppendEncode(b, d.Commitment[:])
	b = append(b, `","drawn":`...)
	b = strconv.AppendBool(b, d.Drawn)
	if d.Drawn {
		b = append(b, `,"seed":"`...)
		b = hex.AppendEncode(b, d.Seed[:])
		b = append(b, `","drawn_at":`...)
		b = appendTime(b, d.DrawnAtMs)
	}
	b = appendJoinIDs(append(b, `,"join_ids":`...), d.JoinIDs)
	b = appendJoinIDs(append(b, `,"order":`...), d.Order)
	return append(b, "}\n"...)
}

func appendJoinIDs(b []byte, ids []engine.JoinID) []byte {
	b = append(b, '[')
	for i := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = hex.AppendEncode(b, ids[i][:])
		b = append(b, '"')
	}
	return append(b, ']')
}

// appendQueue appends a queued sale's queue to its JSON (schema Sale):
// its rule, the commitment of its draw's seed and its counts.
func appendQueue(b []byte, sl *engine.Sale) []byte {
	q, n := sl.SaleConfig.Queue, sl.QueueCounts
	if q.Mode == 0 || n == nil {
		return b
	}
	b = append(b, `,"queue":{"mode":"`...)
	b = append(b, queueModeName(q.Mode)...)
	b = append(b, `","admit_rate":`...)
	b = strconv.AppendInt(b, int64(q.AdmitRatePerSec), 10)
	b = append(b, `,"admission_ttl_seconds":`...)
	b = strconv.AppendInt(b, q.AdmissionTTLMs/1000, 10)
	b = append(b, `,"seed_sha256":"`...)
	b = hex.AppendEncode(b, n.Commitment[:])
	b = append(b, `","joined":`...)
	b = strconv.AppendInt(b, int64(n.Joined), 10)
	b = append(b, `,"admitted":`...)
	b = strconv.AppendInt(b, int64(n.Admitted), 10)
	b = append(b, `,"drawn":`...)
	b = strconv.AppendBool(b, n.Drawn)
	return append(b, '}')
}

func queueModeName(m engine.QueueMode) string {
	if m == engine.QueueShuffleAtOpen {
		return "shuffle_at_open"
	}
	return "fifo"
}

// queueBody is a sale's queue as an admin writes it.
type queueBody struct {
	Mode                string `json:"mode"`
	AdmitRate           int    `json:"admit_rate"`
	AdmissionTTLSeconds int64  `json:"admission_ttl_seconds"`

	// mode "lottery" (offers.go)
	RegistrationClosesAt *time.Time `json:"registration_closes_at"`
	PayWithinSeconds     int64      `json:"pay_within_seconds"`
}

func (q *queueBody) config() (engine.QueueConfig, string) {
	c := engine.QueueConfig{AdmitRatePerSec: q.AdmitRate, AdmissionTTLMs: q.AdmissionTTLSeconds * 1000}
	switch q.Mode {
	case "fifo":
		c.Mode = engine.QueueFIFO
	case "shuffle_at_open":
		c.Mode = engine.QueueShuffleAtOpen
	default:
		return c, "queue.mode must be fifo or shuffle_at_open"
	}
	if q.AdmissionTTLSeconds < 0 || q.AdmissionTTLSeconds > int64(time.Hour/time.Second) {
		return c, "queue.admission_ttl_seconds must be 10 to 3600"
	}
	return c, ""
}

// appendLiveQueue adds a queued sale's head to its live event: a waiting
// page's position is its place minus admitted.
func appendLiveQueue(b []byte, v *engine.Sale) []byte {
	if v.SaleConfig.Queue.Mode == 0 || v.QueueCounts == nil {
		return b
	}
	b = append(b, `,"queue":{"joined":`...)
	b = strconv.AppendInt(b, int64(v.QueueCounts.Joined), 10)
	b = append(b, `,"admitted":`...)
	b = strconv.AppendInt(b, int64(v.QueueCounts.Admitted), 10)
	b = append(b, `,"drawn":`...)
	b = strconv.AppendBool(b, v.QueueCounts.Drawn)
	return append(b, '}')
}
