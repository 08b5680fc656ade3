package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// TestChunkRoundTrip: every kind of time and value comes back bit for bit,
// and regular series take the few bytes the layout promises.
func TestChunkRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	grid := func(n int, start, step int64) []int64 {
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = start + int64(i)*step
		}
		return ts
	}
	values := func(n int, f func(i int) float64) []float64 {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = f(i)
		}
		return vs
	}
	const min5 = int64(300e9)
	start := int64(1_800_000_000e9)
	walk := 50.0
	tests := []struct {
		name         string
		ts           []int64
		vs           []float64
		maxPerSample float64 // bytes; 0: no bound
	}{
		{"one sample", []int64{start}, []float64{3.25}, 0},
		{"integer gauge on a 5 minute grid", grid(288, start, min5), values(288, func(i int) float64 { return float64(40 + i%3) }), 2.1},
		{"3-decimal random walk", grid(288, start, min5), values(288, func(int) float64 {
			walk = math.Round((walk+r.NormFloat64())*1000) / 1000
			return walk
		}), 4},
		{"noisy floats", grid(288, start, min5), values(288, func(int) float64 { return r.Float64() * 1e6 }), 10},
		{"constant", grid(1440, start, 60e9), values(1440, func(int) float64 { return 7 }), 2.1},
		{"odd values", grid(8, start, 1), []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.MaxFloat64, math.SmallestNonzeroFloat64, -1e-300}, 0},
		{"jittered nanosecond times", values2ts(r, start, 100), values(100, func(i int) float64 { return float64(i) / 3 }), 0},
		{"before 1970", grid(10, -5*min5, min5), values(10, func(i int) float64 { return -float64(i) * 0.5 }), 0},
		{"huge integers", grid(5, start, 1e9), []float64{1 << 60, 1<<60 + 1<<8, -(1 << 55), 1 << 53, 1<<53 + 2}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeChunk(tc.ts, tc.vs)
			ts, vs, err := decodeChunk(data)
			require.NoError(t, err)
			require.Equal(t, tc.ts, ts)
			require.Len(t, vs, len(tc.vs))
			for i := range vs {
				require.Equal(t, math.Float64bits(tc.vs[i]), math.Float64bits(vs[i]), "value %d: %v", i, tc.vs[i])
			}
			if tc.maxPerSample > 0 {
				per := float64(len(data)) / float64(len(tc.ts))
				require.LessOrEqual(t, per, tc.maxPerSample, "bytes per sample")
			}
		})
	}
}

// values2ts returns n strictly increasing times about a minute apart with
// nanosecond jitter.
func values2ts(r *rand.Rand, start int64, n int) []int64 {
	ts := make([]int64, n)
	t := start
	for i := range ts {
		t += 60e9 + r.Int64N(1e9)
		ts[i] = t
	}
	return ts
}

// TestDecodeCorruptChunk: a cut or scrambled chunk is an error, never a
// panic or a huge allocation.
func TestDecodeCorruptChunk(t *testing.T) {
	ts := []int64{1e18, 1e18 + 300e9, 1e18 + 600e9, 1e18 + 901e9}
	for _, vs := range [][]float64{{1, 2, 3, 4}, {1.1234567, 2.7182818, math.Pi, math.E}} {
		data := encodeChunk(ts, vs)
		for cut := range len(data) {
			_, _, err := decodeChunk(data[:cut])
			require.ErrorIs(t, err, errCorruptChunk, "cut at %d", cut)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 10000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if len(b) > 0 {
			b[0] = chunkVersion
		}
		require.NotPanics(t, func() { _, _, _ = decodeChunk(b) })
	}
	_, _, err := decodeChunk([]byte{chunkVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	require.ErrorIs(t, err, errCorruptChunk, "a count beyond the data")
}

// TestPlanChunks: runs of a series are cut at UTC midnight, and runs
// shorter than minChunkPoints stay rows.
func TestPlanChunks(t *testing.T) {
	day := int64(20000) * dayNanos
	var rows []telemetry.Sample
	var ts []int64
	var of []int
	add := func(series int, t int64) {
		rows = append(rows, telemetry.Sample{Value: float64(t)})
		ts = append(ts, t)
		of = append(of, series)
	}
	for i := range 6 { // 2 before midnight, 4 after
		add(0, day-2*300e9+int64(i)*300e9)
	}
	for i := range 3 { // too few
		add(1, day+int64(i)*300e9)
	}
	for i := range 5 {
		add(2, day+int64(i)*300e9)
	}
	chunks, rest := planChunks(rows, ts, of)
	require.Len(t, chunks, 2)
	require.Equal(t, []int{0, 1, 6, 7, 8}, rest)
	require.Equal(t, chunkRun{series: 0, lo: 2, hi: 6, tMin: day, tMax: day + 3*300e9, data: chunks[0].data}, chunks[0])
	require.Equal(t, 2, chunks[1].series)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, unchunk(rest, chunks[:1]))
	require.Equal(t, int64(-dayNanos), dayOf(-1))
	require.Equal(t, int64(0), dayOf(0))
}
