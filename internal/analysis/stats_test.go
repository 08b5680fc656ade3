package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		name string
		xs   []float64
		want float64
	}{
		{name: "odd", xs: []float64{3, 1, 2}, want: 2},
		{name: "even", xs: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "one", xs: []float64{7}, want: 7},
		{name: "duplicates", xs: []float64{5, 5, 5, 1, 5, 9}, want: 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, median(tc.xs))
		})
	}
	t.Run("empty is NaN", func(t *testing.T) {
		require.True(t, math.IsNaN(median(nil)))
	})
	t.Run("agrees with sorting on random inputs", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for n := 1; n < 400; n += 7 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(r.IntN(20)) // many ties
			}
			s := slices.Clone(xs)
			slices.Sort(s)
			want := s[n/2]
			if n%2 == 0 {
				want = (s[n/2-1] + s[n/2]) / 2
			}
			require.Equal(t, want, median(xs), "n=%d", n)
			for k := 0; k < n; k += 5 {
				require.Equal(t, s[k], nth(slices.Clone(xs), k), "n=%d k=%d", n, k)
			}
		}
	})
}

func TestMAD(t *testing.T) {
	xs := []float64{1, 1, 2, 2, 4, 6, 9}
	require.Equal(t, 1.0, mad(xs, medianOf(xs)))
	require.Equal(t, []float64{1, 1, 2, 2, 4, 6, 9}, xs, "mad does not reorder its input")
}

func TestTheilSen(t *testing.T) {
	cases := []struct {
		name             string
		n                int
		slope, intercept float64
		outliers         int
	}{
		{name: "exact line", n: 10, slope: 2, intercept: 5},
		{name: "long input is subsampled", n: 576, slope: -0.5, intercept: 100},
		{name: "a quarter of wild outliers", n: 200, slope: 3, intercept: -1, outliers: 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := make([]float64, tc.n)
			vs := make([]float64, tc.n)
			for i := range ts {
				ts[i] = float64(i) / 10
				vs[i] = tc.intercept + tc.slope*ts[i]
				if i%4 == 1 && i/4 < tc.outliers {
					vs[i] += 1e6
				}
			}
			slope, icpt, ok := theilSen(ts, vs)
			require.True(t, ok)
			require.InDelta(t, tc.slope, slope, 1e-9)
			require.InDelta(t, tc.intercept, icpt, 1e-6)
		})
	}
	t.Run("needs two distinct times", func(t *testing.T) {
		_, _, ok := theilSen([]float64{1, 1}, []float64{2, 3})
		require.False(t, ok)
		_, _, ok = theilSen([]float64{1}, []float64{2})
		require.False(t, ok)
	})
}

func TestCounterDeltas(t *testing.T) {
	cases := []struct {
		name string
		vals []float64
		want []float64
	}{
		{name: "growing", vals: []float64{1, 3, 3, 10}, want: []float64{2, 0, 7}},
		{name: "reset counts the new value", vals: []float64{100, 104, 3, 5}, want: []float64{4, 3, 2}},
		{name: "reset to zero", vals: []float64{100, 0, 0}, want: []float64{0, 0}},
		{name: "dip is a bad reading", vals: []float64{8, 8, 0, 8, 8}, want: []float64{0, 0, 0, 0}},
		{name: "dip then growth", vals: []float64{8, 2, 9}, want: []float64{0, 1}},
		{name: "drop at the end is a reset", vals: []float64{8, 8, 5}, want: []float64{0, 5}},
		{name: "too short", vals: []float64{8}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, counterDeltas(tc.vals))
		})
	}
}
