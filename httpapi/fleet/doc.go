// Package fleet runs onsale on several nodes: sales are split into a fixed
// number of partitions, each with its own replicated log (wal/jetstream,
// named onsale_p<N>), and each partition is served by the one node holding
// its lease.
//
// # Ownership
//
// A sale's partition is a hash of its id modulo Options.Partitions; it
// never changes, so the partition count is fixed for the life of a fleet.
// Leases live in the JetStream key-value bucket onsale_leases, one key per
// partition (p<N>), whose value is the owner's address. The bucket's TTL is
// the lease: a key not renewed within it expires, and only then can another
// node create it (kv.Create fails while it exists). The owner renews every
// third of the lease with a compare-and-set on the key's revision.
//
// A node holds at most one partition. Acquire tries its preferred
// partition, then every other, until one is free; a node that finds all
// held is a standby and keeps trying (every AcquireEvery, 100 ms), so that
// it takes over the partition of an owner that dies. The lease's requests
// go on a connection of their own (Options.LeaseConn), so that a renewal
// never queues behind a takeover's log or anything else.
//
// A standby is hot (Standby, standby.go): while it waits it follows the
// partitions it may take over, each restored from its snapshot and kept at
// the log's end with jetstream's Follow into an engine.Follower, recounted
// when the log is quiet (at most every 10 s). Taking over means opening
// the partition's journal, which fences the old owner's appends, and
// replaying only the entries written after the last one followed
// (Follower.Promote); a partition not followed, or not yet loaded, is
// replayed cold: its newest snapshot and the log behind it.
//
// # Stopping before the lease ends
//
// Valid reports whether the lease is certainly still held: until three
// quarters of the lease after the start of the last renewal that
// succeeded (the server's expiry counts from when it stored the renewal,
// which is later). The router refuses the partition's requests (503) as
// soon as Valid is false, before any renewal has failed, so a node paused
// past its lease (SIGSTOP, a long GC, a partition from the cluster) does not
// answer when it resumes. If a renewal fails, OnLost runs (main exits the
// process). Appends the old owner had in flight are refused by the
// journal's fence, so it never acknowledges a purchase the new owner does
// not have.
//
// # Routing
//
// Route runs before the API's routes: a request for a sale (/v1/sales/{id},
// /v1/admin/sales/{id}, /v1/orders/{order id} and /v1/admin/orders/{order
// id}: order ids carry their sale) of a partition this node does not own
// is forwarded to the owner (a reverse proxy with fasthttp's HostClient),
// marked with the Onsale-Forwarded header; a forwarded request that finds
// no owner is answered 503 rather than forwarded again.
//
// Routes that span sales are fanned out (fanout.go): the node asks every
// partition's owner at once, marking each request with Onsale-Fanout (the
// owner answers from its own engine, never fanning out again), and merges
// the lists in the order one node lists them. Paged lists (the catalogue,
// the audit log) carry the fleet's cursor, one partition cursor each; a
// partition of which only part of a page was taken is asked once more for
// exactly that part, so the fleet never builds a partition's cursor. The
// catalogue's merged answers are kept 1 s per query (its Cache-Control).
// sales:load is split by partition; a check-in and onsale's payment
// notification go to the partition of the sale their body names, a
// payment provider's notification to the partition of the order it names
// (providers.go: read by httpapi once verified, since WeChat Pay's is
// encrypted). A webhook endpoint's delivery log is merged from every
// partition's, and a redelivery goes to the partition its id names
// (deliveries.go). A view
// every node keeps from JetStream was not chosen: it means replaying every
// partition's log on every node. Routes that name no sale (users and
// sessions, webhooks, credentials, follows) go to partition 0's owner, the
// home node.
//
// # Notifications
//
// With -fleet-notify (on by default), the partition's owner runs
// httpapi/notify on its partition with Outbox (outbox.go) as its store:
// the log read back through the journal's tailing read (Tail: from where
// the last read stopped, acknowledged entries only, without the lock the
// shard's appends take); the notifier's keys in the key-value bucket
// onsale_outbox_p<N>, written data first, cursors second, deletions last,
// so a standby that takes the partition over resumes from the cursors
// (at least once, the same ids). Webhook endpoints live in partition 0's
// log; its owner shares them through the bucket onsale_fleet (Webhooks).
// Follows live there too; the owners of the other partitions ask it for
// the followers of their sales' event.on_sale over NATS (follows.go).
// An exchange into a session of another partition runs each of its steps
// in the shard of the sale it concerns: a step of a sale this node does
// not hold is a NATS request on onsale.fleet.xsession.p<N>, answered only
// by that partition's lease holder (exchanges.go, engine.ExchangeRemote).
// The steps are idempotent, so one asked again after a lost answer
// decides nothing twice; a lost answer is ErrStopped, never a refusal,
// which would undo the exchange.
//
// # Restoring on one node
//
// Restore (restore.go) reads every partition's log and writes one
// single-node log: the engine opened on the partitions' shards side by
// side repartitions them into its own.
//
// # Threading
//
// Route and Valid are called from fasthttp's workers; the owner table is an
// immutable slice swapped atomically by the key-value watcher goroutine,
// the lease deadline an atomic. The renewer is one goroutine per Fleet. A
// Standby runs a goroutine per followed partition and one per shard of it,
// each the only caller of its shard's Follower; Promote stops them all
// first.
package fleet
