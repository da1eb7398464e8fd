package fleet

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/notify"
	"github.com/onsale/onsale/wal"
)

// Outbox is notify.Store on a fleet node: the partition's entries read
// back from its journal, and the notifier's own keys (the outbox records,
// the per-shard and per-endpoint cursors, the delivery logs) in the
// partition's JetStream key-value bucket onsale_outbox_p<N> instead of
// Pebble, so that the node that takes the partition over resumes where
// the last owner's notifier was: a cursor is stored (by a quorum) after
// the delivery it counts, so an event is sent at least once across the
// fleet, again only if its owner died between the delivery and the
// cursor's write, with the same id.
//
// JetStream writes one key at a time, so a batch (AuxWrite) is written in
// three steps, each waiting for the acknowledgements of the one before:
// the data, then the cursors (notify.IsCursor), then the deletions; a
// crash part way leaves a cursor that points at stored records only. Only
// the partition's owner writes the bucket, and it keeps every key in
// memory too (read once when it opens the bucket), so scans cost no
// round trip.
type Outbox struct {
	journal Tailer
	valid   func() bool
	js      natsjs.JetStream
	kv      natsjs.KeyValue
	subject string // "$KV.<bucket>."
	timeout time.Duration

	mu        sync.Mutex // guards the fields below
	keys      []string   // sorted
	vals      map[string][]byte
	compacted time.Time // the last purge of deletion markers
	compactOn bool      // one is under way
}

// Tailer is the partition's journal as the notifier reads it: Tail is
// wal/jetstream's tailing read, which starts where the last read stopped
// and does not hold up the shard's appends (Replay, recovery's read, reads
// the stream from its start under the shard's lock).
type Tailer interface {
	Tail(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error
}

// compactEvery: deleting a key leaves a marker in the bucket (a message
// on its subject), one per delivered record; markers older than
// JetStream's default (30 min) are purged this often.
const compactEvery = time.Hour

// OpenOutbox opens (or creates) partition p's outbox bucket and reads it.
// valid says whether this node still holds p's lease (Fleet.Valid): once
// it does not, every write is refused, so that an owner paused past its
// lease does not write over its successor's cursors when it resumes.
func OpenOutbox(ctx context.Context, nc *nats.Conn, p, replicas int, valid func() bool, journal Tailer) (*Outbox, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	name := "onsale_outbox_p" + strconv.Itoa(p)
	kv, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
		Bucket: name, Replicas: replicas, Storage: natsjs.FileStorage, History: 1,
		Description: "onsale notifications of one partition (httpapi/notify's keys, hex)",
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot open the outbox bucket: %w", err)
	}
	o := &Outbox{journal: journal, valid: valid, js: js, kv: kv, compacted: time.Now(), subject: "$KV." + name + ".", timeout: 10 * time.Second, vals: map[string][]byte{}}
	w, err := kv.WatchAll(ctx, natsjs.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot read the outbox bucket: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // every stored key is in
				for k := range o.vals {
					o.keys = append(o.keys, k)
				}
				slices.Sort(o.keys)
				return o, nil
			}
			k, err := hex.DecodeString(e.Key())
			if err != nil {
				continue
			}
			o.vals[string(k)] = e.Value()
		}
	}
}

// Replay implements notify.Store: the partition's journal's acknowledged
// entries after afterSeq, by its tailing read.
func (o *Outbox) Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error {
	return o.journal.Tail(shard, afterSeq, fn)
}

// AuxScan implements notify.Store.
func (o *Outbox) AuxScan(from, to []byte, limit int, fn func(key, value []byte) error) error {
	o.mu.Lock()
	i, _ := slices.BinarySearch(o.keys, string(from))
	var ks []string
	var vs [][]byte
	for ; i < len(o.keys) && (to == nil || o.keys[i] < string(to)) && (limit == 0 || len(ks) < limit); i++ {
		ks = append(ks, o.keys[i])
		vs = append(vs, o.vals[o.keys[i]])
	}
	o.mu.Unlock()
	for i := range ks {
		if err := fn([]byte(ks[i]), vs[i]); err != nil {
			return err
		}
	}
	return nil
}

// AuxWrite implements notify.Store: every write is acknowledged by a
// quorum, so sync changes nothing.
func (o *Outbox) AuxWrite(ops []wal.AuxOp, _ bool) error {
	if !o.valid() {
		return errors.New("fleet: this node no longer holds its partition's lease; the outbox is its successor's")
	}
	var data, cursors, dels []wal.AuxOp
	o.mu.Lock()
	for _, op := range ops {
		switch {
		case op.End != nil: // a range: the keys in it now
			i, _ := slices.BinarySearch(o.keys, string(op.Key))
			for ; i < len(o.keys) && o.keys[i] < string(op.End); i++ {
				dels = append(dels, wal.AuxOp{Key: []byte(o.keys[i])})
			}
		case op.Value == nil:
			dels = append(dels, op)
		case notify.IsCursor(op.Key):
			cursors = append(cursors, op)
		default:
			data = append(data, op)
		}
	}
	o.mu.Unlock()
	for _, step := range [][]wal.AuxOp{data, cursors, dels} {
		if err := o.publish(step); err != nil {
			return err
		}
		o.apply(step)
	}
	if len(dels) > 0 {
		o.compact()
	}
	return nil
}

// compact purges old deletion markers, at most every compactEvery, on a
// goroutine of its own.
func (o *Outbox) compact() {
	o.mu.Lock()
	due := !o.compactOn && time.Since(o.compacted) >= compactEvery
	if due {
		o.compactOn = true
	}
	o.mu.Unlock()
	if !due {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_ = o.kv.PurgeDeletes(ctx) // a failure is tried again at the next due time
		o.mu.Lock()
		o.compactOn, o.compacted = false, time.Now()
		o.mu.Unlock()
	}()
}

// publish writes ops and waits until each is acknowledged, at most
// publishWindow in flight.
func (o *Outbox) publish(ops []wal.AuxOp) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	for len(ops) > 0 {
		n := min(len(ops), publishWindow)
		futures := make([]natsjs.PubAckFuture, 0, n)
		for _, op := range ops[:n] {
			m := nats.NewMsg(o.subject + hex.EncodeToString(op.Key))
			if op.Value == nil {
				m.Header.Set("KV-Operation", "DEL")
			} else {
				m.Data = op.Value
			}
			f, err := o.js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("fleet: cannot write the outbox: %w", err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("fleet: cannot write the outbox: %w", err)
			case <-ctx.Done():
				return errors.New("fleet: the outbox's writes were not acknowledged in time")
			}
		}
		ops = ops[n:]
	}
	return nil
}

const publishWindow = 1024

// apply brings the memory copy to what was written.
func (o *Outbox) apply(ops []wal.AuxOp) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, op := range ops {
		k := string(op.Key)
		i, found := slices.BinarySearch(o.keys, k)
		switch {
		case op.Value == nil && found:
			o.keys = slices.Delete(o.keys, i, i+1)
			delete(o.vals, k)
		case op.Value != nil:
			if !found {
				o.keys = slices.Insert(o.keys, i, k)
			}
			o.vals[k] = bytes.Clone(op.Value)
		}
	}
}

// Webhooks shares the webhook endpoints, which live in partition 0's log
// (the home partition serves /v1/admin/webhooks), with the owners of the
// other partitions: partition 0's owner writes the list to the key
// "webhooks" of the bucket onsale_fleet each time its notifier reads it
// (at start and after every change in the log); the others read the list
// from there and are told when it changes (Watch). The secrets stay sealed
// (every node has the same data key).
type Webhooks struct {
	kv      natsjs.KeyValue
	timeout time.Duration
}

const webhooksKey = "webhooks"

// OpenWebhooks opens (or creates) the bucket.
func OpenWebhooks(ctx context.Context, nc *nats.Conn, replicas int) (*Webhooks, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
		Bucket: "onsale_fleet", Replicas: replicas, Storage: natsjs.FileStorage, History: 1,
		Description: "onsale state every node reads: the webhook endpoints of partition 0",
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot open the onsale_fleet bucket: %w", err)
	}
	return &Webhooks{kv: kv, timeout: 10 * time.Second}, nil
}

// Publish wraps the home partition's list (the engine's Webhooks): what
// it returns is also written to the bucket.
func (w *Webhooks) Publish(list func(context.Context) ([]engine.Webhook, error)) func(context.Context) ([]engine.Webhook, error) {
	return func(ctx context.Context) ([]engine.Webhook, error) {
		hooks, err := list(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(hooks)
		if err != nil {
			return nil, err
		}
		if _, err := w.kv.Put(ctx, webhooksKey, b); err != nil {
			return nil, fmt.Errorf("fleet: cannot share the webhook endpoints: %w", err)
		}
		return hooks, nil
	}
}

// List is the endpoints as partition 0's owner last wrote them; none
// before it ever did.
func (w *Webhooks) List(ctx context.Context) ([]engine.Webhook, error) {
	e, err := w.kv.Get(ctx, webhooksKey)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot read the webhook endpoints: %w", err)
	}
	var hooks []engine.Webhook
	if err := json.Unmarshal(e.Value(), &hooks); err != nil {
		return nil, fmt.Errorf("fleet: bad webhook endpoints in the bucket: %w", err)
	}
	return hooks, nil
}

// Watch calls changed each time the list changes, until ctx ends.
func (w *Webhooks) Watch(ctx context.Context, changed func()) error {
	wt, err := w.kv.Watch(ctx, webhooksKey, natsjs.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("fleet: cannot watch the webhook endpoints: %w", err)
	}
	go func() {
		defer wt.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-wt.Updates():
				if !ok {
					return
				}
				if e != nil {
					changed()
				}
			}
		}
	}()
	return nil
}
