package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart size.
const (
	chartWidth  = 10 * vg.Inch
	chartHeight = 4.5 * vg.Inch
)

// series is one line of a chart. Dashed lines are a system's second
// figure (rejections, the generator's CPU) in the system's colour.
type series struct {
	label  string
	xy     plotter.XYs
	dashed bool
}

// chartSpec is one PNG. Time charts start their y axis at zero and, in a
// flash sale, mark each system's sell-out.
type chartSpec struct {
	file, title, ylabel string
	series              func(*SystemResult) []series
	percentileAxis      bool // x is the percentile, y logarithmic
}

func (r *Report) chartSpecs() []chartSpec {
	one := func(y func(*Sample) float64) func(*SystemResult) []series {
		return func(s *SystemResult) []series { return []series{{s.Name, sampleXYs(s, y), false}} }
	}
	return []chartSpec{
		{file: "throughput.png", title: "Answers per second (" + r.Scenario + ")", ylabel: "requests/s",
			series: one(func(x *Sample) float64 { return x.RequestsPerSec })},
		{file: "purchases.png", title: "New orders (solid) and business refusals (dashed) per second (" + r.Scenario + ")", ylabel: "per second",
			series: func(s *SystemResult) []series {
				return []series{
					{s.Name + " purchases/s", sampleXYs(s, func(x *Sample) float64 { return x.PurchasesPerSec }), false},
					{s.Name + " rejected/s", sampleXYs(s, func(x *Sample) float64 { return x.RejectionsPerSec }), true},
				}
			}},
		{file: "latency.png", title: "Latency by percentile (" + r.Scenario + ")", ylabel: "latency ms (log)",
			series: func(s *SystemResult) []series { return []series{{s.Name, curveXYs(s), false}} }, percentileAxis: true},
		{file: "latency-over-time.png", title: "p99 latency over time (" + r.Scenario + ")", ylabel: "p99 ms",
			series: one(func(x *Sample) float64 { return x.P99Ms })},
		{file: "cpu.png", title: "CPU: server processes (solid) and load generator (dashed) (" + r.Scenario + ")", ylabel: "cores",
			series: func(s *SystemResult) []series {
				out := []series{{s.Name + " generator", sampleXYs(s, func(x *Sample) float64 { return x.GeneratorCores }), true}}
				if s.CPU != nil && s.CPU.ServerCPUS > 0 {
					out = append([]series{{s.Name + " server", sampleXYs(s, func(x *Sample) float64 { return x.ServerCores }), false}}, out...)
				}
				return out
			}},
		{file: "memory.png", title: "Memory of the server processes (" + r.Scenario + ")", ylabel: "PSS MiB",
			series: one(func(x *Sample) float64 { return float64(x.RSSBytes) / (1 << 20) })},
	}
}

// WriteCharts draws the PNG charts, one colour per measured system.
func (r *Report) WriteCharts(dir string) error {
	for _, c := range r.chartSpecs() {
		if err := r.writeChart(c, filepath.Join(dir, c.file)); err != nil {
			return fmt.Errorf("cannot draw %s: %w", c.file, err)
		}
	}
	return nil
}

func (r *Report) writeChart(c chartSpec, path string) error {
	p := plot.New()
	p.Title.Text = c.title
	p.Y.Label.Text = c.ylabel
	p.X.Label.Text = "seconds since the measurement started"
	if c.percentileAxis {
		p.X.Label.Text = "percentile"
		p.X.Tick.Marker = percentileTicks{}
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	// The legend goes beside the plot, never over its lines.
	leg := plot.NewLegend()
	leg.TextStyle.Font = font.From(plot.DefaultFont, 10)
	leg.Top, leg.Left = true, true
	type soldMark struct {
		name  string
		color int
		atS   float64
	}
	var marks []soldMark
	n := 0
	for i := range r.Systems {
		s := &r.Systems[i]
		if !s.measured() {
			continue
		}
		for _, se := range c.series(s) {
			if len(se.xy) == 0 {
				continue
			}
			line, err := plotter.NewLine(se.xy)
			if err != nil {
				return fmt.Errorf("cannot chart %s: %w", se.label, err)
			}
			line.Color = plotutil.Color(i)
			line.Width = vg.Points(1.5)
			if se.dashed {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line)
			leg.Add(se.label, line)
			n++
		}
		if !c.percentileAxis && r.Scenario == ScenarioFlash && s.SoldOutAfterS >= 0 {
			marks = append(marks, soldMark{s.Name, i, s.SoldOutAfterS})
		}
	}
	if n == 0 {
		return nil
	}
	if !c.percentileAxis {
		p.X.Min = 0
		p.Y.Min = 0
		p.Y.Max = math.Max(p.Y.Max, 1e-9) * 1.05
		for _, m := range marks {
			line, err := plotter.NewLine(plotter.XYs{{X: m.atS, Y: 0}, {X: m.atS, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			line.Color = plotutil.Color(m.color)
			line.Width = vg.Points(1)
			line.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
			p.Add(line)
			leg.Add(fmt.Sprintf("%s sold out at %.2f s", m.name, m.atS), line)
		}
	}

	cw, err := draw.NewFormattedCanvas(chartWidth, chartHeight, "png")
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	const gap = vg.Length(12)
	legWidth := leg.Rectangle(dc).Size().X + gap
	p.Draw(draw.Crop(dc, 0, -legWidth, 0, -4))
	leg.Draw(draw.Crop(dc, chartWidth-legWidth+gap/2, 0, 0, -2*gap))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sampleXYs(s *SystemResult, y func(*Sample) float64) plotter.XYs {
	xy := make(plotter.XYs, 0, len(s.Samples))
	for i := range s.Samples {
		xy = append(xy, plotter.XY{X: s.Samples[i].AtS, Y: y(&s.Samples[i])})
	}
	return xy
}

// maxNines caps the percentile axis: 100% is drawn at 99.9999%.
const maxNines = 6

// nines maps a percentile to its number of nines: 90 → 1, 99 → 2, ...
func nines(p float64) float64 {
	if p >= 100 {
		return maxNines
	}
	return math.Min(-math.Log10(1-p/100), maxNines)
}

func curveXYs(s *SystemResult) plotter.XYs {
	xy := make(plotter.XYs, 0, len(s.Curve.Percentile))
	for i, p := range s.Curve.Percentile {
		xy = append(xy, plotter.XY{X: nines(p), Y: math.Max(s.Curve.LatencyMs[i], 0.001)})
	}
	return xy
}

// percentileTicks labels the nines axis.
type percentileTicks struct{}

func (percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"}
	var ts []plot.Tick
	for i, l := range labels {
		if x := float64(i); x >= lo && x <= hi {
			ts = append(ts, plot.Tick{Value: x, Label: l})
		}
	}
	return ts
}
