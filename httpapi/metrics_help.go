package httpapi

import (
	"bytes"
	"strings"
)

// metricHelp describes every metric family /metrics writes: onsale's own,
// whichever package registers them (engine, wal, httpapi, main), and the Go
// runtime and process families the metrics library writes. The library
// writes "# HELP <family>" with no text; describeMetrics fills the text in
// from here.
//
// One table, here rather than one per package: /metrics is this package's
// page and its families are a contract with the dashboards and alerts in
// deploy/, so they are described where the page is written and tested
// (metrics_page_test.go fails on a family without text). engine and wal
// name their metrics but need not know how an operator reads them.
//
// A family added anywhere must get a line here, or that test fails.
var metricHelp = map[string]string{
	// engine
	"onsale_stage_seconds":             "Time requests spend in each engine stage (inbox_wait, decide, commit_wait, append, sync_wait, answer), observed once per batch or log append.",
	"onsale_engine_overloaded_total":   "Requests refused at once because their shard's inbox was full (429/503 overloaded), by shard.",
	"onsale_engine_shed_total":         "Requests dropped by a shard because they had waited in its inbox past their deadline, by shard.",
	"onsale_engine_log_append_seconds": "Time from a shard's log append starting to the sync that made it durable, by shard.",
	"onsale_engine_log_append_batches": "Shard batches carried by one log append, by shard.",
	"onsale_engine_inbox_depth":        "Commands waiting in a shard's inbox, by shard.",
	"onsale_engine_inbox_capacity":     "Commands a shard's inbox holds (-inbox-max); beyond it requests get 429 overloaded.",
	"onsale_engine_holds_outstanding":  "Pending orders holding stock until paid, cancelled or expired, by shard.",
	// engine/archive.go
	"onsale_archived_sales":            "Sales moved out of memory to disk (archived), all shards.",
	"onsale_archived_orders":           "Orders of the archived sales, all shards: orders on disk, not in memory.",
	"onsale_archive_seconds":           "Time an archive request took, from the request to its durable answer (the sale's state written with its log entry).",
	"onsale_unarchive_seconds":         "Time an unarchive took: reading the sale back from disk and applying it in its shard, to the durable answer.",
	"onsale_archive_late_writes_total": "Writes (late payments, refunds, cancels, counter payments) that brought an archived sale back to memory.",

	// wal
	"onsale_wal_appends_total":  "Appends to the write-ahead log.",
	"onsale_wal_append_entries": "Entries (shard batches) per write-ahead log append.",
	"onsale_wal_append_bytes":   "Bytes per write-ahead log append.",
	"onsale_wal_sync_seconds":   "Time of a write-ahead log commit with its fsync; every acknowledged write waits for one.",

	// httpapi/notify
	"onsale_webhook_backlog":          "Outbox positions the webhook endpoints have not passed yet, summed over endpoints (notifications waiting for delivery or being retried).",
	"onsale_webhook_endpoint_backlog": "Outbox positions one webhook endpoint has not passed yet, by endpoint id.",
	"onsale_webhook_deliveries_total": "Webhook delivery attempts by outcome: ok (2xx), http_error (another status), network_error (no answer).",
	"onsale_webhook_delivery_seconds": "Time of one webhook delivery attempt, from request to the receiver's answer.",
	"onsale_email_sent_total":         "Emails to buyers by outcome: ok, error (retried unless refused for good), no_address (the buyer has no email in the profile).",
	"onsale_webhook_paced":            "1 while the engine is busy (-notify-busy-above log entries synced in the last second) and webhook and email delivery yields to buyers (-notify-busy-rate deliveries a second); 0 otherwise.",
	"onsale_outbox_lag":               "Synced log entries the notifier has not read into the outbox yet, over all shards (grows while delivery yields to a rush, read after it).",
	"onsale_outbox_records":           "Notifications kept in the outbox until every consumer (webhook endpoints, email) has passed them.",
	"onsale_follows":                  "Follows of events, venues and categories held by buyers (POST /v1/me/follows), in all.",
	"onsale_follow_emails_total":      "event.on_sale emails to followers by outcome: ok, error (retried unless refused for good), no_address (the buyer has no email in the profile).",

	// main
	"onsale_disk_free_bytes":     "Bytes free for the write-ahead log's filesystem; below onsale_disk_free_min_bytes writes are refused.",
	"onsale_disk_free_min_bytes": "The -min-free-disk setting: below this many free bytes writes are refused (503) and /readyz is red.",

	// httpapi
	"onsale_http_requests_total":              "HTTP requests answered, by route and status.",
	"onsale_http_request_duration_seconds":    "Time from a request read to its answer written, by route.",
	"onsale_purchases_total":                  "Purchase requests by outcome: created, replayed (same Idempotency-Key), or the problem code answered.",
	"onsale_http_panics_total":                "Handler panics recovered and answered with 500 internal.",
	"onsale_duplicate_charges_total":          "Successful payments recorded on an order they did not pay for (money to give back), once per event id.",
	"onsale_refund_requests_total":            "Buyers' refund requests by outcome: refunded (approval auto), requested (approval admin; asking again counts again), or the problem code answered.",
	"onsale_exchanges_total":                  "Buyers' exchanges by outcome: exchanged (a repeat counts again), or the problem code answered.",
	"onsale_http_rate_limited_total":          "Requests refused with 429 rate_limited by a buyer's token bucket, by route.",
	"onsale_box_office_sales_total":           "Orders sellers made at a box office.",
	"onsale_credentials_active":               "Staff and seller credentials neither revoked nor expired.",
	"onsale_live_streams":                     "Open GET /v1/sales/{sale_id}/live streams (at most -live-max-streams).",
	"onsale_payments_unmatched_total":         "Payment provider notifications for an order onsale does not know, by provider: money to find by hand.",
	"onsale_payments_mismatch_total":          "Successful provider payments whose amount or currency differs from the order's, by provider: recorded as payment_mismatch refunds to send back.",
	"onsale_refund_attempts_total":            "Refund calls the refund worker made to a provider, by provider and the payout's status after the answer (refunded, refund_failed, refund_pending: to retry).",
	"onsale_payments_refunds_unapplied_total": "Refunds made at a payment provider (its dashboard or API), acknowledged and logged but not applied to the order, by provider.",
	"onsale_user_rate_evictions_total":        "Buyers dropped from the full rate table; refilled=false lost a bucket that was not full.",
	"onsale_user_rate_buyers":                 "Buyers in the per-buyer rate table.",

	// The Go runtime, as the metrics library writes it.
	"go_sched_latencies_seconds":          "Time goroutines waited runnable before running.",
	"go_mutex_wait_seconds_total":         "Time goroutines spent blocked on sync.Mutex and sync.RWMutex.",
	"go_gc_mark_assist_cpu_seconds_total": "CPU time goroutines spent helping the garbage collector mark.",
	"go_gc_cpu_seconds_total":             "CPU time spent in the garbage collector.",
	"go_gc_pauses_seconds":                "Stop-the-world pauses of the garbage collector.",
	"go_scavenge_cpu_seconds_total":       "CPU time spent returning memory to the operating system.",
	"go_memlimit_bytes":                   "The Go runtime's soft memory limit (GOMEMLIMIT).",
	"go_memstats_alloc_bytes":             "Bytes of heap objects allocated and not yet freed.",
	"go_memstats_alloc_bytes_total":       "Bytes of heap objects allocated since start.",
	"go_memstats_buck_hash_sys_bytes":     "Bytes used by the profiling bucket hash table.",
	"go_memstats_frees_total":             "Heap objects freed since start.",
	"go_memstats_gc_cpu_fraction":         "Share of CPU time used by the garbage collector since start.",
	"go_memstats_gc_sys_bytes":            "Bytes used for garbage collection metadata.",
	"go_memstats_heap_alloc_bytes":        "Bytes of heap objects allocated and not yet freed.",
	"go_memstats_heap_idle_bytes":         "Bytes of heap spans with no objects.",
	"go_memstats_heap_inuse_bytes":        "Bytes of heap spans with at least one object.",
	"go_memstats_heap_objects":            "Heap objects allocated and not yet freed.",
	"go_memstats_heap_released_bytes":     "Bytes of heap returned to the operating system.",
	"go_memstats_heap_sys_bytes":          "Bytes of heap obtained from the operating system.",
	"go_memstats_last_gc_time_seconds":    "When the last garbage collection ended, in seconds since the epoch.",
	"go_memstats_lookups_total":           "Pointer lookups by the runtime since start.",
	"go_memstats_mallocs_total":           "Heap objects allocated since start.",
	"go_memstats_mcache_inuse_bytes":      "Bytes of mcache structures in use.",
	"go_memstats_mcache_sys_bytes":        "Bytes of mcache structures obtained from the operating system.",
	"go_memstats_mspan_inuse_bytes":       "Bytes of mspan structures in use.",
	"go_memstats_mspan_sys_bytes":         "Bytes of mspan structures obtained from the operating system.",
	"go_memstats_next_gc_bytes":           "Heap size at which the next garbage collection starts.",
	"go_memstats_other_sys_bytes":         "Bytes of other runtime allocations.",
	"go_memstats_stack_inuse_bytes":       "Bytes of goroutine stacks in use.",
	"go_memstats_stack_sys_bytes":         "Bytes of goroutine stacks obtained from the operating system.",
	"go_memstats_sys_bytes":               "Bytes obtained from the operating system by the Go runtime.",
	"go_cgo_calls_count":                  "Calls from Go to C since start.",
	"go_cpu_count":                        "CPUs usable by the process.",
	"go_gc_duration_seconds":              "Quantiles of garbage collection pause times.",
	"go_gc_forced_count":                  "Garbage collections forced by the application (runtime.GC).",
	"go_gomaxprocs":                       "GOMAXPROCS: the goroutines that may run at once.",
	"go_goroutines":                       "Goroutines that exist.",
	"go_threads":                          "Operating system threads the Go runtime created.",
	"go_info":                             "The Go version the binary was built with.",
	"go_info_ext":                         "The Go compiler, OS, architecture and GOROOT of the build.",

	// The process, as the metrics library reads it from /proc (Linux).
	"process_cpu_seconds_system_total":              "CPU time spent in the kernel on behalf of the process.",
	"process_cpu_seconds_total":                     "CPU time of the process, user and system.",
	"process_cpu_seconds_user_total":                "CPU time spent in user space.",
	"process_major_pagefaults_total":                "Page faults that needed a disk read.",
	"process_minor_pagefaults_total":                "Page faults served from memory.",
	"process_num_threads":                           "Operating system threads of the process.",
	"process_resident_memory_bytes":                 "Resident set size (RSS).",
	"process_start_time_seconds":                    "When the process started, in seconds since the epoch.",
	"process_virtual_memory_bytes":                  "Virtual memory size.",
	"process_virtual_memory_peak_bytes":             "Highest virtual memory size so far.",
	"process_resident_memory_peak_bytes":            "Highest resident set size so far.",
	"process_resident_memory_anon_bytes":            "Resident anonymous memory (heap, stacks).",
	"process_resident_memory_file_bytes":            "Resident file-backed memory.",
	"process_resident_memory_shared_bytes":          "Resident shared memory.",
	"process_io_read_bytes_total":                   "Bytes the process read, caches included.",
	"process_io_written_bytes_total":                "Bytes the process wrote, caches included.",
	"process_io_read_syscalls_total":                "Read system calls.",
	"process_io_write_syscalls_total":               "Write system calls.",
	"process_io_storage_read_bytes_total":           "Bytes the process read from storage.",
	"process_io_storage_written_bytes_total":        "Bytes the process caused to be written to storage.",
	"process_pressure_cpu_waiting_seconds_total":    "Time some of the cgroup's tasks waited for a CPU (pressure stall information).",
	"process_pressure_cpu_stalled_seconds_total":    "Time all of the cgroup's tasks waited for a CPU (pressure stall information).",
	"process_pressure_io_waiting_seconds_total":     "Time some of the cgroup's tasks waited for I/O (pressure stall information).",
	"process_pressure_io_stalled_seconds_total":     "Time all of the cgroup's tasks waited for I/O (pressure stall information).",
	"process_pressure_memory_waiting_seconds_total": "Time some of the cgroup's tasks waited for memory (pressure stall information).",
	"process_pressure_memory_stalled_seconds_total": "Time all of the cgroup's tasks waited for memory (pressure stall information).",
	"process_cgroup_cpu_throttled_seconds_total":    "Time the cgroup was throttled by its CPU quota.",
	"process_max_fds":                               "Open file descriptors the process may have.",
	"process_open_fds":                              "Open file descriptors.",
}

var helpPrefix = []byte("# HELP ")

// describeMetrics copies a page written with metadata on (which has
// "# HELP <family>" lines with no text) to out, with each family's text from
// metricHelp. A family without one keeps its empty HELP line.
func describeMetrics(out, page []byte) []byte {
	for len(page) > 0 {
		line, rest, _ := bytes.Cut(page, []byte{'\n'})
		page = rest
		out = append(out, line...)
		if family, ok := bytes.CutPrefix(line, helpPrefix); ok && bytes.IndexByte(family, ' ') < 0 {
			if text := metricHelp[string(family)]; text != "" {
				out = append(append(out, ' '), escapeHelp(text)...)
			}
		}
		out = append(out, '\n')
	}
	return out
}

// escapeHelp escapes a HELP text as the text format requires.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
