// Package payments verifies payment providers' notifications and maps each
// to one Event: the order it pays, the amount in minor units, the currency,
// the provider's transaction id and whether the payment succeeded or failed.
// It owns the providers' wire formats (Stripe webhooks, Alipay async notify,
// WeChat Pay API v3 notifications, UnionPay back notifications, version
// 5.1.0) and nothing else: no engine, no HTTP server, no state. httpapi's
// providers.go hands it the raw request and gives the Event to the engine.
//
// # Invariants
//
//   - Verification comes first and covers the raw bytes: a signature (and a
//     certificate chain, a timestamp window, a decryption) is checked before
//     any field of the body is read as data. A request that fails any check
//     returns an *Error with a stable Code, and no Event.
//   - Amounts never pass through floating point: decimal strings ("19999.99"
//     yuan) are parsed digit by digit into int64 minor units, and anything
//     but plain digits with at most two decimals is refused.
//   - Event ids are the provider's transaction id, prefixed with the
//     provider: the same transaction notified twice (providers retry, and
//     send a second notification when a trade is finished or refunded)
//     applies once. A failure gets its own id (":failed" appended), so that
//     a success that follows it on the same transaction is never mistaken
//     for a replay of the failure.
//   - Every input is bounded: bodies by the HTTP server, fields by the
//     parsers here (ids, header items, form fields, certificate size).
//
// There is no replay cache of nonces or signatures: a replay within the
// timestamp window carries a transaction id the engine has applied already,
// so it changes nothing.
//
// # Threading
//
// Verifiers are immutable after New*/Load and safe for concurrent use by
// any number of goroutines. They read the clock only through the now
// argument the caller passes.
package payments
