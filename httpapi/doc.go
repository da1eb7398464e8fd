// Package httpapi is onsale's HTTP service: the fasthttp server, its routes,
// authentication (admin and door bearer tokens, staff and seller
// credentials scoped to sales, buyer JWTs, the payment provider's webhook
// signature; the providers' own notifications through httpapi/payments,
// providers.go), JSON in and out, errors as
// application/problem+json, limits, metrics, health and the OpenAPI
// document. It owns no state of its own besides user accounts, which it
// keeps in a UserStore (the wal's metadata store); every sale, order and
// ticket lives in the engine.
//
// # One request
//
//	fasthttp worker ── body limit from the head, before the body is read
//	                   (the load route's larger one only with the admin token)
//	                ── route (path split, no allocations)
//	                ── CORS: headers for listed origins, preflights answered
//	                ── the gate (ready.go): every API route 503 until the engine
//	                   is attached after recovery; writes 503 while disk is low
//	                ── authenticate (constant-time token compare; stf_/sel_ tokens by
//	                   keyed hash in the engine's published credential table,
//	                   never cached; cached JWT verification)
//	                ── authorise: the route's roles, then the sale of a staff
//	                   or seller credential (principal.allowsSale)
//	                ── purchases and cancels: the buyer's token bucket (429 rate_limited)
//	                ── decode the body (strict JSON: unknown, duplicate and
//	                   case-variant members are errors)
//	                ── engine call with a deadline ── durable answer
//	                   (a sale's availability: its published view, no shard)
//	                ── write JSON (orders and sales by hand, without reflection;
//	                   a sale's public answer once per published view, kept
//	                   with the view with its ETag: saleread.go)
//
// Ticket codes are signed and verified here, never in a shard: the private
// keys are derived from Config.DataKey per sale and key id (tickets.go) and
// kept in memory only; a scan's signature is checked before the engine
// sees it, so a forged or malformed code costs no shard time.
//
// Reports and exports (reports.go, exports.go) are admin reads of whole
// sales. A report is added up on the request's goroutine from a view the
// engine froze in one short shard visit; the rush chart is drawn by
// httpapi/reportchart. orders.csv and attendees.csv stream: the body
// writer asks the engine for one page of orders at a time and writes it
// before it asks for the next, so memory stays one page whatever the
// sale's size, and it moves the write deadline before each page.
// Prices, packages and coupons are the engine's rules (engine/pricing.go,
// packages.go, coupons.go): httpapi only reads and writes their JSON
// (pricing.go, coupons.go). A purchase body's optional coupon is read by the
// hand parser; a plain purchase allocates nothing more for it.
// Personal data stops here (realname.go, profile.go): an attendee's
// document reaches the engine as an HMAC under a key derived from
// Config.DataKey and its last 4 characters, a name or a profile's email and
// phone only sealed with AES-256-GCM (sealData) under other derived keys.
// Buyer tokens from the site's identity provider (oidc.go) are verified
// with go-jose against its JWKS, with fixed algorithms bound to the key
// types, and enter the same token cache as HS256 ones.
//
// Errors are mapped from engine codes to HTTP statuses in one table
// (problem.go); each code is stable and named in the OpenAPI document.
//
// # Metrics
//
// /metrics writes every family of the process (engine, wal, main, this
// package, the Go runtime) with a # HELP text from one table,
// metrics_help.go, and a # TYPE; histograms are Prometheus histograms (le
// buckets). A metric registered without a line in that table fails
// TestMetricsPageIsPrometheusText here and the deploy/ test in package
// main, which also checks that the Grafana dashboard and alert rules name
// only series that exist. Label values are created when they can happen:
// counters for rare outcomes are registered at their first use.
//
// # Threading
//
// Handlers run on fasthttp's worker goroutines, any number at once. A handler
// never keeps the *fasthttp.RequestCtx or any byte slice from it after it
// returns: fasthttp reuses both for the next request. A streamed body
// (live.go, exports.go) is written on a goroutine fasthttp gives it, from
// copies taken before the handler returned, and the connection. Everything handed to
// the engine is copied first (string(b) copies). A panic in a handler is
// recovered, logged with its stack and answered with 500 internal; the
// server keeps running. The only locks are the token cache's and the
// per-buyer rate table's (both sharded) and the one that serialises
// registrations; the purchase path takes the first two, briefly.
package httpapi
