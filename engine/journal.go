package engine

// Journal is what the engine needs of its write-ahead log. The wal package
// satisfies it on Pebble; tests may use an in-memory one.
//
// A shard's log is a sequence of entries numbered by seq (1, 2, ...), each an
// opaque byte string (the shard's encoded events of one decided batch). A
// shard's snapshot is its whole state at some seq, stored as chunks.
//
// Threading: Append for shard i is called only from shard i's committer
// (its wait functions from shard i's acker),
// SaveSnapshot for shard i only from shard i's snapshot writer; calls for
// different shards run concurrently. Replay, LoadSnapshot, Layout and Reset
// are called during Open only; recovery rebuilds shards in parallel, so
// Replay and LoadSnapshot of different shards run concurrently.
type Journal interface {
	// Append writes entries as seq firstSeq, firstSeq+1, ... of the shard's
	// log. It returns once they are in the log's order (later Appends come
	// after them) but maybe not yet durable; wait returns once they are
	// synced. The engine calls the wait functions of a shard in Append
	// order, and may Append again before waiting, so that one sync covers
	// whatever was appended while the previous sync ran. An error from
	// either means the entries may or may not be durable; the engine stops.
	Append(shard int, firstSeq uint64, entries [][]byte) (wait func() error, err error)

	// Replay calls fn for every entry of the shard with seq > afterSeq, in
	// seq order. The entry slice is valid only during the call. A gap in the
	// sequence or a corrupt entry is an error.
	Replay(shard int, afterSeq uint64, fn func(seq uint64, entry []byte) error) error

	// SaveSnapshot durably stores the shard's state as of seq, then deletes
	// the shard's log entries <= seq and its older snapshot, so disk use stays
	// bounded. Entries <= seq must already be durable when it is called.
	SaveSnapshot(shard int, seq uint64, chunks [][]byte) error

	// LoadSnapshot calls fn for each chunk of the shard's newest snapshot, in
	// order, and returns its seq; found is false if the shard has none.
	LoadSnapshot(shard int, fn func(chunk []byte) error) (seq uint64, found bool, err error)

	// Layout returns the shard count the log was written with; 0 for an
	// empty log.
	Layout() (shards int, err error)

	// Reset atomically replaces every log entry and snapshot with one
	// snapshot per shard (snapshots[i], at seq 0) and records the new shard
	// count. Open uses it to initialise an empty log and to repartition
	// sales when the shard count changes.
	Reset(snapshots [][][]byte) error
}
