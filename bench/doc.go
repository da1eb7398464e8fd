// Package bench is onsale's load harness: it starts each system on
// loopback (onsale built from this tree, a bare fasthttp ceiling, a
// Redis+Lua shim with and without fsync, a PostgreSQL shim), drives them
// one after the other with the same scenario (flash, steady, soak) in a
// closed or open loop, records latency in HDR histograms, audits what the
// server says it sold, and writes a terminal table, JSON, Markdown and PNG
// charts.
//
// Layout: api/ is the only HTTP client; shim/ holds the baseline servers;
// this package holds the load loops (load.go, pacing.go), the recorder
// (recorder.go), scenarios, the audit (audit.go), the systems under test
// (system*.go) and the report. cmd/onsale-bench is the CLI. reliability/
// (with cmd/onsale-kill) is the other ops tool: kill -9 under load and a
// linearizability check; it shares api/ and nothing else.
//
// Threading: the load loops run one goroutine per client (closed loop) or
// per in-flight slot (open loop). Each goroutine records into one of a few
// mutex-guarded recorder shards; the sampler goroutine swaps the shards'
// interval counters once per interval. Everything else runs on the caller's
// goroutine. Traffic goes to loopback addresses only (api.CheckLoopback).
package bench
