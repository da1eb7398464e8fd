// Package payouts sends refunds: the worker that gives money back through
// the payment provider that took it. It runs beside the shards, never in
// one: it reads the engine's payouts (engine.Payouts, each a refund
// obligation the engine recorded in the same log entry as the decision
// that created it), calls the provider's refund API through a
// payments.Refunder, and logs each answer through the engine
// (engine.UpdatePayout) into the owner shard. It keeps no state of its own:
// after a restart, the log says which payouts are still pending, and those
// are sent again.
//
// # Invariants
//
//   - One refund, one key: every attempt of a payout carries the same
//     idempotency key (RefundKey of the payout id: Stripe's
//     Idempotency-Key, Alipay's out_request_no, WeChat Pay's
//     out_refund_no, UnionPay's orderId), so a call whose answer was lost, or that was sent
//     again after a crash, is the same refund to the provider.
//   - An answer is logged with the attempt count it was read at; a stale
//     answer (an admin settled the payout meanwhile) changes nothing.
//   - Temporary failures are retried with exponential backoff and full
//     jitter, up to AttemptsMax; then the payout is refund_failed with the
//     last reason, and an admin retries it or settles it by hand.
//   - Accepted is not refunded: a refund the provider accepted without
//     finishing it (payments.RefundAccepted) stays pending with the
//     provider's refund id, and from then on the worker only asks the
//     provider how it ended (Refunder.QueryRefund), with the same backoff,
//     never giving up and never sending it again, until the provider says
//     done (refunded), failed (refund_failed, its reason), or that it has
//     no such refund (sent again, same key). The provider's notification
//     may end it first (engine.ConfirmPayout, from httpapi/providers.go).
//   - Automatic payouts (duplicate charges, mismatched and late payments)
//     go out only when Auto is set; otherwise they wait for an admin's
//     retry. Admin refunds always go out.
//
// # Threading
//
// Run is one goroutine; it sends one refund at a time, so a provider sees
// at most one call per server at once. Wake may be called from any
// goroutine.
package payouts
