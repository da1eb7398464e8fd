// Package bench is onsale's load harness: it starts each system on
// loopback (onsale built from this tree, a bare fasthttp ceiling, a
// Redis+Lua shim with and without fsync, a PostgreSQL shim), drives them
// one after the other with the same scenario (flash, sustained, steady,
// soak; door, check-ins, on onsale alone) in a closed or open loop, records latency in HDR histograms and
// the CPU time of the server and of itself, reads onsale's per-stage
// latency histograms from its /metrics, audits what the server says it
// sold, and writes progress lines, a terminal table, JSON, Markdown and
// PNG charts.
//
// Layout: api/ is the only HTTP client; shim/ holds the baseline servers;
// this package holds the load loops (load.go, pacing.go), the recorder
// (recorder.go), scenarios (scenario*.go), the per-interval sampler and
// progress lines (sampler.go), the measured phase's CPU and stage figures
// (phase.go, cpu.go, stages.go), the audit (audit.go), the systems under
// test (system.go, process.go; fleet.go: onsale as a fleet, with three
// JetStream servers that are re-runs of the harness itself), the failover
// measurement (failover.go) and the report (report*.go, chart.go).
// cmd/onsale-bench is the CLI. reliability/ (with cmd/onsale-kill) is the
// other ops tool: kill -9 under load and a linearizability check; it shares
// api/ and nothing else.
//
// Threading: the load loops run one goroutine per client (closed loop) or
// per in-flight slot (open loop). Each goroutine records into one of a few
// mutex-guarded recorder shards; the sampler goroutine swaps the shards'
// interval counters once per interval; the phase meter's goroutine takes
// the start readings at the measurement start and hands them over by
// closing a channel; a fleet run's per-node meter does the same. The
// round-robin proxy (fleet.go, when HAProxy is missing) runs a goroutine
// per connection direction. Everything else runs on the caller's goroutine.
// Traffic goes to loopback addresses only (api.CheckLoopback).
package bench
