package fleet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi"
	"github.com/onsale/onsale/wal/jetstream"
)

// A fleet restored on one node (onsale restore-fleet, main.go): every
// partition's log is read from JetStream and the sales of all of them
// are written to one single-node log, with the accounts.
//
// The engine does the work: it is opened on a journal (merged) that shows
// the partitions' shards side by side, partition 0's first, so that the
// log's layout is the sum of the partitions' shard counts. Recovery
// rebuilds each of those shards from its snapshot and entries, then,
// the layout differing from the shard count asked for, repartitions
// every sale to its shard (and the home partition's system shard state,
// the webhook endpoints, credentials and follows, with every partition's
// audit entries) and resets the log to one snapshot per shard: Reset, and
// everything after it, goes to the single-node log. Nothing is written to
// JetStream but the fence that opening a shard's stream publishes, which
// deposes a running owner: so Restore refuses while any partition is
// leased, and is meant for a copy (streams restored from `nats stream
// backup` into a JetStream of the restorer's) or a stopped fleet.

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Conn       *nats.Conn // required: the JetStream holding the fleet's streams
	Partitions int        // the fleet's -fleet-partitions (required)
	Replicas   int        // -nats-replicas of the streams' object stores [3]
	// Target is the empty single-node log the sales are written to, with
	// Shards shards; Users receives the accounts.
	Target engine.Journal
	Shards int
	Users  httpapi.UserStore
	// Engine is the rest of the engine's configuration (QueueSeedKey,
	// Logger); Journal and Shards are Restore's.
	Engine engine.Config
	Logger *slog.Logger // [slog.Default()]
}

// RestoreSummary is what Restore wrote.
type RestoreSummary struct {
	PartitionShards []int // each partition's shard count in its log
	Accounts        int
}

// Restore writes every partition's sales into o.Target, and the accounts
// into o.Users. The engine it opens on o.Target is closed when it returns;
// if o.Shards is the sum of the partitions' shard counts, the layout is
// written with one shard more (the merge must repartition) and the next
// open of o.Target, asked for o.Shards, repartitions it again.
func Restore(ctx context.Context, o RestoreOptions) (RestoreSummary, error) {
	var sum RestoreSummary
	if o.Conn == nil || o.Target == nil || o.Users == nil || o.Partitions < 1 || o.Shards < 1 {
		return sum, errors.New("fleet: RestoreOptions.Conn, Target, Users, Partitions and Shards are required")
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	js, err := natsjs.New(o.Conn)
	if err != nil {
		return sum, fmt.Errorf("fleet: %w", err)
	}
	if err := refuseLeased(ctx, js); err != nil {
		return sum, err
	}
	m := &merged{target: o.Target}
	for p := range o.Partitions {
		j, err := jetstream.Open(ctx, jetstream.Options{Conn: o.Conn, Name: fmt.Sprintf("onsale_p%d", p), Replicas: o.Replicas})
		if err != nil {
			return sum, fmt.Errorf("fleet: partition %d: %w", p, err)
		}
		n, err := j.Layout()
		if err != nil {
			return sum, fmt.Errorf("fleet: partition %d: %w", p, err)
		}
		sum.PartitionShards = append(sum.PartitionShards, n)
		for s := range n {
			m.parts = append(m.parts, part{j: j, shard: s})
		}
	}
	if len(m.parts) == 0 {
		return sum, errors.New("fleet: no partition has a log here: are the streams onsale_p<N>_<shard> and OBJ_onsale_p<N>_snap restored into this JetStream?")
	}
	cfg := o.Engine
	cfg.Journal, cfg.Shards, cfg.Logger = m, o.Shards, o.Logger
	if cfg.Shards == len(m.parts) {
		cfg.Shards++ // the same count would keep each partition's shards as they are, not merge them
	}
	cfg.Outbox = nil
	eng, err := engine.Open(cfg)
	if err != nil {
		return sum, err
	}
	eng.Close()
	if !m.reset {
		return sum, errors.New("fleet: the engine did not repartition the partitions' shards")
	}
	if sum.Accounts, err = copyUsers(ctx, js, o.Users); err != nil {
		return sum, err
	}
	return sum, nil
}

// refuseLeased fails while a partition has an owner: opening its shards
// would fence it.
func refuseLeased(ctx context.Context, js natsjs.JetStream) error {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, natsjs.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet: cannot read the leases: %w", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("fleet: cannot read the leases: %w", err)
	}
	var held []string
	for k := range keys.Keys() {
		held = append(held, k)
	}
	if len(held) > 0 {
		return fmt.Errorf("fleet: partitions %s are leased: the fleet is running, and reading a partition's log would depose its owner; "+
			"restore from a copy of its streams, or stop every node and wait a lease", strings.Join(held, ", "))
	}
	return nil
}

// copyUsers copies every account of the bucket onsale_users.
func copyUsers(ctx context.Context, js natsjs.JetStream, to httpapi.UserStore) (int, error) {
	kv, err := js.KeyValue(ctx, "onsale_users")
	if errors.Is(err, natsjs.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fleet: cannot open the accounts: %w", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("fleet: cannot list the accounts: %w", err)
	}
	n := 0
	for k := range keys.Keys() {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, "k"))
		if err != nil || !strings.HasPrefix(k, "k") {
			return n, fmt.Errorf("fleet: account key %q is not one onsale wrote", k)
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, natsjs.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("fleet: cannot read an account: %w", err)
		}
		if err := to.Put(string(raw), e.Value()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// merged is an engine.Journal reading the partitions' shards side by side
// until Reset, and the single-node log from then on.
type merged struct {
	parts  []part
	target engine.Journal
	reset  bool // set by Reset, on the engine's opening goroutine, before any Append
}

type part struct {
	j     *jetstream.Journal
	shard int
}

func (m *merged) Layout() (int, error) {
	if m.reset {
		return m.target.Layout()
	}
	return len(m.parts), nil
}

func (m *merged) LoadSnapshot(shard int, fn func(chunk []byte) error) (uint64, bool, error) {
	if m.reset {
		return m.target.LoadSnapshot(shard, fn)
	}
	return m.parts[shard].j.LoadSnapshot(m.parts[shard].shard, fn)
}

func (m *merged) Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error {
	if m.reset {
		return m.target.Replay(shard, afterSeq, fn)
	}
	return m.parts[shard].j.Replay(m.parts[shard].shard, afterSeq, fn)
}

func (m *merged) Reset(snapshots [][][]byte) error {
	if err := m.target.Reset(snapshots); err != nil {
		return err
	}
	m.reset = true
	return nil
}

func (m *merged) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	if !m.reset {
		return nil, errors.New("fleet: an append before the merged log was written")
	}
	return m.target.Append(shard, firstSeq, entries)
}

func (m *merged) SaveSnapshot(shard int, seq uint64, chunks [][]byte) error {
	if !m.reset {
		return errors.New("fleet: a snapshot before the merged log was written")
	}
	return m.target.SaveSnapshot(shard, seq, chunks)
}
