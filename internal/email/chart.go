package email

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/png"
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

// EvidenceChart draws the points as a line chart with axes and returns it as
// PNG. Points that are NaN or infinite are skipped; fewer than two usable
// points give nil. The x axis is time, the y axis spans min to max.
func EvidenceChart(points []finding.Point) ([]byte, error) {
	usable := make([]finding.Point, 0, len(points))
	for _, p := range points {
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			usable = append(usable, p)
		}
	}
	if len(usable) < 2 {
		return nil, nil
	}
	t0, t1 := usable[0].Time, usable[0].Time
	lo, hi := usable[0].Value, usable[0].Value
	for _, p := range usable {
		if p.Time.Before(t0) {
			t0 = p.Time
		}
		if p.Time.After(t1) {
			t1 = p.Time
		}
		lo = math.Min(lo, p.Value)
		hi = math.Max(hi, p.Value)
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	span := t1.Sub(t0)

	img := image.NewPaletted(image.Rect(0, 0, chartWidth, chartHeight), color.Palette{
		color.White,
		color.RGBA{R: 0x40, G: 0x40, B: 0x40, A: 0xff}, // axes
		color.RGBA{R: 0xdd, G: 0xdd, B: 0xdd, A: 0xff}, // grid
		color.RGBA{R: 0xc0, G: 0x20, B: 0x20, A: 0xff}, // line
	})
	const (
		white = iota
		axis
		grid
		line
	)
	left, right := chartMargin, chartWidth-chartMargin/2
	top, bottom := chartMargin/2, chartHeight-chartMargin

	// Grid lines at quarters, then axes with ticks.
	for i := 1; i <= 4; i++ {
		y := bottom - (bottom-top)*i/4
		drawLine(img, left, y, right, y, grid)
		x := left + (right-left)*i/4
		drawLine(img, x, top, x, bottom, grid)
		drawLine(img, left-4, y, left, y, axis)
		drawLine(img, x, bottom, x, bottom+4, axis)
	}
	drawLine(img, left, top, left, bottom, axis)
	drawLine(img, left, bottom, right, bottom, axis)

	xy := func(i int, p finding.Point) (int, int) {
		var fx float64
		if span > 0 {
			fx = float64(p.Time.Sub(t0)) / float64(span)
		} else {
			fx = float64(i) / float64(len(usable)-1)
		}
		fy := (p.Value - lo) / (hi - lo)
		return left + int(math.Round(fx*float64(right-left))), bottom - int(math.Round(fy*float64(bottom-top)))
	}
	px, py := xy(0, usable[0])
	for i := 1; i < len(usable); i++ {
		x, y := xy(i, usable[i])
		drawLine(img, px, py, x, y, line)
		drawLine(img, px, py+1, x, y+1, line) // two pixels thick
		px, py = x, y
	}

	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode chart: %w", err)
	}
	return buf.Bytes(), nil
}

// drawLine draws from (x0,y0) to (x1,y1) with Bresenham's algorithm, clipped
// to the image.
func drawLine(img *image.Paletted, x0, y0, x1, y1 int, c uint8) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	b := img.Bounds()
	for {
		if (image.Point{X: x0, Y: y0}).In(b) {
			img.SetColorIndex(x0, y0, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
