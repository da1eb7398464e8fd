// Package engine is onsale's domain: sales, tiers, holds, orders and tickets,
// the pure state machine that decides them, the codec that writes its events
// to the log, the shard runtime that owns the state, and recovery.
//
// # Shape
//
//	caller goroutine ──► Engine.Purchase ──► shard inbox (bounded chan)
//	                                              │
//	shard loop (one goroutine per shard, the only select):
//	    take a request, drain up to BatchMax more without blocking,
//	    for each: decide(state, cmd, now) → events | rejection; apply(events)
//	    encode the batch's events into one log entry (shard, seq)
//	    hand the batch to the shard's committer ──────────────┐
//	                                                         ▼
//	committer (one goroutine per shard): take every decided batch that is
//	    waiting, write them in one Journal.Append (one synced Pebble batch)
//	    without waiting for its sync, and hand them on ───────┐
//	                                                         ▼
//	acker (one goroutine per shard): wait for each Append's sync, in order,
//	    publish the views of the sales those batches changed (views.go),
//	    then answer every request of those batches, in decide order.
//
// The state machine (state.go, decide.go, apply.go) is plain, single-threaded
// code: no goroutines, channels, clock, randomness or I/O. Time enters as the
// batch's now (unix milliseconds) and order ids are drawn by the caller before
// the command reaches the shard, so replaying the log needs neither.
//
// # Invariants
//
//   - For every tier at every instant: sold + held <= stock. apply checks the
//     tier it touches and panics if this breaks; with -tags invariants the
//     whole shard is re-counted after every batch.
//   - A request is answered only after the log entry holding its batch's
//     events (and every entry decided before it) is durable. Rejections and
//     reads wait too, so nothing a caller sees can be lost by a crash.
//   - The log records outcomes (events), not commands: apply never fails and
//     never consults the clock; recovery is snapshot + apply of every entry
//     after it, and reproduces the state exactly.
//   - Entries of one shard reach the log in the order they were decided; a
//     release (cancel, expiry) is never reordered after the re-sale of its
//     stock.
//   - A published sale view (SaleView, Sale, Sales) shows only durable state,
//     and is published before any request of its batch is answered. So is
//     the credential table (Credentials, credentials.go): a revocation
//     answered is seen by every request after it.
//   - Rules that price or limit a purchase (price phases, packages,
//     coupons: pricing.go, packages.go, coupons.go) are state of the sale,
//     decided in its shard; a coupon's use and a package's components are
//     taken in the same entry as the order and given back with it, so
//     sold + held <= stock holds for every component tier and a coupon
//     never has more uses than its cap.
//   - A ticket admits once: its check-in is decided by its sale's shard, so
//     concurrent scans (and offline uploads) of one code get one admission.
//     The engine holds no secret: ticket keys are logged as ids (kids) and
//     derived outside it (ticketcode.go); each order's kid is set and moved
//     only in apply, so replay re-issues exactly as the live shard did.
//   - A real-name sale's document holds at most PerDocumentLimit tickets,
//     pending or paid, across all users (realname.go): the limit is decided
//     in the sale's shard with the purchase, and the counts are derived
//     from the orders' statuses, never stored, so releases, late payments
//     and recovery cannot drift from them. The engine sees documents only as
//     keyed hashes and names only sealed: no log record or snapshot holds a
//     number or a name in clear.
//   - A buyer's refund request and exchange are decided by the sale's shard
//     at its batch's time against the sale's RefundPolicy (refundrules.go):
//     an exchange takes the new tier's stock and returns the old order's in
//     one log entry, so it never oversells and a crash keeps both or
//     neither; one to a dearer ticket holds the new stock on a pending
//     order and releases the old in the entry that pays the difference
//     (exchanges.go); each refund under the rules logs its amount and fee.
//   - An archived sale (archive.go) is in the log's archive keyspace and
//     not in memory: its records are written in the same Pebble batch as
//     the SaleArchived entry (ArchiveStore), so a crash keeps both or
//     neither; reads of it come from those records, and a write that
//     changes it brings it back into its shard first (SaleUnarchived,
//     applied with the generation of records it names).
//   - A lottery's or waitlist's offer (offers.go) is a pending order that
//     the sale's shard makes itself, in the same log entry as the draw or
//     the release that freed its tickets, so freed tickets reach the
//     registrations before open sale and sold + held <= stock holds as for
//     any purchase; a registration's state is derived from its offer's
//     order, never stored twice.
//   - A failed Journal.Append is never acknowledged: the engine fails every
//     waiting and later request with ErrStopped and calls Config.OnFatal
//     (main exits the process: memory is ahead of disk and only recovery
//     from the log is trustworthy).
//
// # Threading
//
// Engine methods are safe for concurrent use by any number of goroutines.
// Open recovers the shards in parallel, each on goroutines of its own that
// have all ended when Open returns (recover.go says who owns what). A
// Follower (follow.go, a fleet's hot standby) is recovery cut in two: each
// shard restored by NewFollower, then applied by one caller goroutine per
// shard, then Promote, which ends the replay and starts the shards.
// A shard's state is touched only by its loop goroutine; the committer touches
// only the decided batches handed to it; the acker publishes the immutable
// sale views the loop built (one atomic store each; readers load them from
// any goroutine); the snapshot writer reads only the frozen copy-on-write
// view the loop handed it; so does a report (reports.go), which the loop
// only freezes and the caller's goroutine aggregates. The catalogue (catalogue.go) reads only the
// published views and rebuilds its index on the goroutine of the query that
// finds it stale. There is no mutex on the purchase path (the views'
// map takes one when a new sale is created).
package engine
