package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure a Log. Zero values take the defaults in brackets.
type Options struct {
	FS     vfs.FS       // [vfs.Default, the real disk]; tests pass a MemFS or an errorfs
	Logger *slog.Logger // Pebble's own lines go here too [slog.Default()]
	NoSync bool         // benchmarks only: commits without fsync are NOT durable
	// ReadOnly opens without writing anything and without Pebble's lock:
	// verifying a backup or summing one up. Every write returns an error.
	ReadOnly bool
	Metrics  *metrics.Set // where to register wal metrics [none]

	// OnFatal runs when Pebble cannot go on (a failed WAL write or sync).
	// It must not return [log at error level and os.Exit(1)].
	OnFatal func(msg string)

	// MinSyncInterval, called after each log sync, says how long the next
	// one must wait at least [nil: sync whenever something waits]. An
	// fdatasync costs CPU as well as time; under load, waiting a little
	// lets one sync cover more appends. Every Append still waits for a sync
	// that covers it. It runs on Pebble's log writer goroutine: keep it
	// cheap and safe for concurrent use.
	MinSyncInterval func() time.Duration

	prefillWindow int64            // tests: zeros kept ahead of each WAL file's writes [1 MiB on vfs.Default, else none; -1 none] (prefill.go)
	now           func() time.Time // tests: the clock of the repeat limiter of Pebble's lines [time.Now]
}

// Log is the write-ahead log. See the package comment.
type Log struct {
	db      *pebble.DB
	fs      vfs.FS
	dir     string
	plog    pebbleLogger
	wo      *pebble.WriteOptions
	appends *metrics.Counter
	entries *metrics.PrometheusHistogram
	bytes   *metrics.PrometheusHistogram
	seconds *metrics.PrometheusHistogram
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	prefixLog      = 'L'
	prefixSnapshot = 'S'
	prefixManifest = 'M'
	prefixLayout   = 'Y'
	prefixMeta     = 'K'
	prefixArchive  = 'A' // archive.go
	crcLen         = 4
	logKeyLen      = 1 + 2 + 8     // prefix, shard, seq
	snapshotKeyLen = 1 + 2 + 8 + 4 // prefix, shard, seq, chunk
)

// Open opens or creates the log in dir.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnFatal == nil {
		logger := opts.Logger
		opts.OnFatal = func(msg string) {
			logger.Error("write-ahead log failed; stopping", "err", msg)
			os.Exit(1)
		}
	}
	plog := pebbleLogger{log: opts.Logger, onFatal: opts.OnFatal, repeats: newRepeatLimiter(opts.now)}
	po := &pebble.Options{
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             plog,
		// A large memtable absorbs bursts of appends without stalling on
		// flushes; batches over half of it (big snapshots) are queued as
		// flushable batches instead of being copied into it.
		MemTableSize:       64 << 20,
		WALMinSyncInterval: opts.MinSyncInterval,
		// Pebble's default makes a corrupt table found by a read fatal; the
		// read's own error is enough: Replay and LoadSnapshot return it and
		// the engine refuses to start with it.
		EventListener: &pebble.EventListener{DataCorruption: func(info pebble.DataCorruptionInfo) {
			opts.Logger.Error("on-disk corruption", "component", "pebble", "info", info.String())
		}},
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if !opts.ReadOnly {
		if err := checkRoom(fs, dir); err != nil {
			return nil, err
		}
	}
	po.ReadOnly = opts.ReadOnly
	if opts.prefillWindow == 0 && fs == vfs.Default {
		opts.prefillWindow = prefillWindow
	}
	if !opts.ReadOnly && opts.prefillWindow > 0 {
		// Syncs overwrite written blocks (prefill.go).
		po.FS = prefillFS{FS: fs, window: opts.prefillWindow}
	}
	if opts.ReadOnly {
		// Pebble creates a missing directory unless told not to; a copy
		// that is not there is an error, not a new empty log.
		po.ErrorIfNotExists = true
	}
	if err := checkNewestLog(fs, dir); err != nil {
		return nil, err
	}
	created := !opts.ReadOnly && !hasManifest(fs, dir)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("wal: cannot open %s: %w", dir, err)
	}
	if created {
		// Pebble writes a new database's first WAL before it raises the
		// format to the one whose chunks carry synced offsets, and without
		// them checkNewestLog cannot tell a flipped bit from a torn tail
		// (tail.go). Start a new WAL, in the current format, before the
		// first write.
		if err := db.Flush(); err != nil {
			db.Close()
			return nil, fmt.Errorf("wal: cannot start a new log in %s: %w", dir, err)
		}
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	// GetOrCreate, not New: a process may close and reopen its log (tests,
	// a repartitioning start-up) with the same set.
	l := &Log{
		db:      db,
		fs:      fs,
		dir:     dir,
		plog:    plog,
		wo:      pebble.Sync,
		appends: set.GetOrCreateCounter("onsale_wal_appends_total"),
		entries: set.GetOrCreatePrometheusHistogramExt("onsale_wal_append_entries", appendEntriesBounds),
		bytes:   set.GetOrCreatePrometheusHistogramExt("onsale_wal_append_bytes", appendBytesBounds),
		seconds: set.GetOrCreatePrometheusHistogramExt("onsale_wal_sync_seconds", syncSecondsBounds),
	}
	if opts.NoSync {
		l.wo = pebble.NoSync
	}
	return l, nil
}

// Close closes the log. Everything acknowledged is already durable.
func (l *Log) Close() error {
	err := l.db.Close()
	l.plog.flush()
	if err != nil {
		return fmt.Errorf("wal: cannot close: %w", err)
	}
	return nil
}

// Append writes entries as seq firstSeq, firstSeq+1, ... of the shard's log.
// It returns once they are applied in log order; wait returns once they are
// durable. Appending again before waiting lets Pebble's log writer cover
// both with one fsync (the pipelining CockroachDB's raft log uses). wait must
// be called exactly once.
func (l *Log) Append(shard int, firstSeq uint64, entries [][]byte) (wait func() error, err error) {
	return l.appendWith(shard, firstSeq, entries, nil, nil)
}

// appendWith is Append with archive records (archive.go) in the same batch.
func (l *Log) appendWith(shard int, firstSeq uint64, entries, keys, values [][]byte) (wait func() error, err error) {
	start := time.Now()
	b := l.db.NewBatch()
	if err := putArchive(b, keys, values); err != nil {
		b.Close()
		return nil, fmt.Errorf("wal: cannot append shard %d: %w", shard, err)
	}
	n := 0
	for i, e := range entries {
		op := b.SetDeferred(11, crcLen+len(e))
		putLogKey(op.Key, shard, firstSeq+uint64(i))
		binary.BigEndian.PutUint32(op.Value, crc32.Checksum(e, crcTable))
		copy(op.Value[crcLen:], e)
		if err := op.Finish(); err != nil {
			b.Close()
			return nil, fmt.Errorf("wal: cannot append shard %d: %w", shard, err)
		}
		n += len(e)
	}
	l.appends.Inc()
	l.entries.Update(float64(len(entries)))
	l.bytes.Update(float64(n))
	if !l.wo.Sync {
		err := b.Commit(l.wo)
		b.Close()
		if err != nil {
			return nil, fmt.Errorf("wal: cannot append shard %d: %w", shard, err)
		}
		return noWait, nil
	}
	if err := l.db.ApplyNoSyncWait(b, l.wo); err != nil {
		b.Close()
		return nil, fmt.Errorf("wal: cannot append shard %d: %w", shard, err)
	}
	return func() error {
		defer b.Close()
		if err := b.SyncWait(); err != nil {
			return fmt.Errorf("wal: cannot sync shard %d: %w", shard, err)
		}
		l.seconds.UpdateDuration(start)
		return nil
	}, nil
}

func noWait() error { return nil }

// Replay calls fn for every entry of the shard with seq > afterSeq, in seq
// order. The first must be afterSeq+1 and each the one after the last;
// anything else is a corrupt log. Entries up to a snapshot's seq are deleted
// with it, so after SaveSnapshot(shard, s, ...) replay from s: replaying from
// an earlier seq reports the deleted entries as missing.
func (l *Log) Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error {
	if err := checkShard(shard); err != nil {
		return err
	}
	lower := make([]byte, logKeyLen)
	upper := make([]byte, logKeyLen)
	putLogKey(lower, shard, afterSeq+1)
	putLogKey(upper, shard+1, 0)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
	}
	defer it.Close()
	want := afterSeq + 1
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != logKeyLen {
			return fmt.Errorf("wal: shard %d: entry key %x after %d has the wrong length: log is corrupt", shard, k, want-1)
		}
		seq := binary.BigEndian.Uint64(k[3:])
		if seq != want {
			return fmt.Errorf("wal: shard %d: entry %d missing after %d (next is %d): log is corrupt", shard, want, want-1, seq)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("wal: shard %d entry %d: %w", shard, seq, err)
		}
		entry, err := checked(v)
		if err != nil {
			return fmt.Errorf("wal: shard %d entry %d: %w", shard, seq, err)
		}
		if err := fn(seq, entry); err != nil {
			return err
		}
		want++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
	}
	return nil
}

// Span returns the first and the last seq of the shard's stored log
// entries, 0 and 0 if it has none: after a snapshot at seq s the first is
// s+1, since SaveSnapshot deletes the entries up to s with it. It reads two
// keys, not the entries; Replay from first-1 is the one that reports a gap
// or a corrupt entry. Recovery uses it to look at the log before it
// restores the snapshot.
func (l *Log) Span(shard int) (first, last uint64, err error) {
	if err := checkShard(shard); err != nil {
		return 0, 0, err
	}
	lower := make([]byte, logKeyLen)
	upper := make([]byte, logKeyLen)
	putLogKey(lower, shard, 0)
	putLogKey(upper, shard+1, 0)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			return 0, 0, fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
		}
		return 0, 0, nil
	}
	if first, err = entrySeq(shard, it.Key()); err != nil {
		return 0, 0, err
	}
	if !it.Last() {
		return 0, 0, fmt.Errorf("wal: cannot read shard %d: %w", shard, it.Error())
	}
	if last, err = entrySeq(shard, it.Key()); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

func entrySeq(shard int, k []byte) (uint64, error) {
	if len(k) != logKeyLen {
		return 0, fmt.Errorf("wal: shard %d: entry key %x has the wrong length: log is corrupt", shard, k)
	}
	return binary.BigEndian.Uint64(k[3:]), nil
}

// SaveSnapshot stores the shard's state as of seq and deletes its log up to
// seq and its older snapshot, in one synced batch.
func (l *Log) SaveSnapshot(shard int, seq uint64, chunks [][]byte) error {
	if err := checkShard(shard); err != nil {
		return err
	}
	b := l.db.NewBatch()
	defer b.Close()
	if err := l.writeSnapshot(b, shard, seq, chunks); err != nil {
		return err
	}
	from, to := make([]byte, logKeyLen), make([]byte, logKeyLen)
	putLogKey(from, shard, 0)
	putLogKey(to, shard, seq+1)
	if err := b.DeleteRange(from, to, nil); err != nil {
		return fmt.Errorf("wal: cannot save snapshot of shard %d: %w", shard, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("wal: cannot save snapshot of shard %d: %w", shard, err)
	}
	return nil
}

// writeSnapshot adds to b: delete the shard's snapshot chunks, write the new
// ones and the manifest that names them.
func (l *Log) writeSnapshot(b *pebble.Batch, shard int, seq uint64, chunks [][]byte) error {
	from, to := []byte{prefixSnapshot, 0, 0}, []byte{prefixSnapshot, 0, 0}
	binary.BigEndian.PutUint16(from[1:], uint16(shard))
	binary.BigEndian.PutUint16(to[1:], uint16(shard+1))
	if err := b.DeleteRange(from, to, nil); err != nil {
		return fmt.Errorf("wal: cannot save snapshot of shard %d: %w", shard, err)
	}
	for i, c := range chunks {
		op := b.SetDeferred(snapshotKeyLen, crcLen+len(c))
		putSnapshotKey(op.Key, shard, seq, i)
		putValue(op.Value, c)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("wal: cannot save snapshot of shard %d: %w", shard, err)
		}
	}
	manifest := binary.BigEndian.AppendUint64(nil, seq)
	manifest = binary.BigEndian.AppendUint32(manifest, uint32(len(chunks)))
	if err := b.Set(manifestKey(shard), manifest, nil); err != nil {
		return fmt.Errorf("wal: cannot save snapshot of shard %d: %w", shard, err)
	}
	return nil
}

// LoadSnapshot calls fn for each chunk of the shard's snapshot, in order.
func (l *Log) LoadSnapshot(shard int, fn func(chunk []byte) error) (uint64, bool, error) {
	if err := checkShard(shard); err != nil {
		return 0, false, err
	}
	m, closer, err := l.db.Get(manifestKey(shard))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("wal: cannot read snapshot of shard %d: %w", shard, err)
	}
	if len(m) != 12 {
		closer.Close()
		return 0, false, fmt.Errorf("wal: snapshot manifest of shard %d is corrupt", shard)
	}
	seq, n := binary.BigEndian.Uint64(m), int(binary.BigEndian.Uint32(m[8:]))
	closer.Close()
	lower, upper := make([]byte, snapshotKeyLen), make([]byte, snapshotKeyLen)
	putSnapshotKey(lower, shard, seq, 0)
	putSnapshotKey(upper, shard, seq+1, 0)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, false, fmt.Errorf("wal: cannot read snapshot of shard %d: %w", shard, err)
	}
	defer it.Close()
	i := 0
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) != snapshotKeyLen || int(binary.BigEndian.Uint32(k[11:])) != i {
			return 0, false, fmt.Errorf("wal: snapshot of shard %d: chunk %d missing: snapshot is corrupt", shard, i)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, false, fmt.Errorf("wal: snapshot of shard %d chunk %d: %w", shard, i, err)
		}
		chunk, err := checked(v)
		if err != nil {
			return 0, false, fmt.Errorf("wal: snapshot of shard %d chunk %d: %w", shard, i, err)
		}
		if err := fn(chunk); err != nil {
			return 0, false, err
		}
		i++
	}
	if err := it.Error(); err != nil {
		return 0, false, fmt.Errorf("wal: cannot read snapshot of shard %d: %w", shard, err)
	}
	if i != n {
		return 0, false, fmt.Errorf("wal: snapshot of shard %d has %d of %d chunks: snapshot is corrupt", shard, i, n)
	}
	return seq, true, nil
}

// Layout returns the shard count the log was written with; 0 if empty.
func (l *Log) Layout() (int, error) {
	v, closer, err := l.db.Get([]byte{prefixLayout})
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("wal: cannot read layout: %w", err)
	}
	defer closer.Close()
	if len(v) != 4 {
		return 0, errors.New("wal: layout record is corrupt")
	}
	return int(binary.BigEndian.Uint32(v)), nil
}

// Reset replaces every entry and snapshot with snapshots[i] at seq 0 for
// shard i and records len(snapshots) as the layout, in one synced batch.
func (l *Log) Reset(snapshots [][][]byte) error {
	if len(snapshots) > shardsMax {
		return fmt.Errorf("wal: cannot reset: %d shards, at most %d", len(snapshots), shardsMax)
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, p := range []byte{prefixLog, prefixSnapshot, prefixManifest} {
		if err := b.DeleteRange([]byte{p}, []byte{p + 1}, nil); err != nil {
			return fmt.Errorf("wal: cannot reset: %w", err)
		}
	}
	for i, chunks := range snapshots {
		if err := l.writeSnapshot(b, i, 0, chunks); err != nil {
			return err
		}
	}
	if err := b.Set([]byte{prefixLayout}, binary.BigEndian.AppendUint32(nil, uint32(len(snapshots))), nil); err != nil {
		return fmt.Errorf("wal: cannot reset: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("wal: cannot reset: %w", err)
	}
	return nil
}

// Get returns a copy of a metadata value.
func (l *Log) Get(key string) ([]byte, bool, error) {
	v, closer, err := l.db.Get(metaKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("wal: cannot read %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Put durably stores a metadata value.
func (l *Log) Put(key string, value []byte) error {
	if err := l.db.Set(metaKey(key), value, pebble.Sync); err != nil {
		return fmt.Errorf("wal: cannot write %q: %w", key, err)
	}
	return nil
}

// Delete durably removes a metadata value.
func (l *Log) Delete(key string) error {
	if err := l.db.Delete(metaKey(key), pebble.Sync); err != nil {
		return fmt.Errorf("wal: cannot delete %q: %w", key, err)
	}
	return nil
}

// DiskUsage returns the bytes the log takes on disk.
func (l *Log) DiskUsage() uint64 { return l.db.Metrics().DiskSpaceUsage() }

func putLogKey(k []byte, shard int, seq uint64) {
	k[0] = prefixLog
	binary.BigEndian.PutUint16(k[1:], uint16(shard))
	binary.BigEndian.PutUint64(k[3:], seq)
}

func putSnapshotKey(k []byte, shard int, seq uint64, chunk int) {
	k[0] = prefixSnapshot
	binary.BigEndian.PutUint16(k[1:], uint16(shard))
	binary.BigEndian.PutUint64(k[3:], seq)
	binary.BigEndian.PutUint32(k[11:], uint32(chunk))
}

func manifestKey(shard int) []byte {
	return binary.BigEndian.AppendUint16([]byte{prefixManifest}, uint16(shard))
}

func metaKey(key string) []byte { return append([]byte{prefixMeta}, key...) }

// shardsMax bounds shard numbers: a shard is a uint16 in keys, and the
// shard after it bounds its key range.
const shardsMax = 1<<16 - 1

func checkShard(shard int) error {
	if shard < 0 || shard >= shardsMax {
		return fmt.Errorf("wal: shard %d out of range [0, %d)", shard, shardsMax)
	}
	return nil
}

// putValue writes crc32c(body) | body into v, which has room for both.
func putValue(v, body []byte) {
	binary.BigEndian.PutUint32(v, crc32.Checksum(body, crcTable))
	copy(v[crcLen:], body)
}

// checked strips and verifies a value's CRC-32C.
func checked(v []byte) ([]byte, error) {
	if len(v) < crcLen {
		return nil, errors.New("value shorter than its checksum: log is corrupt")
	}
	body := v[crcLen:]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(v) {
		return nil, errors.New("checksum mismatch: log is corrupt")
	}
	return body, nil
}
