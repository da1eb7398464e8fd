// Package jetstream is onsale's write-ahead log on NATS JetStream, for a
// fleet: the same engine.Journal as package wal, replicated by a JetStream
// cluster instead of written to one disk. Like wal it stores bytes at
// positions and knows nothing of tickets.
//
// # Layout
//
// A Journal is named (Options.Name, one per fleet partition); for a name N:
//
//	stream N_<shard>     subject N.<shard>    one message per log entry
//	    header Onsale-Seq: the entry's seq; body: the entry
//	    or header Onsale-Fence: a writer took the log over (no body)
//	object store N_snap:
//	    shard-<shard>  → "OSNP" | seq(8) | count(4) | (len(4) | chunk)*
//	    layout         → shards(4)
//
// Each shard has a stream of its own so that its writer can predict the
// last message of the stream whenever it publishes: that is what lets a
// pipelined publish carry the expected last message (fencing, below)
// without waiting for the previous acknowledgement.
//
// # Durability
//
// Streams and the object store are file-backed and replicated
// (Options.Replicas, 3 by default). Append publishes without waiting
// (PublishMsgAsync, so that one round trip covers whatever the engine
// appended meanwhile); wait returns when the stream has acknowledged every
// message of the Append, which JetStream sends once a quorum of the
// replicas has stored it. Whether "stored" means on disk or in the page
// cache is the servers' sync_interval (see README, "Running a fleet"): with
// the default (fsync every 2 minutes) an acknowledged entry survives the
// crash of any minority of the servers but not a power cut of all of them;
// with sync_interval: always it survives that too, at about a quarter of
// the throughput.
//
// # Fencing
//
// Every publish carries the message id of the message its writer expects to
// be the stream's last (Nats-Expected-Last-Msg-Id): its own previous one.
// A writer that opens a shard first publishes a fence message, with a
// message id of its own and the stream's last sequence as the expected one
// (so two writers opening at once cannot both fence). From then on every
// append of a deposed writer is refused by the stream before it is stored
// (ErrFenced), however many of them it had in flight, and its engine stops
// without acknowledging them. Whatever the old writer got stored before the
// fence is replayed by the new one, so nothing acknowledged is lost. (An
// expected last sequence alone would not do: a pipelined writer's later
// messages expect later sequences, which the fence and the new writer's
// appends would make true.) Purges keep a stream's last message, whose id
// the next append expects.
//
// # Failure
//
// A publish that times out or meets a leader election is sent again, the
// same message with the same message id (JetStream drops duplicates within
// the stream's window) and the same expected last id, until
// Options.AppendTimeout: a retried message is stored once or refused. A
// wrong-last-message answer is retried once after every earlier message is
// confirmed (the earlier one may have been the one lost); a second one means
// another writer: ErrFenced.
//
// # Reading
//
// Replay is recovery's read: from the stream's start, holding the shard's
// lock, deciding which messages count (the last fence's writer, up to a
// gap). It remembers the stream sequence of every entry it counted, as
// wait does of every entry acknowledged; Tail, the notifier's read, starts
// at the remembered sequence of the entry it wants, reads up to the last
// acknowledged entry and skips any message that is not a remembered one,
// without the shard's lock (the positions have a mutex of their own).
// LoadSnapshot streams the snapshot object: each snapshot chunk goes to
// the engine's restorer as soon as it has arrived whole, while the rest
// downloads.
//
// Follow is a hot standby's read (engine.Follower): the stream from its
// start and then as it is written, without writing (no fence) or locking,
// deciding which messages count with the same reader as Replay, so that
// the standby holds what a replay would. It remembers where it stopped and
// which writer counted there: the takeover's Replay, called right after
// the last entry followed, starts at the next message instead of the
// stream's start. Behind a purge a reader must not skip an entry it needs:
// a first message (or the first after a jump in stream sequences) that is
// past the reader's next entry is ErrBehind, and the standby reloads the
// snapshot (a purge keeps the snapshot's own entry, so a cold Replay never
// meets it). Reads ask for a 1 s idle heartbeat (readHeartbeat).
//
// # Threading
//
// As engine.Journal says: Append for a shard from one goroutine, its wait
// functions from another, in Append order; shards run concurrently. Each
// shard's publishing state is guarded by its own mutex.
package jetstream
