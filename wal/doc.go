// Package wal is onsale's write-ahead log on Pebble. It stores bytes at
// positions — per shard, a numbered sequence of entries and the newest
// snapshot — and knows nothing of tickets. *Log satisfies engine.Journal.
//
// # Key layout
//
// One Pebble keyspace, one prefix byte per kind, integers big-endian so that
// Pebble's byte order is numeric order:
//
//	'L' shard(2) seq(8)           → crc32c(4) | entry        log entries
//	'S' shard(2) seq(8) chunk(4)  → crc32c(4) | chunk        snapshot chunks
//	'M' shard(2)                  → seq(8) | chunks(4)       snapshot manifest
//	'Y'                           → shards(4)                layout
//	'K' name                      → value                    metadata (accounts)
//	'A' key                       → crc32c(4) | value        archived sales (archive.go)
//
// Pebble checksums its WAL and sstables; the CRC-32C in each value also
// catches a bad entry of our own format and anything a future bug writes.
//
// The archive keyspace ('A') holds opaque keys and values the engine
// chooses; they are written only in the batch of the log entries that refer
// to them (AppendArchive), and snapshots, truncation and Reset leave them.
//
// # Durability
//
// Append, SaveSnapshot, Reset, Put and Delete commit with pebble.Sync and
// return only when the write is on disk. Concurrent Appends from different
// shards share fsyncs (Pebble's commit pipeline groups them). A snapshot,
// its manifest and the deletion of the log before it are one batch: a crash
// leaves either the old snapshot and its log or the new one.
//
// # Syncs that overwrite
//
// An fdatasync that overwrites blocks a file has written and synced costs
// about half the time and less CPU than one that appends or fills space
// reserved with fallocate, which also commits the file system's journal.
// Pebble overwrites only in a recycled WAL file, after a memtable flush,
// that is never in a log's first 64 MiB. On the real disk, prefill.go
// zero-fills each new WAL file up to 1 MiB ahead of Pebble's writes and
// syncs the zeros, on a goroutine of its own, so Pebble's syncs overwrite.
// Zeros past the last record are what Pebble and tail.go read as the end
// of a preallocated or recycled WAL; Close cuts them off.
//
// # Failure
//
// Append commits with DB.ApplyNoSyncWait and its wait function calls
// Batch.SyncWait, so a failed WAL sync comes back as an error from wait; the
// engine then stops acknowledging and exits. Other commit errors Pebble v2
// does not return: it calls its logger's Fatalf ("pebble: fatal commit
// error", db.go), because its commit pipeline cannot continue. Options.OnFatal
// runs there and must not return (the default logs and exits the process):
// memory is ahead of the disk, and only recovery from the log is
// trustworthy. Pebble's log writer does not keep a sync error sticky, so a
// later sync may succeed after a failed one; the process must stop at the
// first error rather than carry on (and never retry an fsync).
//
// # Corruption
//
// Open refuses a WAL that is corrupt in synced data with an error wrapping
// pebble.ErrCorruption; an unclean tail of the newest WAL (a torn, unsynced
// write) is tolerated, as it holds nothing that was acknowledged. Pebble
// alone tells the two apart only across 32 KiB blocks; tail.go checks the
// newest WAL chunk by chunk before Pebble opens it, and Open writes a new
// database's log in the format that carries synced offsets from its first
// entry. A flip in the last few hundred bytes synced before a crash cannot
// be told from a torn write. Tables and manifest carry Pebble's block
// checksums, and every value ours (CRC-32C), so a flipped bit there fails
// Open, Replay or LoadSnapshot with an error, never a different answer.
// TestBitFlipsAreRefused and TestFirstLogBitFlips flip random bits to
// prove it.
//
// # Disk space
//
// Open refuses, with one error saying what is free and what is needed, a
// disk without room to open the log: the WAL files it replays (Pebble
// writes them out again as tables before Open returns) plus 8 MiB for a
// new manifest, options file and WAL (disk.go). Started without that room,
// Pebble's flush fails and is retried at once, forever. DiskFreeBytes lets
// the caller watch the disk while the log is open. Pebble's own log lines
// go through a repeat limiter (logger.go): alike lines at most three times
// a second, then a count of those held back.
//
// # Backups
//
// Backup (backup.go) writes a Pebble checkpoint of the open log, plus the
// files beside it in the data directory, to a new directory while appends
// go on: everything acknowledged before it started is in the copy. It then
// opens the copy once so that its WAL is written out as tables; Check reads
// every key of a copy so that every block checksum and every CRC is
// verified. Options.ReadOnly opens a copy without writing or locking it.
//
// # Threading
//
// All methods are safe for concurrent use. The engine calls Append for one
// shard from one goroutine at a time; Replay, LoadSnapshot, Layout and Reset
// run during start-up only.
package wal
