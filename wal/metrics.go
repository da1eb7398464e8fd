package wal

import "github.com/VictoriaMetrics/metrics"

// The log's histograms are Prometheus histograms (cumulative le buckets),
// which histogram_quantile reads. Their bucket bounds follow what each
// measures.
var (
	// appendEntriesBounds: an Append carries one entry per shard batch, a
	// handful at most; powers of 2 up to 1024 leave room for bulk loads.
	appendEntriesBounds = metrics.ExponentialBuckets(1, 2, 11)
	// appendBytesBounds: powers of 2 from 64 B (one small record) to
	// 64 MiB (the memtable's size, past which Pebble flushes).
	appendBytesBounds = metrics.ExponentialBuckets(64, 2, 21)
	// syncSecondsBounds: 1, 1.5, 2, 3, 4, 6 and 8 per decade from 10 µs to
	// 10 s. A sync is 50 µs on a fast SSD, milliseconds on a cloud volume
	// and seconds on a disk in trouble; a bucket is at most 1.5 times its
	// lower bound, so a p99 read from it means something.
	syncSecondsBounds = []float64{
		1e-05, 1.5e-05, 2e-05, 3e-05, 4e-05, 6e-05, 8e-05,
		0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0006, 0.0008,
		0.001, 0.0015, 0.002, 0.003, 0.004, 0.006, 0.008,
		0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08,
		0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8,
		1, 1.5, 2, 3, 4, 6, 8, 10,
	}
)
