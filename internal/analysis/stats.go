package analysis

import (
	"math"
	"slices"
)

// madScale turns a median absolute deviation into a standard deviation
// estimate for normally distributed data.
const madScale = 1.4826

// theilSenMaxPoints bounds the points Theil-Sen looks at: 64 points are
// 2,016 pairwise slopes, enough for a robust trend and cheap for 100 series.
const theilSenMaxPoints = 64

// median returns the median of xs, reordering xs. It returns NaN for no values.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	hi := nth(xs, n/2)
	if n%2 == 1 {
		return hi
	}
	return (slices.Max(xs[:n/2]) + hi) / 2 // nth left the smaller half in front
}

// nth reorders xs so that xs[k] is the value a sort would put there, every
// value before it is not greater and every value after it not smaller, and
// returns xs[k]. It runs in linear time on average (quickselect, median of
// three pivots); short inputs are sorted.
func nth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for hi-lo > 16 {
		mid := lo + (hi-lo)/2
		// order xs[lo], xs[mid], xs[hi] and use the middle one as pivot
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	slices.Sort(xs[lo : hi+1])
	return xs[k]
}

// medianOf returns the median of xs without changing xs.
func medianOf(xs []float64) float64 {
	return median(slices.Clone(xs))
}

// mad returns the median absolute deviation of xs around med, without
// changing xs.
func mad(xs []float64, med float64) float64 {
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = math.Abs(x - med)
	}
	return median(dev)
}

// theilSen fits v = intercept + slope*t robustly: slope is the median of
// the pairwise slopes, intercept the median of v - slope*t. Long inputs are
// subsampled evenly (first and last point kept) to theilSenMaxPoints, so the
// cost is bounded. ok is false with fewer than 2 distinct times.
func theilSen(ts, vs []float64) (slope, intercept float64, ok bool) {
	n := len(ts)
	if n < 2 || len(vs) != n {
		return 0, 0, false
	}
	idx := make([]int, 0, min(n, theilSenMaxPoints))
	if n <= theilSenMaxPoints {
		for i := range n {
			idx = append(idx, i)
		}
	} else {
		for k := range theilSenMaxPoints {
			idx = append(idx, k*(n-1)/(theilSenMaxPoints-1))
		}
	}
	slopes := make([]float64, 0, len(idx)*(len(idx)-1)/2)
	for a := range idx {
		for b := a + 1; b < len(idx); b++ {
			i, j := idx[a], idx[b]
			if dt := ts[j] - ts[i]; dt != 0 {
				slopes = append(slopes, (vs[j]-vs[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, 0, false
	}
	slope = median(slopes)
	res := make([]float64, len(idx))
	for k, i := range idx {
		res[k] = vs[i] - slope*ts[i]
	}
	return slope, median(res), true
}

// counterDeltas returns the increase of a counter over each interval:
// out[i-1] is the increase from vals[i-1] to vals[i]. A drop is a reset (the
// box restarted or the counter wrapped), so the new value is the increase.
// A single-point dip (a drop followed by a return to at least the value
// before it) is a bad reading, not a reset: that interval counts 0 and the
// next one is measured from the value before the dip.
func counterDeltas(vals []float64) []float64 {
	if len(vals) < 2 {
		return nil
	}
	out := make([]float64, len(vals)-1)
	prev := vals[0]
	for i := 1; i < len(vals); i++ {
		v := vals[i]
		switch {
		case v >= prev:
			out[i-1] = v - prev
			prev = v
		case i+1 < len(vals) && vals[i+1] >= prev:
			out[i-1] = 0 // dip: keep prev
		default:
			out[i-1] = v // reset
			prev = v
		}
	}
	return out
}

// tailRun returns how many of the last values satisfy ok, counting back from
// the end until the first that does not.
func tailRun(vals []float64, ok func(float64) bool) int {
	n := 0
	for i := len(vals) - 1; i >= 0 && ok(vals[i]); i-- {
		n++
	}
	return n
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
