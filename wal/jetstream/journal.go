package jetstream

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// ErrFenced means another writer has taken the log over: this one must stop
// without acknowledging what it appended.
var ErrFenced = errors.New("jetstream: another writer took the log over (fenced)")

// Options configure a Journal. Zero values take the defaults in brackets.
type Options struct {
	Conn *nats.Conn // required

	// Name names the streams, subjects and object store [onsale]; letters,
	// digits, '-' and '_' only.
	Name string

	Replicas      int           // copies of every stream and snapshot [3]
	AppendTimeout time.Duration // how long wait may retry a publish before it fails [10s]
	OpTimeout     time.Duration // other JetStream calls (snapshots, purges, stream info) [30s]
}

const (
	headerSeq    = "Onsale-Seq"
	headerFence  = "Onsale-Fence"
	headerWriter = "Onsale-Writer"
	layoutKey    = "layout"
	snapMagic    = "OSNP"
	// asyncPendingMax bounds the publishes in flight: past it Append blocks,
	// which is the back-pressure the committer expects from a slow log.
	asyncPendingMax = 16384
	// attemptTimeout bounds one wait for a publish's ack before it is sent
	// again: a message sent to a leader that has just died is never
	// answered, and a new leader is elected within a few seconds.
	attemptTimeout = 2 * time.Second
	// readHeartbeat is the idle heartbeat of the ordered consumers that
	// read a stream (Replay, Tail, Follow). nats.go recreates an ordered
	// consumer that misses two, and its default for them is 5 s: a read
	// whose consumer stopped delivering (its pull lost, say) stalls 10 s,
	// the likeliest cause of the 10 s stalls the failover harness showed
	// once in a few takeovers (README, "Running a fleet"). With 1 s such a
	// read resumes after 2 s.
	readHeartbeat = time.Second
)

// Journal is an engine.Journal on JetStream. Open it with Open; it needs no
// Close of its own (the caller owns the connection).
type Journal struct {
	o       Options
	js      natsjs.JetStream
	snaps   natsjs.ObjectStore
	session string // in every message id, so that ids never repeat across writers

	mu     sync.Mutex
	shards map[int]*shardLog
}

// shardLog is one shard's stream as its writer sees it.
type shardLog struct {
	stream, subject string

	mu      sync.Mutex
	opened  bool
	fenced  error  // set once a wait found the shard fenced; every later wait returns it
	lastSeq uint64 // the stream sequence the next publish expects to be last

	// pos guards the positions below, apart from mu so that a tailing
	// read (Tail) never waits for an Append.
	pos     sync.Mutex
	streams map[uint64]uint64 // entry seq → stream seq of the entries that count, for purging and Tail
	acked   uint64            // the last entry acknowledged (or replayed)

	// followed is where Follow left the stream (follow.go), so that the
	// Replay of a takeover reads only what came after it; guarded by pos.
	followed followPos
}

// pending is one published message awaiting its acknowledgement.
type pending struct {
	msg       *nats.Msg
	seq       uint64 // the entry's
	expectSeq uint64 // the stream's last sequence before it
	fut       natsjs.PubAckFuture
}

// Open connects the journal to its streams and object store, creating the
// object store if it does not exist. Shard streams are created and fenced
// on first use.
func Open(ctx context.Context, o Options) (*Journal, error) {
	if o.Conn == nil {
		return nil, errors.New("jetstream: Options.Conn is required")
	}
	if o.Name == "" {
		o.Name = "onsale"
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.AppendTimeout <= 0 {
		o.AppendTimeout = 10 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 30 * time.Second
	}
	js, err := natsjs.New(o.Conn, natsjs.WithPublishAsyncMaxPending(asyncPendingMax),
		natsjs.WithPublishAsyncTimeout(o.AppendTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.OpTimeout)
	defer cancel()
	snaps, err := js.CreateOrUpdateObjectStore(ctx, natsjs.ObjectStoreConfig{
		Bucket: o.Name + "_snap", Replicas: o.Replicas, Storage: natsjs.FileStorage,
		Description: "onsale snapshots and layout",
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: cannot open the snapshot store: %w", err)
	}
	// A new store's stream may not have elected its leader yet.
	for {
		_, err := snaps.GetInfo(ctx, layoutKey)
		if err == nil || errors.Is(err, natsjs.ErrObjectNotFound) {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("jetstream: the snapshot store does not answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	return &Journal{o: o, js: js, snaps: snaps, session: hex.EncodeToString(nonce[:]), shards: map[int]*shardLog{}}, nil
}

func (j *Journal) shard(i int) *shardLog {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.shards[i]
	if s == nil {
		s = &shardLog{stream: j.o.Name + "_" + strconv.Itoa(i), subject: j.o.Name + "." + strconv.Itoa(i),
			streams: map[uint64]uint64{}}
		j.shards[i] = s
	}
	return s
}

// open creates the shard's stream if needed and fences it: a fence message
// published with the stream's last sequence as the expected one moves the
// sequence past anything an older writer expects. Called with s.mu held.
func (j *Journal) open(s *shardLog) error {
	if s.opened {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	stream, err := j.js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
		Name: s.stream, Subjects: []string{s.subject}, Storage: natsjs.FileStorage, Replicas: j.o.Replicas,
		Retention: natsjs.LimitsPolicy, Discard: natsjs.DiscardNew, Duplicates: 2 * time.Minute,
		Description: "onsale log entries of one shard",
	})
	if err != nil {
		return fmt.Errorf("jetstream: cannot open stream %s: %w", s.stream, err)
	}
	for attempt := 0; ; attempt++ {
		info, err := stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("jetstream: stream %s: %w", s.stream, err)
		}
		last := info.State.LastSeq
		msg := &nats.Msg{Subject: s.subject, Header: nats.Header{}}
		msg.Header.Set(headerFence, "1")
		msg.Header.Set(headerWriter, j.session)
		var ack *natsjs.PubAck
		ack, err = j.js.PublishMsg(ctx, msg, natsjs.WithExpectLastSequence(last))
		if err != nil && ctx.Err() == nil && attempt < 1000 {
			// Another writer appended meanwhile (fence again above it), or
			// the stream has no leader yet.
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("jetstream: cannot fence stream %s: %w", s.stream, err)
		}
		s.lastSeq = ack.Sequence
		s.opened = true
		return nil
	}
}

// Append implements engine.Journal: it publishes one message per entry
// without waiting; wait waits for their quorum acknowledgements.
func (j *Journal) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	s := j.shard(shard)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := j.open(s); err != nil {
		return nil, err
	}
	batch := make([]pending, 0, len(entries))
	for i, e := range entries {
		seq := firstSeq + uint64(i)
		msg := &nats.Msg{Subject: s.subject, Data: e, Header: nats.Header{}}
		msg.Header.Set(headerSeq, strconv.FormatUint(seq, 10))
		msg.Header.Set(headerWriter, j.session)
		msg.Header.Set(nats.MsgIdHdr, j.session+"."+strconv.FormatUint(seq, 10))
		msg.Header.Set(natsjs.ExpectedLastSeqHeader, strconv.FormatUint(s.lastSeq, 10))
		p := pending{msg: msg, seq: seq, expectSeq: s.lastSeq}
		fut, err := j.js.PublishMsgAsync(msg)
		if err != nil {
			// Not sent: wait sends it again (the error may be a full buffer).
			fut = nil
		}
		p.fut = fut
		batch = append(batch, p)
		s.lastSeq++
	}
	return func() error { return j.wait(s, batch) }, nil
}

// wait confirms the batch's messages in order, sending again any whose
// publish failed or was not answered.
func (j *Journal) wait(s *shardLog, batch []pending) error {
	s.mu.Lock()
	fenced := s.fenced
	s.mu.Unlock()
	if fenced != nil {
		return fenced
	}
	deadline := time.Now().Add(j.o.AppendTimeout)
	for i := range batch {
		p := &batch[i]
		var err error
		var ack *natsjs.PubAck
		if p.fut != nil {
			select {
			case ack = <-p.fut.Ok():
			case err = <-p.fut.Err():
			case <-time.After(min(attemptTimeout, time.Until(deadline))):
				err = context.DeadlineExceeded // lost with a leader, maybe: resend finds out
			}
		} else {
			err = errors.New("not sent")
		}
		if err != nil {
			ack, err = j.resend(s, p, err, deadline)
		}
		if errors.Is(err, ErrFenced) {
			s.mu.Lock()
			s.fenced = err
			s.mu.Unlock()
		}
		if err != nil {
			return err
		}
		if ack.Sequence != p.expectSeq+1 {
			return fmt.Errorf("jetstream: stream %s stored entry %d at %d, not %d", s.stream, p.seq, ack.Sequence, p.expectSeq+1)
		}
		s.counted(p.seq, ack.Sequence)
	}
	return nil
}

// resend publishes p again, synchronously, until it is stored, refused
// twice by the expected-last-sequence check (fenced), or the deadline
// passes. After a timeout it sends the same message id: if the first one
// was stored, JetStream answers with its duplicate's ack. A refusal that is
// not a fence happens only when the message before this one was lost and
// sent again: p is then sent once more, with a new id, now that every
// earlier message is confirmed.
func (j *Journal) resend(s *shardLog, p *pending, first error, deadline time.Time) (*natsjs.PubAck, error) {
	refused := 0
	err := first
	for attempt := 1; ; attempt++ {
		h := p.msg.Header
		if isWrongLast(err) {
			if refused++; refused >= 2 {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrFenced, p.seq, err)
			}
			h = nats.Header{}
			for k, v := range p.msg.Header {
				h[k] = v
			}
			h.Set(nats.MsgIdHdr, p.msg.Header.Get(nats.MsgIdHdr)+".r"+strconv.Itoa(attempt))
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("jetstream: entry %d not acknowledged in time: %w", p.seq, err)
		} else if attempt > 1 {
			time.Sleep(50 * time.Millisecond) // a leader election; bounded by the deadline
		}
		// A fresh message: the sent one carries the async reply subject.
		p.msg = &nats.Msg{Subject: p.msg.Subject, Header: h, Data: p.msg.Data}
		ctx, cancel := context.WithTimeout(context.Background(), min(attemptTimeout, time.Until(deadline)))
		var ack *natsjs.PubAck
		ack, err = j.js.PublishMsg(ctx, &nats.Msg{Subject: p.msg.Subject, Header: h, Data: p.msg.Data})
		cancel()
		if err == nil {
			return ack, nil
		}
	}
}

func isWrongLast(err error) bool {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// Replay implements engine.Journal: every entry after afterSeq, in order,
// up to the stream's last message when it is called (the fence this
// writer published). Fence messages are skipped.
func (j *Journal) Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error {
	s := j.shard(shard)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := j.open(s); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := j.js.Stream(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", s.stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", s.stream, err)
	}
	if info.State.Msgs == 0 || info.State.LastSeq < info.State.FirstSeq {
		return nil
	}
	// A standby that followed the stream up to afterSeq (Follow) reads
	// from the message after the last one it counted, with the writer it
	// had found; anyone else from the stream's start.
	r := reader{next: afterSeq + 1}
	cfg := natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy}
	s.pos.Lock()
	if f := s.followed; afterSeq > 0 && f.seq == afterSeq {
		r.writer, r.at = f.writer, f.stream
		cfg = natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverByStartSequencePolicy, OptStartSeq: f.stream + 1}
	}
	s.pos.Unlock()
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", s.stream, err)
	}
	it, err := cons.Messages(natsjs.PullMaxMessages(4096), natsjs.PullHeartbeat(readHeartbeat))
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", s.stream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(natsjs.NextMaxWait(j.o.OpTimeout))
		if err != nil {
			return fmt.Errorf("jetstream: replaying stream %s: %w", s.stream, err)
		}
		seq, ss, counts, err := r.read(s.stream, m)
		if err != nil {
			return err
		}
		if counts {
			if err := fn(seq, m.Data()); err != nil {
				return err
			}
			s.counted(seq, ss)
		}
		if ss >= info.State.LastSeq {
			return nil
		}
	}
}

// ErrBehind means the entries a reader needs were purged behind a newer
// snapshot: load the shard's snapshot again and read from its seq.
var ErrBehind = errors.New("jetstream: the entries after this position were purged behind a newer snapshot")

// reader decides which messages of a shard's stream count, in stream
// order, for Replay and Follow alike, so that a standby that followed the
// stream holds exactly what a takeover's replay would.
//
// The writer whose entries count is the last fence's (or, in a stream
// purged behind a snapshot, the first message's). Entries of an older
// writer that reached the stream after the fence were refused to it (its
// wait failed) and are skipped; so is the rest of a writer's entries after
// a gap, which it never acknowledged (a pipelined append stored after its
// predecessor was refused).
type reader struct {
	next   uint64 // the entry that counts next
	writer string
	broken bool
	at     uint64 // the stream sequence of the last message read; 0 before the first
}

// read reads message m: the entry's seq, its stream sequence, and whether
// it counts (it is entry r.next). The first message, and the first after a
// purge passed the reader (its stream sequence jumps), must not skip an
// entry the reader needs: ErrBehind if it does. (Replay's first message is
// the entry at its snapshot's seq or an older one, since a stream is
// purged only behind a snapshot, or the fence that starts a reset stream,
// read from entry 1.)
func (r *reader) read(stream string, m natsjs.Msg) (seq, ss uint64, counts bool, err error) {
	meta, err := m.Metadata()
	if err != nil {
		return 0, 0, false, fmt.Errorf("jetstream: reading stream %s: %w", stream, err)
	}
	ss = meta.Sequence.Stream
	jumped := ss != r.at+1
	r.at = ss
	h := m.Headers()
	raw := h.Get(headerSeq)
	if raw != "" {
		if seq, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return 0, 0, false, fmt.Errorf("jetstream: stream %s message %d: bad %s %q", stream, ss, headerSeq, raw)
		}
	}
	if jumped {
		if raw == "" && r.next > 1 || seq > r.next {
			return 0, 0, false, fmt.Errorf("%w (stream %s: entry %d needed, message %d is %q)", ErrBehind, stream, r.next, ss, raw)
		}
		r.writer = "" // purged: the first message's writer, as below
	}
	if w := h.Get(headerWriter); r.writer == "" || h.Get(headerFence) != "" {
		r.writer, r.broken = w, false
	}
	if raw == "" || h.Get(headerWriter) != r.writer || r.broken {
		return seq, ss, false, nil
	}
	switch {
	case seq < r.next:
		// At or before the snapshot: already in the state.
	case seq > r.next:
		r.broken = true
	default:
		r.next++
		return seq, ss, true, nil
	}
	return seq, ss, false, nil
}

// counted records that the entry at seq is the message at streamSeq and is
// acknowledged: entries are counted in order.
func (s *shardLog) counted(seq, streamSeq uint64) {
	s.pos.Lock()
	s.streams[seq] = streamSeq
	s.acked = seq
	s.pos.Unlock()
}

// tailChunk is how many entries' stream positions Tail copies at a time.
const tailChunk = 4096

// Tail calls fn with the shard's acknowledged entries after afterSeq, in
// order, like Replay, for a reader that follows the log (the notifier,
// httpapi/fleet's Outbox). Unlike Replay it neither takes the shard's lock
// (appends go on while it reads) nor reads the stream from its start: it
// starts at the stream sequence of the entry after afterSeq, remembered
// when that entry was acknowledged or replayed, and stops at the last
// entry acknowledged when it was called. Messages between them that do not
// count (a fence, a deposed writer's) are skipped by their position. It
// reads nothing when the entry after afterSeq is not known: not yet
// acknowledged, or purged behind a snapshot (where Replay finds a gap and
// reads nothing either). An entry purged while Tail reads is an error.
func (j *Journal) Tail(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error {
	s := j.shard(shard)
	s.pos.Lock()
	last := s.acked
	from, ok := s.streams[afterSeq+1]
	s.pos.Unlock()
	if !ok || afterSeq >= last {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	cons, err := j.js.OrderedConsumer(ctx, s.stream, natsjs.OrderedConsumerConfig{
		DeliverPolicy: natsjs.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return fmt.Errorf("jetstream: tailing stream %s: %w", s.stream, err)
	}
	it, err := cons.Messages(natsjs.PullMaxMessages(int(min(last-afterSeq, tailChunk))), natsjs.PullHeartbeat(readHeartbeat))
	if err != nil {
		return fmt.Errorf("jetstream: tailing stream %s: %w", s.stream, err)
	}
	defer it.Stop()
	var at []uint64 // the stream seqs of entries next, next+1, ...
	for next := afterSeq + 1; next <= last; {
		if len(at) == 0 {
			s.pos.Lock()
			for seq := next; seq <= last && len(at) < tailChunk; seq++ {
				ss, ok := s.streams[seq]
				if !ok {
					break
				}
				at = append(at, ss)
			}
			s.pos.Unlock()
			if len(at) == 0 {
				return fmt.Errorf("jetstream: tailing stream %s: entry %d was purged behind a snapshot while it was read", s.stream, next)
			}
		}
		m, err := it.Next(natsjs.NextMaxWait(j.o.OpTimeout))
		if err != nil {
			return fmt.Errorf("jetstream: tailing stream %s: %w", s.stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: tailing stream %s: %w", s.stream, err)
		}
		switch ss := meta.Sequence.Stream; {
		case ss < at[0]:
			// A message that does not count.
		case ss > at[0]:
			return fmt.Errorf("jetstream: tailing stream %s: entry %d (message %d) was purged while it was read", s.stream, next, at[0])
		default:
			if raw := m.Headers().Get(headerSeq); raw != strconv.FormatUint(next, 10) {
				return fmt.Errorf("jetstream: stream %s message %d: %s %q, not entry %d", s.stream, ss, headerSeq, raw, next)
			}
			if err := fn(next, m.Data()); err != nil {
				return err
			}
			next++
			at = at[1:]
		}
	}
	return nil
}

// SaveSnapshot implements engine.Journal: the snapshot replaces the shard's
// object, then the stream is purged up to the entry at seq.
func (j *Journal) SaveSnapshot(shard int, seq uint64, chunks [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	if _, err := j.snaps.PutBytes(ctx, snapName(shard), encodeSnapshot(seq, chunks)); err != nil {
		return fmt.Errorf("jetstream: cannot store the snapshot of shard %d: %w", shard, err)
	}
	s := j.shard(shard)
	s.pos.Lock()
	streamSeq, ok := s.streams[seq]
	for k := range s.streams {
		if k <= seq {
			delete(s.streams, k)
		}
	}
	s.pos.Unlock()
	if !ok {
		return nil // seq 0 or an entry older than this writer: nothing of ours to purge
	}
	stream, err := j.js.Stream(ctx, s.stream)
	if err == nil {
		// Keep the entry at seq itself: replay learns from the first
		// message whose entries count.
		err = stream.Purge(ctx, natsjs.WithPurgeSequence(streamSeq))
	}
	if err != nil {
		return fmt.Errorf("jetstream: cannot purge stream %s behind its snapshot: %w", s.stream, err)
	}
	return nil
}

// LoadSnapshot implements engine.Journal. The snapshot streams: a
// goroutine reads the object store's chunks as they arrive and cuts them
// into the snapshot's own chunks, each handed to fn as soon as it is whole,
// so that the engine restores while the rest downloads. The object's digest
// is checked once it is read to its end: a snapshot that fails it, or is
// cut short, is an error after fn has seen part of it (recovery then fails
// and starts over; nothing it restored is used).
func (j *Journal) LoadSnapshot(shard int, fn func(chunk []byte) error) (uint64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	obj, err := j.snaps.Get(ctx, snapName(shard))
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("jetstream: cannot read the snapshot of shard %d: %w", shard, err)
	}
	defer obj.Close()
	r := bufio.NewReaderSize(obj, 1<<20)
	seq, count, err := readSnapshotHead(r)
	if err != nil {
		return 0, false, fmt.Errorf("jetstream: snapshot of shard %d: %w", shard, err)
	}
	// The download never waits for the restore: the queue holds every
	// chunk if it must (the whole snapshot was in memory before it
	// streamed, too).
	chunks := make(chan []byte, min(count, 1<<16))
	var readErr error
	go func() {
		defer close(chunks)
		readErr = readChunks(r, count, chunks, ctx.Done())
	}()
	var fnErr error
	for c := range chunks {
		if fnErr == nil {
			if fnErr = fn(c); fnErr != nil {
				cancel() // the reader stops; the loop drains what it queued
			}
		}
	}
	if fnErr != nil {
		return 0, false, fnErr
	}
	if readErr != nil {
		return 0, false, fmt.Errorf("jetstream: snapshot of shard %d: %w", shard, readErr)
	}
	return seq, true, nil
}

// readSnapshotHead reads the snapshot's magic, seq and chunk count.
func readSnapshotHead(r io.Reader) (seq uint64, count uint32, err error) {
	var head [len(snapMagic) + 12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || string(head[:len(snapMagic)]) != snapMagic {
		return 0, 0, errors.New("not a snapshot")
	}
	return binary.BigEndian.Uint64(head[len(snapMagic):]), binary.BigEndian.Uint32(head[len(snapMagic)+8:]), nil
}

// readChunks reads count length-prefixed chunks from r onto out, then
// checks that r ends there (which checks the object's digest).
func readChunks(r *bufio.Reader, count uint32, out chan<- []byte, stop <-chan struct{}) error {
	var n [4]byte
	for range count {
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return fmt.Errorf("truncated: %w", err)
		}
		c := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(r, c); err != nil {
			return fmt.Errorf("truncated: %w", err)
		}
		select {
		case out <- c:
		case <-stop:
			return errors.New("stopped")
		}
	}
	if m, err := r.Read(n[:1]); m != 0 {
		return errors.New("trailing bytes")
	} else if err != io.EOF {
		return fmt.Errorf("reading its end: %w", err)
	}
	return nil
}

// Layout implements engine.Journal.
func (j *Journal) Layout() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	raw, err := j.snaps.GetBytes(ctx, layoutKey)
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: cannot read the layout: %w", err)
	}
	if len(raw) != 4 {
		return 0, fmt.Errorf("jetstream: layout of %d bytes", len(raw))
	}
	return int(binary.BigEndian.Uint32(raw)), nil
}

// Reset implements engine.Journal. It is not atomic as wal's is: it writes
// every shard's snapshot and purges its stream, then the layout, last. A
// crash before the layout is written leaves the old layout (or none), and
// the next Open resets again; a crash while repartitioning (a changed
// shard count) can leave a sale in two shards' snapshots, so a fleet keeps
// its -shards fixed.
func (j *Journal) Reset(snapshots [][][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), j.o.OpTimeout)
	defer cancel()
	for i, chunks := range snapshots {
		s := j.shard(i)
		s.mu.Lock()
		// Purge, then fence again: the fence is then the stream's last
		// message, whose id the next append expects.
		err := j.open(s)
		if err == nil {
			var stream natsjs.Stream
			if stream, err = j.js.Stream(ctx, s.stream); err == nil {
				err = stream.Purge(ctx)
			}
			s.pos.Lock()
			clear(s.streams)
			s.acked = 0
			s.pos.Unlock()
			s.opened = false
		}
		if err == nil {
			err = j.open(s)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("jetstream: cannot reset shard %d: %w", i, err)
		}
		if _, err := j.snaps.PutBytes(ctx, snapName(i), encodeSnapshot(0, chunks)); err != nil {
			return fmt.Errorf("jetstream: cannot reset shard %d: %w", i, err)
		}
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(snapshots)))
	if _, err := j.snaps.PutBytes(ctx, layoutKey, b[:]); err != nil {
		return fmt.Errorf("jetstream: cannot write the layout: %w", err)
	}
	return nil
}

func snapName(shard int) string { return "shard-" + strconv.Itoa(shard) }

func encodeSnapshot(seq uint64, chunks [][]byte) []byte {
	n := len(snapMagic) + 12
	for _, c := range chunks {
		n += 4 + len(c)
	}
	b := make([]byte, 0, n)
	b = append(b, snapMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(chunks)))
	for _, c := range chunks {
		b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}
