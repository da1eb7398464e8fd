package bench

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteCharts draws the PNG charts, one series per measured system.
func (r *Report) WriteCharts(dir string) error {
	charts := []struct {
		file, title, ylabel string
		xy                  func(*SystemResult) plotter.XYs
		percentileAxis      bool
	}{
		{"throughput.png", "Throughput (" + r.Scenario + ")", "requests/s", func(s *SystemResult) plotter.XYs {
			return sampleXYs(s, func(x *Sample) float64 { return x.RequestsPerSec })
		}, false},
		{"latency.png", "Latency by percentile (" + r.Scenario + ")", "latency ms (log)", curveXYs, true},
		{"latency-over-time.png", "p99 latency over time (" + r.Scenario + ")", "p99 ms", func(s *SystemResult) plotter.XYs {
			return sampleXYs(s, func(x *Sample) float64 { return x.P99Ms })
		}, false},
		{"memory.png", "Resident memory of the server processes (" + r.Scenario + ")", "RSS MiB", func(s *SystemResult) plotter.XYs {
			return sampleXYs(s, func(x *Sample) float64 { return float64(x.RSSBytes) / (1 << 20) })
		}, false},
	}
	for _, c := range charts {
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
		p.Legend.Top = true
		n := 0
		for i := range r.Systems {
			s := &r.Systems[i]
			if !s.measured() {
				continue
			}
			xy := c.xy(s)
			if len(xy) == 0 {
				continue
			}
			line, err := plotter.NewLine(xy)
			if err != nil {
				return fmt.Errorf("cannot chart %s: %w", s.Name, err)
			}
			line.Color = plotutil.Color(i)
			line.Width = vg.Points(1.5)
			p.Add(line)
			p.Legend.Add(s.Name, line)
			n++
		}
		if n == 0 {
			continue
		}
		if err := p.Save(9*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return fmt.Errorf("cannot save %s: %w", c.file, err)
		}
	}
	return nil
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
