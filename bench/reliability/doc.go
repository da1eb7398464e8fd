// Package reliability checks onsale's promises from the outside: that an
// acknowledged answer survives kill -9, that nothing is oversold, and that
// an idempotency key makes at most one order, across crashes.
//
// # What it owns
//
// Run (and the onsale-kill command over it, in bench/cmd) starts the onsale
// binary (built from this module with `go build`, or a given path) on a data
// directory, and for each of N rounds: creates a new sale (two tiers), drives
// concurrent buyers over HTTP on 127.0.0.1 (purchase; then cancel, pay
// through the signed webhook, or keep pending; 5% of purchases resend a key
// sent before, from any round), SIGKILLs the server after a seeded random
// number of answers (mid-sell, after the sale ran dry, or after the load),
// restarts it on the same directory, measures restart-to-ready (exec until
// GET /readyz answers 200), resends every purchase the kill left
// unanswered, and verifies the ledger of 2xx answers of every round so far
// against the server:
//
//   - every acknowledged order is in its sale's admin export, with its tier,
//     quantity, buyer, and a status it may have (the last acknowledged one
//     or a change sent without an answer): else lost or changed;
//   - every tier has held + sold <= stock, and counts equal to its orders;
//   - a key's retries return its acknowledged order, and no (sale, user) has
//     more orders than keys it sent: else a duplicate key.
//
// Preload fills the log with N orders before the first start, to measure
// restart-to-ready with a large log. It opens the wal and the engine on the
// data directory exactly as main.go does and calls Engine.Purchase from 512
// goroutines (the shards batch them into few synced writes): it writes the
// same records as the server, much faster than HTTP. The preloaded orders
// are checked in aggregate every round (the preload sale holds all of them).
//
// linearizability_test.go checks with porcupine that purchases, cancels and
// availability reads of one tier, through the real engine on a real wal,
// are linearizable against a sequential model of the tier.
//
// # Running it
//
//	go run ./bench/cmd/onsale-kill -rounds 50                   # -seed N replays a run
//	go run ./bench/cmd/onsale-kill -preload 1000000 -rounds 3
//	go test ./bench/reliability/                                # 3 kill rounds, porcupine, controls
//	go test ./bench/reliability/ -run Linearizable -lin-rounds 300  # long porcupine form
//
// Each round prints when the kill came, the orders acknowledged, the keys
// retried and restart-to-ready (with the server's own log-open and recovery
// times and how many orders it recovered); the summary counts lost, changed,
// oversold, miscounted and duplicate keys, and the command exits 1 if any is
// not 0. HTTP goes through bench/api's client, the one the load harness
// uses. TestLedgerCatchesViolations and the porcupine negative controls show
// that the checks can fail.
//
// # Threading
//
// Run is called from one goroutine, which owns the server process and the
// rounds. A round's workers share the ledger (guarded by its mutex) and the
// round's atomic counters; the driver reads the ledger only after every
// worker has stopped. Every loop is bounded in count and time: workers by
// their purchase count and the round deadline, start-up by listenWaitMax
// and readyPollsMax, requests by the client timeout.
package reliability
