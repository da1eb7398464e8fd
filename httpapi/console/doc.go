// Package console is the web page for admins, ops and door staff, served
// by onsale itself at /console/: plain ES modules, a stylesheet and one
// HTML page, embedded with go:embed, so the binary needs no Node toolchain
// and the page works on a closed network (no CDN, no remote fonts).
//
// The page is a client of the public API and nothing more: it has no
// route of its own besides its files, and every figure it shows comes from
// an API answer, the live stream (GET /v1/sales/{id}/live) or /metrics.
// It keeps the token the user typed in sessionStorage and sends it as a
// bearer header, never in a URL and never as a cookie, so a state change
// cannot be forged by another site (no ambient credential to ride on).
//
// Serve answers one file per request from memory with a strict
// Content-Security-Policy: scripts, styles, images and connections from
// the page's own origin only (images also from blob: URLs, for the rush
// chart the page fetches with its token), no inline script or style, no
// frames, no form posts. It owns no state besides the embedded files and
// is safe for concurrent use.
package console
