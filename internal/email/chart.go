package email

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"image/color"
	"math"
	"strconv"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// MaxPoints is the most series points an email carries in its chart and CSV.
const MaxPoints = 500

// Chart geometry, in pixels.
const (
	chartWidth  = 640
	chartHeight = 240
	chartMargin = 24
)

// Downsample returns at most max points of series, evenly spaced by index,
// always keeping the first and the last point. A series that already fits is
// returned as a copy.
func Downsample(series []finding.Point, max int) []finding.Point {
	n := len(series)
	if max <= 0 || n == 0 {
		return nil
	}
	if n <= max {
		return append([]finding.Point(nil), series...)
	}
	if max == 1 {
		return []finding.Point{series[n-1]}
	}
	out := make([]finding.Point, max)
	for i := range max {
		out[i] = series[i*(n-1)/(max-1)]
	}
	return out
}

// EvidenceCSV returns the points as CSV with header "time,value", times in
// RFC 3339 UTC. An empty series gives nil.
func EvidenceCSV(points []finding.Point) ([]byte, error) {
	if len(points) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write([]string{"time", "value"}); err != nil {
		return nil, fmt.Errorf("write csv header: %w", err)
	}
	for _, p := range points {
		rec := []string{p.Time.UTC().Format(time.RFC3339), strconv.FormatFloat(p.Value, 'g', -1, 64)}
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("write csv row: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("flush csv: %w", err)
	}
	return buf.Bytes(), nil
}

// ChartSpec is what EvidenceChart draws: the series and, optionally, the
// limit line, the forecast and the shaded span of a finding's evidence.
type ChartSpec struct {
	Points     []finding.Point
	Metric     string // names the y axis; its unit formats the ticks
	Limit      *float64
	LimitLabel string
	Forecast   []finding.Point
	SpanFrom   time.Time
	SpanTo     time.Time
}

// ChartFor returns the chart of a finding's evidence over points (the
// series as sent, downsampled).
func ChartFor(ev finding.Evidence, points []finding.Point) ChartSpec {
	return ChartSpec{Points: points, Metric: ev.Metric, Limit: ev.Limit, LimitLabel: ev.LimitLabel,
		Forecast: ev.Forecast, SpanFrom: ev.SpanFrom, SpanTo: ev.SpanTo}
}

// Chart colours.
var (
	seriesColor   = color.RGBA{R: 0x20, G: 0x50, B: 0xa0, A: 0xff}
	limitColor    = color.RGBA{R: 0xc0, G: 0x20, B: 0x20, A: 0xff}
	forecastColor = color.RGBA{R: 0xe0, G: 0x80, B: 0x10, A: 0xff}
	spanColor     = color.RGBA{R: 0xff, G: 0xd0, B: 0xd0, A: 0xff}
)

// EvidenceChart draws the evidence as a PNG line chart with gonum/plot: a
// time axis in UTC, a value axis labelled with the metric and its unit
// (bytes as TiB, latency in ms), the limit line, the forecast up to the
// impact and the anomalous span shaded. Points that are NaN or infinite are
// skipped; fewer than two usable points give nil.
func EvidenceChart(c ChartSpec) ([]byte, error) {
	usable := make(plotter.XYs, 0, len(c.Points))
	for _, p := range c.Points {
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			usable = append(usable, plotter.XY{X: float64(p.Time.Unix()), Y: p.Value})
		}
	}
	if len(usable) < 2 {
		return nil, nil
	}
	unit := metricUnit(c.Metric)
	p := plot.New()
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = c.Metric
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02\n15:04", Time: func(t float64) time.Time { return time.Unix(int64(t), 0).UTC() }}
	p.Y.Tick.Marker = unitTicks{unit: unit}
	p.Add(plotter.NewGrid())

	lo, hi := usable[0].Y, usable[0].Y
	xmax := usable[len(usable)-1].X
	for _, xy := range usable {
		lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
	}
	if c.Limit != nil && finite(*c.Limit) {
		lo, hi = math.Min(lo, *c.Limit), math.Max(hi, *c.Limit)
	}
	var forecast plotter.XYs
	for _, f := range c.Forecast {
		if finite(f.Value) {
			forecast = append(forecast, plotter.XY{X: float64(f.Time.Unix()), Y: f.Value})
			lo, hi = math.Min(lo, f.Value), math.Max(hi, f.Value)
			xmax = math.Max(xmax, float64(f.Time.Unix()))
		}
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	pad := (hi - lo) * 0.08
	p.Y.Min, p.Y.Max = lo-pad, hi+pad
	p.X.Min, p.X.Max = usable[0].X, xmax

	if !c.SpanFrom.IsZero() && !c.SpanTo.IsZero() && c.SpanTo.After(c.SpanFrom) {
		x0 := math.Max(float64(c.SpanFrom.Unix()), p.X.Min)
		x1 := math.Min(float64(c.SpanTo.Unix()), p.X.Max)
		if x1 > x0 {
			shade, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: p.Y.Min}, {X: x1, Y: p.Y.Min}, {X: x1, Y: p.Y.Max}, {X: x0, Y: p.Y.Max}})
			if err != nil {
				return nil, fmt.Errorf("draw chart: %w", err)
			}
			shade.Color = spanColor
			shade.LineStyle.Width = 0
			p.Add(shade)
			p.Legend.Add("anomalous span", shade)
		}
	}
	line, err := plotter.NewLine(usable)
	if err != nil {
		return nil, fmt.Errorf("draw chart: %w", err)
	}
	line.Color = seriesColor
	line.Width = vg.Points(1.5)
	p.Add(line)
	if c.Limit != nil && finite(*c.Limit) {
		l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: *c.Limit}, {X: p.X.Max, Y: *c.Limit}})
		if err != nil {
			return nil, fmt.Errorf("draw chart: %w", err)
		}
		l.Color = limitColor
		l.Width = vg.Points(1.5)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		label := c.LimitLabel
		if label == "" {
			label = "limit"
		}
		p.Legend.Add(label+" "+formatValue(*c.Limit, unit), l)
	}
	if len(forecast) >= 2 {
		f, err := plotter.NewLine(forecast)
		if err != nil {
			return nil, fmt.Errorf("draw chart: %w", err)
		}
		f.Color = forecastColor
		f.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(f)
		p.Legend.Add("forecast to "+time.Unix(int64(forecast[len(forecast)-1].X), 0).UTC().Format("2006-01-02"), f)
	}
	p.Legend.Top = false // bottom right: where a rising series is not
	w, err := p.WriterTo(vg.Length(chartWidth)*vg.Inch/96, vg.Length(chartHeight)*vg.Inch/96, "png")
	if err != nil {
		return nil, fmt.Errorf("draw chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("draw chart: %w", err)
	}
	return buf.Bytes(), nil
}

// unitTicks formats gonum/plot's default ticks in the metric's unit.
type unitTicks struct{ unit string }

// Ticks returns the default ticks with labels in human units.
func (u unitTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = formatValue(ticks[i].Value, u.unit)
		}
	}
	return ticks
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
