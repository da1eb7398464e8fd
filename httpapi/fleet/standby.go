package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal/jetstream"
)

// StandbyOptions configure a Standby.
type StandbyOptions struct {
	// Partitions are the partitions followed.
	Partitions []int
	// Journal opens partition p's journal; the one a Standby followed is
	// the one its takeover writes with.
	Journal func(p int) (*jetstream.Journal, error)
	// Config is the engine's configuration for a partition's journal, as
	// engine.Open would get it.
	Config func(j engine.Journal) engine.Config
	Logger *slog.Logger
	// Retry is the wait before following again after a failure [1s].
	Retry time.Duration
	// SettleEvery: a followed shard that has read all there is recounts
	// its state (engine.Follower.Settle) at most this often, so that a
	// takeover after a quiet moment does not [10s].
	SettleEvery time.Duration
}

// Standby is a hot standby: while the node waits for a lease it keeps the
// state of the partitions it follows (engine.Follower), each shard's
// stream read as it is written (jetstream's Follow), so that taking one
// over replays only the last entries (Promote).
//
// Threading: one goroutine per followed partition loads it (NewFollower)
// and runs one goroutine per shard, which alone calls the Follower for that
// shard. Promote stops them all before it touches a Follower.
type Standby struct {
	o      StandbyOptions
	ctx    context.Context
	stop   context.CancelFunc
	ended  sync.WaitGroup
	mu     sync.Mutex
	follow map[int]*followedPartition
}

// followedPartition is one partition while it is followed.
type followedPartition struct {
	p       int
	journal *jetstream.Journal
	// follower is set once the snapshots are loaded, by the partition's
	// goroutine; read after the goroutines have ended.
	follower *engine.Follower
	shards   int
	caughtUp atomic.Int32 // shards whose stream was read to where it was at the start
}

// StartStandby starts following o.Partitions.
func StartStandby(o StandbyOptions) *Standby {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.SettleEvery <= 0 {
		o.SettleEvery = 10 * time.Second
	}
	s := &Standby{o: o, follow: map[int]*followedPartition{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	for _, p := range o.Partitions {
		fp := &followedPartition{p: p}
		s.follow[p] = fp
		s.ended.Go(func() { s.run(fp) })
	}
	return s
}

// run loads the partition's state and follows its shards until the
// standby stops; a failure is logged and the partition followed again.
func (s *Standby) run(fp *followedPartition) {
	for s.ctx.Err() == nil {
		err := s.followPartition(fp)
		if err == nil || s.ctx.Err() != nil {
			return
		}
		if errors.Is(err, engine.ErrOtherLayout) {
			s.o.Logger.Warn("fleet: standby: not following the partition; its takeover will recover it cold", "partition", fp.p, "err", err)
			return
		}
		if errors.Is(err, engine.ErrNothingToFollow) {
			s.o.Logger.Debug("fleet: standby: nothing to follow yet", "partition", fp.p)
		} else {
			s.o.Logger.Warn("fleet: standby: cannot follow the partition; trying again", "partition", fp.p, "err", err)
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(s.o.Retry):
		}
	}
}

func (s *Standby) followPartition(fp *followedPartition) error {
	if fp.journal == nil {
		j, err := s.o.Journal(fp.p)
		if err != nil {
			return err
		}
		fp.journal = j
	}
	began := time.Now()
	f, err := engine.NewFollower(s.o.Config(fp.journal))
	if err != nil {
		return err
	}
	cfg := s.o.Config(fp.journal)
	s.mu.Lock()
	fp.follower, fp.shards = f, cfg.Shards
	s.mu.Unlock()
	orders := 0
	for i := range cfg.Shards {
		orders += f.Orders(i)
	}
	s.o.Logger.Info("fleet: standby: snapshots loaded", "partition", fp.p, "orders", orders,
		"duration", time.Since(began))
	var wg sync.WaitGroup
	for i := range cfg.Shards {
		wg.Go(func() { s.followShard(fp, f, i, began) })
	}
	wg.Wait()
	return nil
}

// followShard follows one shard until the standby stops; a shard that
// falls behind a snapshot reloads it. One whose entry does not apply stops
// following: its takeover recovers it cold (Follower.Promote).
func (s *Standby) followShard(fp *followedPartition, f *engine.Follower, shard int, began time.Time) {
	caught := false
	var settled time.Time
	atEnd := func() {
		// Quiet: index and recount now, so that a takeover need not (at
		// most every SettleEvery: a recount reads every order).
		if time.Since(settled) >= s.o.SettleEvery {
			if err := f.Settle(shard); err != nil {
				s.o.Logger.Error("fleet: standby: the state does not recount; the takeover will recover the shard cold",
					"partition", fp.p, "shard", shard, "err", err)
			}
			settled = time.Now()
		}
		if caught {
			return
		}
		caught = true
		if int(fp.caughtUp.Add(1)) == fp.shards {
			s.o.Logger.Info("fleet: standby: following", "partition", fp.p, "caught_up_after", time.Since(began))
		}
	}
	for {
		var applyErr error
		err := fp.journal.Follow(s.ctx, shard, f.Seq(shard), func(seq uint64, entry []byte) error {
			applyErr = f.Apply(shard, seq, entry)
			return applyErr
		}, atEnd)
		switch {
		case s.ctx.Err() != nil:
			return
		case applyErr != nil:
			s.o.Logger.Error("fleet: standby: an entry did not apply; the takeover will recover the shard cold",
				"partition", fp.p, "shard", shard, "err", applyErr)
			return
		case errors.Is(err, jetstream.ErrBehind):
			s.o.Logger.Info("fleet: standby: behind a snapshot; loading it", "partition", fp.p, "shard", shard)
			if err := f.Reload(shard); err != nil {
				s.o.Logger.Error("fleet: standby: cannot reload the snapshot; the takeover will recover cold",
					"partition", fp.p, "shard", shard, "err", err)
				return
			}
		default:
			s.o.Logger.Warn("fleet: standby: following a shard failed; trying again", "partition", fp.p, "shard", shard, "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.o.Retry):
			}
		}
	}
}

// Stop stops following every partition. A partition whose snapshots are
// loading finishes loading first.
func (s *Standby) Stop() {
	s.stop()
	s.ended.Wait()
}

// Journal stops following (Stop) and returns the journal that followed
// partition p, nil if none did: the one the takeover writes with.
func (s *Standby) Journal(p int) *jetstream.Journal {
	s.Stop()
	if fp := s.follow[p]; fp != nil {
		return fp.journal
	}
	return nil
}

// Promote stops following and returns the engine of partition p promoted
// from the state followed: its last entries replayed, the rest already
// held. eng is nil when p was not followed or its snapshots were not
// loaded yet: open its journal cold then. The other partitions' states
// are dropped.
func (s *Standby) Promote(p int) (eng *engine.Engine, err error) {
	s.Stop()
	fp := s.follow[p]
	s.follow = nil
	if fp == nil || fp.follower == nil {
		return nil, nil
	}
	if eng, err = fp.follower.Promote(); err != nil {
		return nil, fmt.Errorf("fleet: cannot take partition %d over: %w", p, err)
	}
	return eng, nil
}
