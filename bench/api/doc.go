// Package api is the one place where the bench harness speaks onsale's HTTP
// API (issue 3): the wire types, a typed client on fasthttp, token minting
// and webhook signing. The harness drives every system through it, and the
// shims in bench/shim encode the same types, so a field the lead renames is
// changed here and nowhere else.
//
// A Client is safe for concurrent use. Its hot-path methods (Purchase,
// Cancel, Webhook, GetSale) return a Result that never holds the response
// buffer: fasthttp reuses it.
package api
