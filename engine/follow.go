package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Follower is a hot standby's copy of a log that another process writes:
// each shard restored from its newest snapshot, then kept at the log's end
// by the entries the caller reads from it as they are written (the fleet's
// wal/jetstream Follow) and hands to Apply. It decides nothing and answers
// nothing; it only applies, with the functions recovery uses (restoreShard,
// the codec, apply in replay mode, endShard), so that Promote, which
// reads the entries written after the last one applied and starts the
// shards, gives exactly the state Open would have recovered, in the time
// of those last entries, the indexes of the orders that arrived since the
// last settle, and the recount unless Settle ran after the last entry.
//
// A follower that fell behind a snapshot (the entries after its last one
// were deleted) must Reload; if it is promoted behind one, the journal's
// Replay reports the gap (wal/jetstream keeps a snapshot's own entry in
// the log for that, ErrBehind) and the shard is recovered cold.
//
// Memory: about what the owner holds for the same sales (the state
// itself), plus the decoder's interned user ids, bounded.
//
// Threading: Apply, Settle, Reload and Seq for shard i are called from one
// goroutine at a time (shards concurrently); Promote once, after every
// other call has returned, and nothing after it.
type Follower struct {
	cfg    Config
	shards []*followedShard

	settleOrders int32 // followSettleOrders; tests lower it
	replayed     int   // events the promotion replayed
}

// followedShard is one shard's state while it follows.
type followedShard struct {
	st       *state
	seq      uint64 // the last entry applied
	restored int32  // orders indexed already: endReplay indexes the ones after (settle)
	events   int    // applied since the snapshot
	checked  bool   // recounted (Settle) since the last entry applied
	users    map[string]string
	err      error // an entry did not apply: Promote recovers the shard cold
}

const (
	// followSettleOrders: a followed shard builds the indexes that replay
	// leaves to its end once this many orders arrived since it last did,
	// so that a takeover indexes at most that many.
	followSettleOrders = 1 << 16
	// followUsersMax bounds the decoder's interned user ids.
	followUsersMax = 1 << 16
)

// ErrNothingToFollow: the log has no layout yet (nothing was ever written);
// follow again later.
var ErrNothingToFollow = errors.New("engine: the log is empty: nothing to follow yet")

// ErrOtherLayout: the log was written with another shard count than the
// follower's; its takeover repartitions (Open), which a follower cannot.
var ErrOtherLayout = errors.New("engine: the log has another shard count: a takeover repartitions, it cannot follow")

// NewFollower restores every shard of cfg.Journal from its newest snapshot, in
// parallel, for a standby. The log must have been written with cfg.Shards
// shards: a takeover with another count repartitions, which Open does.
func NewFollower(cfg Config) (*Follower, error) {
	if cfg.Journal == nil {
		return nil, errors.New("engine: Config.Journal is required")
	}
	cfg.setDefaults()
	if err := checkFollowedLayout(cfg); err != nil {
		return nil, err
	}
	f := &Follower{cfg: cfg, shards: make([]*followedShard, cfg.Shards), settleOrders: followSettleOrders}
	errs := make([]error, cfg.Shards)
	var wg sync.WaitGroup
	for i := range f.shards {
		wg.Go(func() { f.shards[i], errs[i] = loadFollowed(cfg.Journal, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

func checkFollowedLayout(cfg Config) error {
	stored, err := cfg.Journal.Layout()
	switch {
	case err != nil:
		return fmt.Errorf("engine: cannot read log layout: %w", err)
	case stored == 0:
		return ErrNothingToFollow
	case stored != cfg.Shards:
		return fmt.Errorf("%w (%d shards; this node runs %d)", ErrOtherLayout, stored, cfg.Shards)
	}
	return nil
}

func loadFollowed(j Journal, shard int) (*followedShard, error) {
	st, seq, err := restoreShard(j, shard)
	if err != nil {
		return nil, fmt.Errorf("engine: cannot follow shard %d: %w", shard, err)
	}
	st.replaying = true
	return &followedShard{st: st, seq: seq, restored: st.orders.n, users: map[string]string{}}, nil
}

// Seq is the last entry of the shard that the follower holds: follow the
// log after it.
func (f *Follower) Seq(shard int) uint64 { return f.shards[shard].seq }

// Orders is how many orders the shard holds; call it from the goroutine
// that applies the shard's entries.
func (f *Follower) Orders(shard int) int { return int(f.shards[shard].st.orders.n) }

// Apply applies entry seq of the shard. An entry at or before Seq is
// already held and ignored; one after Seq+1 is an error (the caller
// skipped one). An entry that does not decode or apply is an error that
// stays: the shard's state is then recovered cold at Promote.
func (f *Follower) Apply(shard int, seq uint64, entry []byte) error {
	fs := f.shards[shard]
	switch {
	case fs.err != nil:
		return fs.err
	case seq <= fs.seq:
		return nil
	case seq != fs.seq+1:
		return fmt.Errorf("engine: shard %d follows entry %d with %d", shard, fs.seq, seq)
	}
	if err := fs.apply(f.cfg.Journal, seq, entry, f.settleOrders); err != nil {
		fs.err = fmt.Errorf("engine: shard %d entry %d: %w", shard, seq, err)
		return fs.err
	}
	fs.seq, fs.checked = seq, false
	return nil
}

// Settle builds the indexes that applying leaves to the end of a replay
// and recounts the shard (checkState), as recovery does once it has
// replayed: a promotion that then replays nothing more need not recount.
// The recount reads every order of the shard: call it when the log is
// quiet (the caller has read all there is), not after every entry.
func (f *Follower) Settle(shard int) error {
	fs := f.shards[shard]
	if fs.err != nil || fs.checked {
		return fs.err
	}
	if err := endShard(fs.st, fs.restored, true); err != nil {
		fs.err = fmt.Errorf("engine: shard %d: %w", shard, err)
		return fs.err
	}
	fs.st.replaying, fs.restored, fs.checked = true, fs.st.orders.n, true
	return nil
}

// apply is replay's loop body (recover.go) for one entry, then the settle.
func (fs *followedShard) apply(j Journal, seq uint64, entry []byte, settleOrders int32) (err error) {
	defer recoverInvariant(&err)
	st := fs.st
	if len(fs.users) > followUsersMax {
		clear(fs.users)
	}
	err = decodeEntryInterned(entry, fs.users, func(ev *event) error {
		if ev.kind == evSaleUnarchived {
			if err := stageUnarchive(j, st, ev); err != nil { // archive_store.go
				return err
			}
		}
		fs.events++
		return st.apply(ev)
	})
	if err != nil {
		return err
	}
	if st.rebuilt { // an archive or unarchive renumbered the orders (archive.go)
		fs.restored, st.rebuilt, st.reshaped = 0, false, false
	}
	if st.orders.n-fs.restored >= settleOrders {
		if err := st.endReplay(fs.restored); err != nil {
			return err
		}
		st.replaying, fs.restored = true, st.orders.n
	}
	return nil
}

// Reload restores the shard from its newest snapshot again: the caller fell
// behind it (the entries after Seq were deleted behind it). It clears an
// error of Apply.
func (f *Follower) Reload(shard int) error {
	if err := checkFollowedLayout(f.cfg); err != nil {
		return err
	}
	fs, err := loadFollowed(f.cfg.Journal, shard)
	if err != nil {
		return err
	}
	f.shards[shard] = fs
	return nil
}

// promote is finishShard, with the recount left out when the shard was
// recounted (Settle) and nothing more was replayed.
func (fs *followedShard) promote(j Journal, shard int) (_ *state, _ uint64, _ int, err error) {
	defer recoverInvariant(&err)
	seq, events, err := replay(j, shard, fs.st, fs.seq)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := endShard(fs.st, fs.restored, !fs.checked || events > 0); err != nil {
		return nil, 0, 0, err
	}
	return fs.st, seq, events, nil
}

// Replayed is how many events Promote replayed: those of the entries
// written after the last one Apply took (and of a shard recovered cold).
func (f *Follower) Replayed() int { return f.replayed }

// Promote turns the follower into the Engine that writes the log: for each
// shard, in parallel, it replays the entries after the last one applied
// (the journal's Replay, which first fences any other writer), recounts
// and indexes, as Open does after its snapshot; a shard whose following
// failed is recovered cold, as Open would. Then it starts the shards.
func (f *Follower) Promote() (*Engine, error) {
	began := time.Now()
	j, shards := f.cfg.Journal, len(f.shards)
	states := make([]*state, shards)
	seqs := make([]uint64, shards)
	events := make([]int, shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for i, fs := range f.shards {
		wg.Go(func() {
			if fs.err == nil {
				states[i], seqs[i], events[i], errs[i] = fs.promote(j, i)
				if errs[i] == nil {
					return
				}
				fs.err = errs[i]
			}
			f.cfg.Logger.Warn("standby: recovering a shard cold", "shard", i, "err", fs.err)
			states[i], seqs[i], events[i], errs[i] = recoverShard(j, i, true)
		})
	}
	wg.Wait()
	f.shards = nil
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("engine: cannot recover shard %d: %w", i, err)
		}
	}
	var sales, orders, replayed int
	for i, st := range states {
		sales += len(st.sales)
		orders += int(st.orders.n)
		replayed += events[i]
	}
	f.replayed = replayed
	f.cfg.Logger.Info("state recovered", "shards", shards, "sales", sales, "orders", orders,
		"events_replayed", replayed, "standby", true, "duration", time.Since(began))
	return start(f.cfg, states, seqs), nil
}
