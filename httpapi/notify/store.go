package notify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"

	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/wal"
)

// Store is what the notifier needs of the log: its shards' entries, read
// back, and the aux keyspace for its own progress. *wal.Log satisfies it.
type Store interface {
	Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error
	AuxWrite(ops []wal.AuxOp, sync bool) error
	AuxScan(from, to []byte, limit int, fn func(key, value []byte) error) error
}

// Keys in the aux keyspace (integers big-endian, so key order is number
// order):
//
//	"nc" shard(2)            → seq(8)      entries of the shard read into the outbox
//	"no" pos(8)              → record       the outbox, by position
//	"ne" endpoint            → pos(8)       the endpoint's next position to deliver
//	"nm"                     → pos(8)       the email sender's next position
//	"nd" endpoint 0 pos(8)   → delivery     the endpoint's delivery log
//	"nw" sale                → opensAt(8)   an announced sale not open yet (onsale.go)
//	"nf" event id            → user | 0xff  the last follower mailed an event.on_sale, or all done
var (
	keyConsumed  = []byte("nc")
	keyOutbox    = []byte("no")
	keyEndpoint  = []byte("ne")
	keyEmail     = []byte("nm")
	keyDelivered = []byte("nd")
	keySynced    = []byte("ns") // written with a sync by BeforeTruncate
)

// IsCursor reports whether an aux key is a consumer's position rather than
// data a position points at. A store that cannot write a batch at once
// (httpapi/fleet's, on JetStream) writes the data first, then the
// cursors, then the deletions, so that a cursor never points past a record
// that was not stored and no record goes before the cursor that passed it.
func IsCursor(key []byte) bool {
	for _, p := range [][]byte{keyConsumed, keyEndpoint, keyEmail, keySynced, keyFollowed} {
		if bytes.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func consumedKey(shard int) []byte {
	return binary.BigEndian.AppendUint16(clone(keyConsumed), uint16(shard))
}
func outboxKey(pos uint64) []byte  { return binary.BigEndian.AppendUint64(clone(keyOutbox), pos) }
func endpointKey(id string) []byte { return append(clone(keyEndpoint), id...) }

func deliveryPrefix(id string) []byte { return append(append(clone(keyDelivered), id...), 0) }
func deliveryKey(id string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(deliveryPrefix(id), pos)
}

// prefixEnd is the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// record is one outbox entry: the body every endpoint receives, and what
// the email sender needs.
type record struct {
	Kind    string          `json:"k"`
	EventID string          `json:"i"`
	UserID  string          `json:"u,omitempty"`
	OrderID string          `json:"o,omitempty"`
	Body    json.RawMessage `json:"b"` // the JSON delivered (Payload), kept as is
}

func (r *record) encode() []byte {
	b, err := jsonv2.Marshal(r)
	if err != nil {
		panic(err) // strings and bytes always encode
	}
	return b
}

func decodeRecord(b []byte) (record, error) {
	var r record
	err := jsonv2.Unmarshal(b, &r)
	return r, err
}
