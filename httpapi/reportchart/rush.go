package reportchart

import (
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/onsale/onsale/engine"
)

// Chart size, as the bench harness's charts.
const (
	widthIn  = 10 * vg.Inch
	heightIn = 4.5 * vg.Inch
)

// Rush writes the rush curve as a PNG: orders placed per bucket (solid),
// of those the orders that stand paid (dashed), and payments received per
// bucket of the same width (dotted, from pays: when the money came in),
// over UTC time. A curve without buckets draws empty axes, so a sale
// without orders still has a chart.
func Rush(w io.Writer, title string, c engine.RushCurve, pays []engine.PaymentMinute) error {
	p := plot.New()
	p.Title.Text = title
	unit := "minute"
	if c.BucketMinutes > 1 {
		unit = fmt.Sprintf("%d minutes", c.BucketMinutes)
	}
	p.Y.Label.Text = "orders per " + unit
	p.X.Label.Text = "time (UTC) when the orders were placed"
	p.X.Tick.Marker = plot.TimeTicks{Format: timeFormat(c), Time: plot.UTCUnixTime}

	placed := make(plotter.XYs, len(c.Buckets))
	paid := make(plotter.XYs, len(c.Buckets))
	for i, b := range c.Buckets {
		x := float64(b.AtMs) / 1000
		placed[i] = plotter.XY{X: x, Y: float64(b.Placed)}
		paid[i] = plotter.XY{X: x, Y: float64(b.Paid)}
	}
	payments := paymentBuckets(c, pays)
	leg := plot.NewLegend()
	leg.TextStyle.Font = font.From(plot.DefaultFont, 10)
	leg.Top, leg.Left = true, true
	for i, se := range []struct {
		label  string
		xy     plotter.XYs
		dashed bool
		dotted bool
	}{{"placed", placed, false, false}, {"of those, paid now", paid, true, false}, {"payments received", payments, false, true}} {
		if len(se.xy) == 0 {
			continue
		}
		line, err := plotter.NewLine(se.xy)
		if err != nil {
			return fmt.Errorf("reportchart: cannot chart %s: %w", se.label, err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		if se.dashed {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		if se.dotted {
			line.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2)}
		}
		p.Add(line)
		leg.Add(se.label, line)
	}
	p.Y.Min = 0
	p.Y.Max = math.Max(p.Y.Max, 1) * 1.05
	if len(c.Buckets) == 1 && len(payments) <= 1 { // one point: give the axis a bucket's width
		p.X.Min, p.X.Max = placed[0].X-30, placed[0].X+float64(c.BucketMinutes)*60
	}

	cw, err := draw.NewFormattedCanvas(widthIn, heightIn, "png")
	if err != nil {
		return fmt.Errorf("reportchart: %w", err)
	}
	dc := draw.New(cw)
	const gap = vg.Length(12)
	legWidth := leg.Rectangle(dc).Size().X + gap
	p.Draw(draw.Crop(dc, 0, -legWidth, 0, -4))
	leg.Draw(draw.Crop(dc, widthIn-legWidth+gap/2, 0, 0, -2*gap))
	if _, err := cw.WriteTo(w); err != nil {
		return fmt.Errorf("reportchart: cannot write the PNG: %w", err)
	}
	return nil
}

// timeFormat labels the time axis: clock times for a curve within a day,
// dates as well beyond.
func timeFormat(c engine.RushCurve) string {
	if len(c.Buckets) == 0 {
		return "15:04"
	}
	spanMs := c.Buckets[len(c.Buckets)-1].AtMs - c.StartMs
	if spanMs <= 24*3600*1000 {
		return "15:04"
	}
	return "Jan 2 15:04"
}

// paymentBuckets sums the payments per minute into buckets of the rush
// curve's width (aligned on its start), one point per bucket from the
// first payment's to the last's, empty buckets 0.
func paymentBuckets(c engine.RushCurve, pays []engine.PaymentMinute) plotter.XYs {
	if len(pays) == 0 {
		return nil
	}
	width := int64(max(c.BucketMinutes, 1)) * 60_000
	start := c.StartMs
	if len(c.Buckets) == 0 {
		start = pays[0].AtMs
	}
	bucket := func(ms int64) int64 { // floor, before the start too
		d := ms - start
		q := d / width
		if d%width != 0 && d < 0 {
			q--
		}
		return start + q*width
	}
	first, last := bucket(pays[0].AtMs), bucket(pays[len(pays)-1].AtMs)
	n := (last-first)/width + 1
	if n > engine.RushBucketsMax*2 { // a payment long after the rush: points only where there are payments
		xy := make(plotter.XYs, 0, len(pays))
		for _, p := range pays {
			at := float64(bucket(p.AtMs)) / 1000
			if k := len(xy); k > 0 && xy[k-1].X == at {
				xy[k-1].Y += float64(p.Payments)
				continue
			}
			xy = append(xy, plotter.XY{X: at, Y: float64(p.Payments)})
		}
		return xy
	}
	xy := make(plotter.XYs, n)
	for i := range xy {
		xy[i].X = float64(first+int64(i)*width) / 1000
	}
	for _, p := range pays {
		xy[(bucket(p.AtMs)-first)/width].Y += float64(p.Payments)
	}
	return xy
}
