package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// followPos is where Follow left a shard's stream: the last entry it
// counted, that entry's stream sequence, and the writer whose entries
// counted there.
type followPos struct {
	seq    uint64
	stream uint64
	writer string
}

// followTrimEvery is how many counted entries Follow reads between two
// looks at the stream's first sequence, below which it forgets positions.
const followTrimEvery = 4096

// Follow reads the shard's stream as it is written, for a hot standby
// (engine.Follower): fn gets every entry after afterSeq that counts, as
// Replay counts them (reader), in order, as soon as the stream has stored
// it, until ctx ends (ctx.Err()) or fn fails (its error). It writes
// nothing, so the owner goes on appending (no fence), and takes no lock
// an Append waits for.
//
// It reads the stream from its start: ErrBehind if the stream was purged
// past afterSeq already, or is purged past what Follow has read while it
// reads (a standby that fell behind the owner's snapshots): load the
// newest snapshot and follow again from its seq.
//
// The positions it counts are remembered as Replay's are: so Tail and
// SaveSnapshot know them once this journal writes, and the Replay of a
// takeover called with the last entry fn took starts right after it.
// atEnd, if not nil, runs (on Follow's goroutine) whenever Follow has read
// every message stored so far: once at the start if the stream is empty,
// then after each message that leaves none pending. Call Follow for a
// shard from one goroutine at a time, and not once the journal writes.
func (j *Journal) Follow(ctx context.Context, shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error, atEnd func()) error {
	s := j.shard(shard)
	stream, err := j.followedStream(ctx, s)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("jetstream: following stream %s: %w", s.stream, err)
	}
	if atEnd != nil && info.State.Msgs == 0 {
		atEnd()
	}
	cons, err := stream.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("jetstream: following stream %s: %w", s.stream, err)
	}
	it, err := cons.Messages(natsjs.PullMaxMessages(4096), natsjs.PullHeartbeat(readHeartbeat))
	if err != nil {
		return fmt.Errorf("jetstream: following stream %s: %w", s.stream, err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	r := reader{next: afterSeq + 1}
	for n := 1; ; {
		m, err := it.Next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("jetstream: following stream %s: %w", s.stream, err)
		}
		seq, ss, counts, err := r.read(s.stream, m)
		if err != nil {
			return err
		}
		var pending uint64 = 1
		if meta, err := m.Metadata(); err == nil {
			pending = meta.NumPending
		}
		if counts {
			if err := fn(seq, m.Data()); err != nil {
				return err
			}
			s.pos.Lock()
			s.streams[seq] = ss
			s.acked = seq
			s.followed = followPos{seq: seq, stream: ss, writer: r.writer}
			s.pos.Unlock()
			if n++; n%followTrimEvery == 0 {
				j.forgetPurged(ctx, stream, s)
			}
		}
		if atEnd != nil && pending == 0 {
			atEnd()
		}
	}
}

// followedStream waits for the shard's stream to exist: a standby may
// start before the owner has written.
func (j *Journal) followedStream(ctx context.Context, s *shardLog) (natsjs.Stream, error) {
	for {
		stream, err := j.js.Stream(ctx, s.stream)
		if err == nil {
			return stream, nil
		}
		if !errors.Is(err, natsjs.ErrStreamNotFound) {
			return nil, fmt.Errorf("jetstream: following stream %s: %w", s.stream, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// forgetPurged drops the positions of entries the owner purged behind its
// snapshots, so that a standby's positions stay as many as the stream's
// messages. A failure to ask is not one: the next look trims.
func (j *Journal) forgetPurged(ctx context.Context, stream natsjs.Stream, s *shardLog) {
	ctx, cancel := context.WithTimeout(ctx, j.o.OpTimeout)
	defer cancel()
	info, err := stream.Info(ctx)
	if err != nil {
		return
	}
	s.pos.Lock()
	for seq, ss := range s.streams {
		if ss < info.State.FirstSeq {
			delete(s.streams, seq)
		}
	}
	s.pos.Unlock()
}
