// Package reportchart draws a sale's rush curve (engine.RushCurve) as a PNG
// line chart, in the bench harness's house style: y from zero, the legend
// beside the plot, one colour per line, a dashed second figure.
//
// It owns no state: Rush renders one curve per call on the caller's
// goroutine, and is safe for concurrent use. Its cost grows with the
// curve's buckets, which the engine bounds (engine.RushBucketsMax).
package reportchart
