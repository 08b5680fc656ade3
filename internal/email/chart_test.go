package email

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
)

func points(values ...float64) []finding.Point {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]finding.Point, len(values))
	for i, v := range values {
		out[i] = finding.Point{Time: start.Add(time.Duration(i) * time.Minute), Value: v}
	}
	return out
}

func ramp(n int) []finding.Point {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i)
	}
	return points(v...)
}

func TestDownsample(t *testing.T) {
	tests := []struct {
		name       string
		n, max     int
		wantValues []float64 // nil: only check length, first and last
		wantLen    int
	}{
		{name: "empty", n: 0, max: 500, wantLen: 0},
		{name: "fits", n: 3, max: 500, wantValues: []float64{0, 1, 2}, wantLen: 3},
		{name: "exactly max", n: 500, max: 500, wantLen: 500},
		{name: "halves", n: 9, max: 5, wantValues: []float64{0, 2, 4, 6, 8}, wantLen: 5},
		{name: "uneven keeps last", n: 10, max: 4, wantValues: []float64{0, 3, 6, 9}, wantLen: 4},
		{name: "large", n: 100_003, max: 500, wantLen: 500},
		{name: "one point keeps the last", n: 10, max: 1, wantValues: []float64{9}, wantLen: 1},
		{name: "zero max", n: 10, max: 0, wantLen: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ramp(tc.n)
			got := Downsample(in, tc.max)
			require.Len(t, got, tc.wantLen)
			if tc.wantValues != nil {
				vals := make([]float64, len(got))
				for i, p := range got {
					vals[i] = p.Value
				}
				require.Equal(t, tc.wantValues, vals)
			}
			if tc.wantLen > 1 {
				require.Equal(t, in[0], got[0])
				require.Equal(t, in[len(in)-1], got[len(got)-1])
			}
		})
	}
}

func TestEvidenceChart(t *testing.T) {
	limit := 150.0
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		spec    ChartSpec
		wantNil bool
	}{
		{name: "none", spec: ChartSpec{}, wantNil: true},
		{name: "one point", spec: ChartSpec{Points: points(1)}, wantNil: true},
		{name: "only one finite point", spec: ChartSpec{Points: points(1, math.NaN(), math.Inf(1))}, wantNil: true},
		{name: "flat", spec: ChartSpec{Points: points(5, 5, 5)}},
		{name: "with NaN", spec: ChartSpec{Points: points(1, math.NaN(), 3)}},
		{name: "ramp", spec: ChartSpec{Points: ramp(100)}},
		{name: "capacity with limit and forecast", spec: ChartSpec{Points: ramp(100), Metric: "pool.used_bytes", Limit: &limit,
			LimitLabel: "capacity", Forecast: []finding.Point{{Time: t0, Value: 99}, {Time: t0.Add(72 * time.Hour), Value: 150}}}},
		{name: "latency with a shaded span", spec: ChartSpec{Points: ramp(100), Metric: "volume.read_latency_ms", Limit: &limit,
			SpanFrom: t0.Add(-time.Hour), SpanTo: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := EvidenceChart(tc.spec)
			require.NoError(t, err)
			if tc.wantNil {
				require.Nil(t, data)
				return
			}
			img, err := png.Decode(bytes.NewReader(data))
			require.NoError(t, err)
			require.Equal(t, image.Rect(0, 0, chartWidth, chartHeight), img.Bounds())
		})
	}
}

// TestEvidenceChartDraws checks that the chart holds the series, the limit
// line and the shaded span in their colours.
func TestEvidenceChartDraws(t *testing.T) {
	limit := 150.0
	last := ramp(50)[49].Time
	data, err := EvidenceChart(ChartSpec{Points: ramp(50), Metric: "pool.used_bytes", Limit: &limit, LimitLabel: "capacity",
		SpanFrom: last.Add(-10 * time.Minute), SpanTo: last})
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	// Lines are anti-aliased: count the pixels close to each colour.
	near := func(c color.RGBA) int {
		n := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				d := math.Abs(float64(r>>8)-float64(c.R)) + math.Abs(float64(g>>8)-float64(c.G)) + math.Abs(float64(bl>>8)-float64(c.B))
				if d < 60 {
					n++
				}
			}
		}
		return n
	}
	require.Greater(t, near(seriesColor), 100, "the series is drawn")
	require.Greater(t, near(limitColor), 50, "the limit line is drawn")
	require.Greater(t, near(spanColor), 500, "the span is shaded")
}

func TestEvidenceCSV(t *testing.T) {
	got, err := EvidenceCSV(points(1.5, -2, 3e9))
	require.NoError(t, err)
	require.Equal(t, "time,value\n2026-01-01T00:00:00Z,1.5\n2026-01-01T00:01:00Z,-2\n2026-01-01T00:02:00Z,3e+09\n", string(got))

	empty, err := EvidenceCSV(nil)
	require.NoError(t, err)
	require.Nil(t, empty)
}
