package notify

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// Sign returns the Onsale-Signature header of body at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>", the scheme
// onsale's own payment webhook verifies.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// secretKeys seal endpoint secrets: AES-256-GCM under a key derived from
// the data key, the endpoint id as associated data.
type secretKeys struct{ aead cipher.AEAD }

func newSecretKeys(dataKey []byte) secretKeys {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("onsale webhook endpoint secrets v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return secretKeys{aead}
}

// SealSecret seals an endpoint's signing secret for the engine to store.
func (n *Notifier) SealSecret(endpointID string, secret []byte) []byte {
	nonce := make([]byte, n.keys.aead.NonceSize())
	rand.Read(nonce) // never fails (crypto/rand, Go 1.24+)
	return n.keys.aead.Seal(nonce, nonce, secret, []byte(endpointID))
}

func (n *Notifier) openSecret(w *engine.Webhook) ([]byte, error) {
	ns := n.keys.aead.NonceSize()
	if len(w.SecretSealed) < ns {
		return nil, errors.New("notify: sealed secret too short")
	}
	return n.keys.aead.Open(nil, w.SecretSealed[:ns], w.SecretSealed[ns:], []byte(w.ID))
}

// endpointWorker delivers one endpoint's notifications in outbox order,
// one at a time: a notification is sent only after every earlier one was
// accepted (2xx), so a receiver sees them in the order they were decided
// within a shard, and a failing one holds back the rest of its endpoint
// (never another endpoint's) while it is retried.
type endpointWorker struct {
	n      *Notifier
	hook   engine.Webhook
	secret []byte
	cursor atomic.Uint64 // next position to deliver
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	logMu  sync.Mutex // guards the delivery log buffer below (worker, redeliver, readers)

	pending       map[uint64]*stored // delivery log entries not written yet
	pendingCursor uint64             // the cursor not written yet; 0: none
	fresh         uint64             // positions from here on have no delivery log entry in the store yet
	trimBelow     uint64             // delivery log entries below this go at the next flush; 0: none
	flushedAt     time.Time
}

func (w *endpointWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// refreshEndpoints reads the endpoints from the engine and starts or stops
// their workers. A new endpoint starts at the outbox's head.
func (n *Notifier) refreshEndpoints() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	list := n.eng.Webhooks
	if n.cfg.Endpoints != nil {
		list = n.cfg.Endpoints
	}
	hooks, err := list(ctx)
	cancel()
	if err != nil {
		return err
	}
	saved := make(map[string]uint64)
	err = n.store.AuxScan(keyEndpoint, prefixEnd(keyEndpoint), 0, func(k, v []byte) error {
		if len(v) == 8 {
			saved[string(k[len(keyEndpoint):])] = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	live := make(map[string]bool)
	var ops []wal.AuxOp
	for _, h := range hooks {
		live[h.ID] = true
		n.mu.Lock()
		_, running := n.workers[h.ID]
		head := n.head
		n.mu.Unlock()
		if running {
			continue
		}
		secret, err := n.openSecret(&h)
		if err != nil {
			n.cfg.Logger.Error("cannot open a webhook endpoint's secret (was the data key changed?)", "endpoint", h.ID, "err", err)
			continue
		}
		w := &endpointWorker{n: n, hook: h, secret: secret, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
		pos, ok := saved[h.ID]
		if !ok {
			pos = head
			ops = append(ops, wal.AuxOp{Key: endpointKey(h.ID), Value: u64(pos)})
		}
		w.cursor.Store(pos)
		w.fresh = pos + 1 // the entry at the cursor may be a failed attempt's; none after it is logged
		n.mu.Lock()
		if n.stopped {
			n.mu.Unlock()
			return nil
		}
		n.workers[h.ID] = w
		n.m.endpointAdded(h.ID, w)
		n.wg.Add(1)
		n.mu.Unlock()
		go func() { defer n.wg.Done(); defer close(w.done); w.run() }()
	}
	n.mu.Lock()
	for id, w := range n.workers {
		if !live[id] {
			close(w.quit)
			delete(n.workers, id)
			n.m.endpointRemoved(id)
			delete(saved, id)
			ops = append(ops, wal.AuxOp{Key: endpointKey(id)}, wal.AuxOp{Key: deliveryPrefix(id), End: prefixEnd(deliveryPrefix(id))})
		}
	}
	n.mu.Unlock()
	for id := range saved {
		if !live[id] { // deleted while stopped
			ops = append(ops, wal.AuxOp{Key: endpointKey(id)}, wal.AuxOp{Key: deliveryPrefix(id), End: prefixEnd(deliveryPrefix(id))})
		}
	}
	if len(ops) > 0 {
		return n.store.AuxWrite(ops, true)
	}
	return nil
}

func (w *endpointWorker) run() {
	defer func() {
		select {
		case <-w.quit: // deleted: its keys are gone, write nothing back
		default:
			w.flush()
		}
	}()
	for {
		poss, recs, err := w.n.readRecords(w.cursor.Load(), 64)
		if err != nil {
			w.n.cfg.Logger.Error("cannot read the outbox", "endpoint", w.hook.ID, "err", err)
			if !w.sleep(time.Second) {
				return
			}
			continue
		}
		if len(recs) == 0 {
			w.flush() // idle: nothing buffered waits for the next delivery
			select {
			case <-w.wake:
				continue
			case <-w.quit:
				return
			case <-w.n.quit:
				w.flush()
				return
			}
		}
		skipped := false
		for i := range recs {
			// The cursor is saved with the delivery's log entry (not
			// synced: a lost cursor redelivers, at least once; the next
			// synced write of the log takes it to disk).
			if !w.hook.Wants(recs[i].Kind) {
				skipped = true
			} else if !w.n.pace.wait(w.quit, w.n.quit) || !w.deliver(poss[i], &recs[i]) {
				return // stopped
			} else {
				skipped = false
			}
			w.cursor.Store(poss[i] + 1)
		}
		if skipped { // the last records were not for this endpoint: save that it passed them
			w.logMu.Lock()
			w.pendingCursor = poss[len(poss)-1] + 1
			w.logMu.Unlock()
		}
	}
}

func (w *endpointWorker) sleep(d time.Duration) bool {
	select {
	case <-w.n.cfg.After(d):
		return true
	case <-w.quit:
		return false
	case <-w.n.quit:
		return false
	}
}

// deliver sends one record until the endpoint accepts it; false when the
// worker was stopped first.
func (w *endpointWorker) deliver(pos uint64, r *record) bool {
	for attempt := 0; ; attempt++ {
		d := w.attempt(pos, r)
		if d.ok() {
			return true
		}
		if !w.sleep(w.n.backoff(attempt)) {
			return false
		}
	}
}

// Delivery is one notification's entry in an endpoint's delivery log.
type Delivery struct {
	ID          string     `json:"id"`
	EventID     string     `json:"event_id"`
	Type        string     `json:"type"`
	State       string     `json:"state"` // "delivered", "retrying"
	Attempts    []Attempt  `json:"attempts"`
	AttemptsN   int        `json:"attempt_count"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// Attempt is one try.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMs float64   `json:"duration_ms"`
	Manual     bool      `json:"redelivery,omitempty"`
}

func (a *Attempt) ok() bool { return a.Error == "" && a.StatusCode/100 == 2 }

// stored is a Delivery as kept in the aux keyspace.
type stored struct {
	Delivery
	Body json.RawMessage `json:"body"`
}

const attemptsKept = 20

// attempt makes one try and records it in the delivery log.
func (w *endpointWorker) attempt(pos uint64, r *record) Attempt {
	w.n.sem <- struct{}{}
	a := w.post(r.EventID, r.Kind, r.Body)
	<-w.n.sem
	var cursor uint64
	if a.ok() {
		cursor = pos + 1
	}
	w.logAttempt(pos, r.EventID, r.Kind, r.Body, a, cursor)
	return a
}

func (w *endpointWorker) post(eventID, kind string, body []byte) Attempt {
	start := w.n.cfg.Now()
	a := Attempt{At: start.UTC()}
	ctx, cancel := context.WithTimeout(context.Background(), w.n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", w.hook.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "onsale-webhooks/1")
	req.Header.Set("Onsale-Signature", Sign(w.secret, body, start))
	req.Header.Set("Onsale-Event-Id", eventID)
	req.Header.Set("Onsale-Event-Type", kind)
	t0 := time.Now()
	resp, err := w.n.cfg.Client.Do(req)
	elapsed := time.Since(t0)
	a.DurationMs = float64(elapsed.Microseconds()) / 1000
	outcome := "ok"
	if err != nil {
		a.Error, outcome = err.Error(), "network_error"
	} else {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		a.StatusCode = resp.StatusCode
		if resp.StatusCode/100 != 2 {
			a.Error, outcome = "HTTP "+strconv.Itoa(resp.StatusCode), "http_error"
		}
	}
	w.n.m.delivered(outcome, elapsed)
	return a
}

// logAttempt records an attempt in the delivery log; cursor, if not 0, is
// saved with it (the worker's next position after a success). Entries are
// buffered and written together at most every logFlushEvery (or
// logFlushMax entries): one write to the shared log per flush, not per
// delivery, since every byte and commit there is also on the purchases'
// fsyncs. A crash may lose the last buffered entries and cursor: the
// notifications are then delivered again (at least once).
func (w *endpointWorker) logAttempt(pos uint64, eventID, kind string, body []byte, a Attempt, cursor uint64) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	s, found := w.pending[pos]
	if !found {
		if pos < w.fresh { // a retry, or a redelivery: its entry may be stored
			s = w.readEntry(pos)
		} else { // a first attempt: nothing to read (one store read per delivery saved)
			w.fresh = pos + 1
		}
		if s == nil {
			s = &stored{Delivery: Delivery{ID: deliveryID(pos), EventID: eventID, Type: kind}, Body: body}
			if back := uint64(w.n.cfg.DeliveriesKept); pos >= back && pos%64 == 0 {
				w.trimBelow = pos - back + 1 // about the newest DeliveriesKept stay
			}
		}
		if w.pending == nil {
			w.pending = make(map[uint64]*stored)
		}
		w.pending[pos] = s
	}
	s.AttemptsN++
	s.Attempts = append(s.Attempts, a)
	if len(s.Attempts) > attemptsKept {
		s.Attempts = s.Attempts[len(s.Attempts)-attemptsKept:]
	}
	s.State = "retrying"
	if a.ok() {
		at := a.At
		s.State, s.DeliveredAt = "delivered", &at
	}
	if cursor != 0 {
		w.pendingCursor = cursor
	}
	if len(w.pending) >= logFlushMax || !a.ok() || time.Since(w.flushedAt) >= logFlushEvery {
		w.flushLocked()
	}
}

const (
	logFlushEvery = 100 * time.Millisecond
	logFlushMax   = 256
)

// readEntry reads a delivery log entry from the store, or nil.
func (w *endpointWorker) readEntry(pos uint64) *stored {
	key := deliveryKey(w.hook.ID, pos)
	var s *stored
	_ = w.n.store.AuxScan(key, prefixEnd(key), 1, func(k, v []byte) error {
		if bytes.Equal(k, key) {
			var x stored
			if jsonv2.Unmarshal(v, &x) == nil {
				s = &x
			}
		}
		return nil
	})
	return s
}

func (w *endpointWorker) flush() {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	w.flushLocked()
}

// flushLocked writes the buffered entries, the cursor and a trim in one
// write.
func (w *endpointWorker) flushLocked() {
	w.flushedAt = time.Now()
	if len(w.pending) == 0 && w.pendingCursor == 0 {
		return
	}
	ops := make([]wal.AuxOp, 0, len(w.pending)+2)
	if w.trimBelow != 0 {
		ops = append(ops, wal.AuxOp{Key: deliveryPrefix(w.hook.ID), End: deliveryKey(w.hook.ID, w.trimBelow)})
	}
	for pos, s := range w.pending {
		v, err := jsonv2.Marshal(s)
		if err != nil {
			panic(err)
		}
		ops = append(ops, wal.AuxOp{Key: deliveryKey(w.hook.ID, pos), Value: v})
	}
	if w.pendingCursor != 0 {
		ops = append(ops, wal.AuxOp{Key: endpointKey(w.hook.ID), Value: u64(w.pendingCursor)})
	}
	if err := w.n.store.AuxWrite(ops, false); err != nil {
		w.n.cfg.Logger.Error("cannot write the webhook delivery log", "endpoint", w.hook.ID, "err", err)
	}
	clear(w.pending)
	w.pendingCursor, w.trimBelow = 0, 0
}

func deliveryID(pos uint64) string { return "dlv_" + strconv.FormatUint(pos, 10) }

// ErrUnknownEndpoint and ErrUnknownDelivery: nothing by that id.
var (
	ErrUnknownEndpoint = errors.New("notify: no such webhook endpoint")
	ErrUnknownDelivery = errors.New("notify: no such delivery")
)

// Deliveries returns an endpoint's delivery log, newest first, at most
// limit entries; empty for an endpoint nothing was sent to yet.
func (n *Notifier) Deliveries(endpointID string, limit int) ([]Delivery, error) {
	if w, ok := n.worker(endpointID); ok {
		w.flush()
	}
	var all []Delivery
	p := deliveryPrefix(endpointID)
	err := n.store.AuxScan(p, prefixEnd(p), 0, func(_, v []byte) error {
		var s stored
		if err := jsonv2.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("notify: bad delivery log entry: %w", err)
		}
		all = append(all, s.Delivery)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, min(limit, len(all)))
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

// Redeliver sends a logged delivery again now, once, out of order (the
// receiver dedupes by its event id), and returns its updated entry.
func (n *Notifier) Redeliver(endpointID, deliveryIDText string) (Delivery, error) {
	w, ok := n.worker(endpointID)
	if !ok {
		return Delivery{}, ErrUnknownEndpoint
	}
	num, ok := parseDeliveryID(deliveryIDText)
	if !ok {
		return Delivery{}, ErrUnknownDelivery
	}
	w.flush()
	key := deliveryKey(endpointID, num)
	var s stored
	found := false
	err := n.store.AuxScan(key, prefixEnd(key), 1, func(k, v []byte) error {
		if bytes.Equal(k, key) {
			found = true
			return jsonv2.Unmarshal(v, &s)
		}
		return nil
	})
	if err != nil {
		return Delivery{}, err
	}
	if !found {
		return Delivery{}, ErrUnknownDelivery
	}
	n.sem <- struct{}{}
	a := w.post(s.EventID, s.Type, s.Body)
	<-n.sem
	a.Manual = true
	w.logAttempt(num, s.EventID, s.Type, s.Body, a, 0)
	w.flush()
	var out stored
	_ = n.store.AuxScan(key, prefixEnd(key), 1, func(_, v []byte) error { return jsonv2.Unmarshal(v, &out) })
	return out.Delivery, nil
}

func parseDeliveryID(s string) (uint64, bool) {
	rest, ok := bytes.CutPrefix([]byte(s), []byte("dlv_"))
	if !ok || len(rest) == 0 || len(rest) > 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(rest), 10, 64)
	return v, err == nil
}

func (n *Notifier) worker(id string) (*endpointWorker, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w, ok := n.workers[id]
	return w, ok
}

// Backlog returns how many outbox positions an endpoint has not passed
// yet (records of kinds it does not take included), or -1 when unknown.
func (n *Notifier) Backlog(id string) int64 {
	w, ok := n.worker(id)
	if !ok {
		return -1
	}
	n.mu.Lock()
	head := n.head
	n.mu.Unlock()
	return int64(head - min(head, w.cursor.Load()))
}
