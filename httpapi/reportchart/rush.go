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

// Rush writes the rush curve as a PNG: orders placed per bucket (solid)
// and, of those, the orders that stand paid (dashed), over UTC time. A
// curve without buckets draws empty axes, so a sale without orders still
// has a chart.
func Rush(w io.Writer, title string, c engine.RushCurve) error {
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
	leg := plot.NewLegend()
	leg.TextStyle.Font = font.From(plot.DefaultFont, 10)
	leg.Top, leg.Left = true, true
	for i, se := range []struct {
		label  string
		xy     plotter.XYs
		dashed bool
	}{{"placed", placed, false}, {"of those, paid now", paid, true}} {
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
		p.Add(line)
		leg.Add(se.label, line)
	}
	p.Y.Min = 0
	p.Y.Max = math.Max(p.Y.Max, 1) * 1.05
	if len(c.Buckets) == 1 { // one point: give the axis a bucket's width
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
