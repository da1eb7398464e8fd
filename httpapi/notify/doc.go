// Package notify delivers onsale's notifications beside the shards: a
// durable outbox of order and ticket events, webhook endpoints that get
// each of them at least once, signed, and email to buyers over SMTP.
//
// # The outbox is derived from the log
//
// The engine writes no extra record for a notification: every event it
// already logs (OrderPlaced, OrderPaid, OrderExpired, TicketAdmitted, ...)
// is the notification, in the same log entry as the decision by
// construction, and the purchase path pays nothing for it but one atomic
// store and one non-blocking channel send per synced entry
// (engine/outbox.go). The reader goroutine here, woken by that send, reads
// each shard's newly synced entries back from the log (wal.Log.Replay, up
// to engine.DurableSeq), turns the notifications some consumer wants into
// records, reads the orders they name with one command per shard and
// round, and writes the records and the per-shard cursors in one batch to
// its own keys (wal aux keyspace 'N', store.go), at most every RoundMin
// (20 ms), without a sync of its own: the shards' appends sync the log
// continually, and BeforeTruncate syncs before any log may go:
//
//	"nc" shard → seq      entries read into the outbox
//	"no" pos   → record   the outbox, by position (id, kind, body)
//	"ne" id    → pos      an endpoint's next position
//	"nm"       → pos      the email sender's next position
//	"nd" id pos → delivery the endpoint's delivery log (newest DeliveriesKept)
//
// # Truncation never loses a notification
//
// A snapshot deletes its shard's log behind it. Before it does, the
// snapshot writer calls BeforeTruncate, which returns only once the
// reader's synced cursor for that shard has reached the snapshot's seq
// (or false once the notifier is closed: that snapshot is skipped and the
// log kept, as at shutdown). So an entry is deleted only after its records are in the outbox, and a
// crash at any point leaves either the entry in the log (read again after
// the restart: its records get the same ids) or its records in the outbox.
// A slow reader delays snapshots (the log on disk grows), never a
// purchase. Records stay until every consumer has passed them, however
// long a receiver is down; that costs disk, bounded by the traffic of the
// outage.
//
// # Delivery
//
// Each endpoint has one worker that delivers in outbox order, one
// notification at a time: the next is sent only after the receiver
// accepted the one before (2xx). A receiver therefore sees one shard's
// notifications in decide order (a sale's orders are all on one shard), and
// a failing receiver holds back only its own endpoint. Workers share a
// bound of Concurrency requests in flight. A failed attempt is retried
// after a full-jitter backoff, a uniform draw below
// min(BackoffMax, BackoffBase·2^attempt), forever: nothing is dropped,
// and after a receiver's outage of an hour the backlog drains at its pace.
// The cursor and the delivery log are buffered and written together, at
// most every 100 ms, without a sync (every byte and commit in the shared
// log is also on the purchases' fsyncs): a crash can send the last few
// again, so delivery is at least once and receivers dedupe by the id ("evt_<shard>_<seq>_<index>", stable across retries, redeliveries
// and restarts; also in the Onsale-Event-Id header).
//
// Each request carries Onsale-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
// "<t>.<body>"> under the endpoint's secret, the scheme onsale's own
// payment webhook verifies. Secrets are stored in the log sealed
// (AES-256-GCM, a key derived from the data key, the endpoint id as
// associated data).
//
// # Yielding to buyers
//
// While the shards sync Config.BusyAbove log entries a second or more
// (a rush), deliveries start at most Config.BusyRate a second over all
// consumers, and the reader reads the log only as far as those need (or
// all of it when a snapshot waits in BeforeTruncate); the rest waits in
// the log and is read and delivered once the rush is over (pace.go).
// Order and at-least-once are unchanged: only the time of the next read
// and of the next delivery move.
//
// # Email
//
// With SMTPConfig.Addr set, one more consumer mails the buyer (the address
// in the profile, Sources.EmailOf): a confirmation on order.created and
// the tickets as a PDF (Sources.TicketsPDF) on order.paid. A temporary
// failure is retried with the same backoff; a permanent refusal (5xx) and
// a buyer without an address are counted and skipped.
//
// # Follows
//
// event.on_sale (onsale.go): the creation entry of a sale with a
// catalogue is its announcement; the reader notices its opening itself
// (opens_at passed) and writes that record; the email worker mails each
// record to the buyers who follow the sale's event, venue or category
// (engine.Followers), once per buyer, resuming after the last one mailed.
// On a fleet node of another partition than the home one, the follows are
// the home partition's, and Config.Followers asks its owner
// (httpapi/fleet follows.go).
//
// # Threading
//
// One reader goroutine owns the outbox's head and the shard cursors; one
// worker per endpoint and one email worker own their cursors. mu guards
// the maps and numbers they share; no lock is held across I/O. Durable and
// BeforeTruncate are called from the engine's goroutines; the HTTP
// handlers call SealSecret, Deliveries and Redeliver.
package notify
