package email

import (
	"bytes"
	"image"
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
	tests := []struct {
		name    string
		series  []finding.Point
		wantNil bool
	}{
		{name: "none", series: nil, wantNil: true},
		{name: "one point", series: points(1), wantNil: true},
		{name: "only one finite point", series: points(1, math.NaN(), math.Inf(1)), wantNil: true},
		{name: "flat", series: points(5, 5, 5)},
		{name: "with NaN", series: points(1, math.NaN(), 3)},
		{name: "ramp", series: ramp(100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := EvidenceChart(tc.series)
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

// TestEvidenceChartGeometry checks that a rising series starts at the bottom
// left of the plot and ends at the top right.
func TestEvidenceChartGeometry(t *testing.T) {
	data, err := EvidenceChart(ramp(50))
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	isLine := func(x, y int) bool {
		r, g, b, _ := img.At(x, y).RGBA()
		return r>>8 == 0xc0 && g>>8 == 0x20 && b>>8 == 0x20
	}
	left, right := chartMargin, chartWidth-chartMargin/2
	top, bottom := chartMargin/2, chartHeight-chartMargin
	require.True(t, isLine(left, bottom), "line starts at bottom left")
	require.True(t, isLine(right, top), "line ends at top right")
	require.False(t, isLine(left, top), "no line at top left")
	require.False(t, isLine(right, bottom-10), "no line near bottom right")
	r, g, b, _ := img.At(left, (top+bottom)/3).RGBA()
	require.Equal(t, [3]uint32{0x40, 0x40, 0x40}, [3]uint32{r >> 8, g >> 8, b >> 8}, "y axis drawn")
}

func TestEvidenceCSV(t *testing.T) {
	got, err := EvidenceCSV(points(1.5, -2, 3e9))
	require.NoError(t, err)
	require.Equal(t, "time,value\n2026-01-01T00:00:00Z,1.5\n2026-01-01T00:01:00Z,-2\n2026-01-01T00:02:00Z,3e+09\n", string(got))

	empty, err := EvidenceCSV(nil)
	require.NoError(t, err)
	require.Nil(t, empty)
}
