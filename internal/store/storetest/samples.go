package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// SampleOptions describe what a samples backend keeps, where it differs
// from the SQL stores (zero: exactly what they keep).
type SampleOptions struct {
	// Resolution is the precision of stored times: a time-series engine
	// keeps milliseconds. Zero: nanoseconds.
	Resolution time.Duration
	// MinTime and MaxTime bound the times kept (zero: 1678 and 2262, the
	// SQL stores' limits).
	MinTime, MaxTime time.Time
	// KeepsDuplicates: writing other values for stored times does not
	// replace them (engines keep both until they deduplicate); writing the
	// same batch again must still not duplicate samples.
	KeepsDuplicates bool
	// OwnRetention: DeleteSamplesBefore deletes nothing (returns 0); the
	// engine ages samples out by its own retention.
	OwnRetention bool
	// NoSeal: the backend keeps no chunks of its own to seal (a
	// time-series engine): it is not a store.Sealer.
	NoSeal bool
}

// samplesCase is what each sample test gets besides the store.
type samplesCase struct {
	SampleOptions
	t0 time.Time // the suite's t0 at the backend's resolution
}

func (x samplesCase) grid(boxes, components, metrics []string, minutes int, f func(i int) float64) []telemetry.Sample {
	return gridAt(x.t0, boxes, components, metrics, minutes, f)
}

// at returns a time as the backend gives it back.
func (x samplesCase) at(t time.Time) time.Time {
	if x.Resolution > 0 {
		return t.Truncate(x.Resolution)
	}
	return t
}

// RunSamples runs the sample half of the suite: AppendSamples, Window,
// WindowKind, LatestSample, DeleteSamplesBefore. Run runs it for the SQL
// stores; a samples backend (store.WithSamples) runs it with its options.
func RunSamples(t *testing.T, open func(t *testing.T) store.Store, opt SampleOptions) {
	x := samplesCase{SampleOptions: opt, t0: t0}
	x.t0 = x.at(t0)
	type sampleTest struct {
		name string
		f    func(t *testing.T, s store.Store, x samplesCase)
		// skip says the backend keeps samples otherwise than the test needs.
		skip bool
	}
	tests := []sampleTest{
		{name: "AppendSamplesIdempotent", f: testAppendIdempotent},
		{name: "AppendSamplesDuplicateKeysInBatch", f: testAppendDuplicates},
		{name: "AppendSamplesRejects", f: testAppendRejects},
		{name: "Window", f: testWindow},
		{name: "WindowKind", f: testWindowKind},
		{name: "LatestSample", f: testLatestSample},
		{name: "SampleTimesRoundTrip", f: testTimesRoundTrip},
		{name: "ConcurrentAppend", f: testConcurrentAppend},
		{name: "DeleteSamplesBefore", f: testDeleteSamplesBefore},
		{name: "TiersAgreeWithModel", f: testTiersModel, skip: opt.KeepsDuplicates}, // the model replaces values
		{name: "RetentionInsideADay", f: testRetentionInsideADay, skip: opt.KeepsDuplicates || opt.OwnRetention},
		{name: "SealSamples", f: testSealSamples, skip: opt.NoSeal},
		{name: "SealDuringAppends", f: testSealDuringAppends, skip: opt.NoSeal},
	}
	tests = slices.DeleteFunc(tests, func(tc sampleTest) bool { return tc.skip }) // not run, not counted
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open(t), x) })
	}
}

func testAppendIdempotent(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	boxes := []string{"b1", "b2", "b3"}
	comps := []string{"pool/p0", "volume/db01"}
	metrics := []string{telemetry.PoolUsedBytes, telemetry.VolumeIOPS}
	first := x.grid(boxes, comps, metrics, 5, func(i int) float64 { return float64(i) })
	n, err := s.AppendSamples(ctx, first)
	require.NoError(t, err)
	require.Equal(t, int64(60), n)
	require.Equal(t, 60, countAll(t, s, boxes...))

	// The same batch again, with new values: same rows, values replaced
	// (an engine that keeps duplicates gets the same values again).
	bump := 100
	if x.KeepsDuplicates {
		bump = 0
	}
	n, err = s.AppendSamples(ctx, x.grid(boxes, comps, metrics, 5, func(i int) float64 { return float64(bump + i) }))
	require.NoError(t, err)
	require.Equal(t, int64(60), n)
	require.Equal(t, 60, countAll(t, s, boxes...))
	w, err := s.Window(ctx, "b2", x.t0, x.t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, w, 20)
	for _, smp := range w {
		require.Equal(t, float64(bump+int(smp.Time.Sub(x.t0)/time.Minute)), smp.Value, "sample %+v", smp)
	}

	n, err = s.AppendSamples(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, n)
}

func testAppendDuplicates(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	n, err := s.AppendSamples(ctx, []telemetry.Sample{
		sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0, 40),
		sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0.Add(time.Minute), 41),
		sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0, 42), // same key as the first: wins
	})
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	w, err := s.Window(ctx, "b1", x.t0, x.t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []telemetry.Sample{
		sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0, 42),
		sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0.Add(time.Minute), 41),
	}, w)
}

func testAppendRejects(t *testing.T, s store.Store, x samplesCase) {
	good := sample("b1", "disk/1", telemetry.DiskTemperatureC, x.t0, 40)
	tests := []struct {
		name string
		bad  telemetry.Sample
		want string
	}{
		{"empty box", sample("", "disk/1", "m", x.t0, 1), "append samples: sample 1: empty box, component or metric"},
		{"empty component", sample("b1", "", "m", x.t0, 1), "append samples: sample 1: empty box, component or metric"},
		{"empty metric", sample("b1", "disk/1", "", x.t0, 1), "append samples: sample 1: empty box, component or metric"},
		{"zero time", sample("b1", "disk/1", "m", time.Time{}, 1), "append samples: sample 1 of b1: zero time"},
		{"time beyond int64 nanoseconds", sample("b1", "disk/1", "m", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 1),
			"append samples: sample 1 of b1: time 2300-01-01T00:00:00Z outside "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.AppendSamples(t.Context(), []telemetry.Sample{good, tc.bad})
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.want), "error %q does not start with %q", err, tc.want)
			require.Zero(t, n)
			require.Zero(t, countAll(t, s, "b1"), "nothing of a rejected batch is stored")
		})
	}
}

func testWindow(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	// Inserted in shuffled order; another box has samples at the same times.
	all := x.grid([]string{"b1", "b2"}, []string{"port/0:1", "disk/2", "disk/10"},
		[]string{telemetry.PortCRCErrors, telemetry.DiskMediaErrors}, 4, func(i int) float64 { return float64(i) })
	_, err := s.AppendSamples(ctx, all)
	require.NoError(t, err)

	type key struct {
		c, m string
		i    int
	}
	keys := func(w []telemetry.Sample) []key {
		var out []key
		for _, smp := range w {
			require.Equal(t, "b1", smp.Box)
			out = append(out, key{smp.Component, smp.Metric, int(smp.Time.Sub(x.t0) / time.Minute)})
		}
		return out
	}
	// want lists, in the expected order, the samples of b1 with minute in [lo, hi).
	want := func(lo, hi int) []key {
		var out []key
		for _, c := range []string{"disk/10", "disk/2", "port/0:1"} { // byte order
			for _, m := range []string{telemetry.DiskMediaErrors, telemetry.PortCRCErrors} {
				for i := lo; i < hi; i++ {
					out = append(out, key{c, m, i})
				}
			}
		}
		return out
	}
	minute := func(i int) time.Time { return x.t0.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name     string
		from, to time.Time
		want     []key
	}{
		{"everything", minute(-10), minute(10), want(0, 4)},
		{"from is inclusive", minute(1), minute(10), want(1, 4)},
		{"to is exclusive", minute(0), minute(3), want(0, 3)},
		{"one nanosecond after a sample excludes it", minute(1).Add(time.Nanosecond), minute(3), want(2, 3)},
		{"zero from and far future to", time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), want(0, 4)},
		{"empty when to equals from", minute(1), minute(1), nil},
		{"empty when to is before from", minute(3), minute(1), nil},
		{"empty before the first sample", minute(-10), minute(0), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.Window(ctx, "b1", tc.from, tc.to)
			require.NoError(t, err)
			require.Equal(t, tc.want, keys(w))
		})
	}
	w, err := s.Window(ctx, "nobox", minute(-10), minute(10))
	require.NoError(t, err)
	require.Empty(t, w)
}

func testWindowKind(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	comps := []string{"disk/0", "disk/10", "disk0", "disks/1", "diskette/3", "pool/p0", "d/1", "disk/ä"}
	all := x.grid([]string{"b1", "b2"}, comps, []string{telemetry.DiskPendingSectors}, 3, func(i int) float64 { return float64(i) })
	_, err := s.AppendSamples(ctx, all)
	require.NoError(t, err)
	minute := func(i int) time.Time { return x.t0.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name, kind string
		from, to   time.Time
		want       []string // component of each sample, in order
	}{
		{"only disk/ components", "disk", minute(0), minute(10), []string{"disk/0", "disk/0", "disk/0", "disk/10", "disk/10", "disk/10", "disk/ä", "disk/ä", "disk/ä"}},
		{"time bounds as Window", "disk", minute(1), minute(2), []string{"disk/0", "disk/10", "disk/ä"}},
		{"another kind", "pool", minute(0), minute(10), []string{"pool/p0", "pool/p0", "pool/p0"}},
		{"a kind nobody has", "port", minute(0), minute(10), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.WindowKind(ctx, "b1", tc.kind, tc.from, tc.to)
			require.NoError(t, err)
			var got []string
			for _, x := range w {
				require.Equal(t, "b1", x.Box)
				got = append(got, x.Component)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func testLatestSample(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	_, err := s.LatestSample(ctx, "b1")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualError(t, err, "latest sample of b1: not found")

	_, err = s.AppendSamples(ctx, []telemetry.Sample{
		sample("b1", "disk/1", "m", x.t0.Add(2*time.Hour), 1),
		sample("b1", "disk/2", "m", x.t0.Add(3*time.Hour+time.Nanosecond), 1),
		sample("b1", "disk/1", "m", x.t0, 1),
		sample("b2", "disk/1", "m", x.t0.Add(24*time.Hour), 1), // newer, other box
	})
	require.NoError(t, err)
	got, err := s.LatestSample(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, x.at(x.t0.Add(3*time.Hour+time.Nanosecond)), got)
}

func testTimesRoundTrip(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	times := []time.Time{
		x.t0,
		time.Date(2025, 12, 31, 23, 59, 59, 999999999, zone),
		time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), // before the epoch
		time.Unix(0, 0).UTC(),
		time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC),
		time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	// A backend keeps the times in its range, at its resolution.
	for i, at := range times {
		if at.Before(x.MinTime) || !x.MaxTime.IsZero() && at.After(x.MaxTime) {
			times[i] = time.Time{}
		}
	}
	kept := 0
	for i, at := range times {
		if at.IsZero() {
			continue
		}
		kept++
		_, err := s.AppendSamples(ctx, []telemetry.Sample{sample("b1", fmt.Sprintf("disk/%d", i), "m", at, float64(i))})
		require.NoError(t, err)
	}
	w, err := s.Window(ctx, "b1", time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Len(t, w, kept)
	require.GreaterOrEqual(t, kept, 3, "a backend keeps at least 2025 and the epoch")
	for _, smp := range w {
		i := int(smp.Value)
		require.Equal(t, x.at(times[i]).UTC(), smp.Time, "time %d", i)
		require.Equal(t, time.UTC, smp.Time.Location())
	}

}

func testConcurrentAppend(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	const workers, batches, perBatch = 8, 5, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var batch []telemetry.Sample
				for i := range perBatch {
					at := x.t0.Add(time.Duration(b*perBatch+i) * time.Second)
					// Every worker writes the same keys of "shared" and its own box.
					batch = append(batch,
						sample("shared", "node/0", telemetry.NodeCPUBusyPct, at, float64(w)),
						sample(fmt.Sprintf("own%d", w), "node/0", telemetry.NodeCPUBusyPct, at, float64(w)))
				}
				if _, err := s.AppendSamples(ctx, batch); err != nil {
					errs <- fmt.Errorf("worker %d batch %d: %w", w, b, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, batches*perBatch, countAll(t, s, "shared"))
	for w := range workers {
		require.Equal(t, batches*perBatch, countAll(t, s, fmt.Sprintf("own%d", w)), "worker %d", w)
	}
}

// testDeleteSamplesBefore: a year of daily samples of two boxes, deleted in
// pages down to the last 30 days; a second run deletes nothing, and a bad
// page size is refused.
func testDeleteSamplesBefore(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	const days = 365
	var in []telemetry.Sample
	for _, b := range []string{"b1", "b2"} {
		for d := range days {
			at := x.t0.AddDate(0, 0, d)
			in = append(in, sample(b, "pool/p0", telemetry.PoolUsedBytes, at, float64(d)),
				sample(b, "disk/1", telemetry.DiskTemperatureC, at, 40))
		}
	}
	_, err := s.AppendSamples(ctx, in)
	require.NoError(t, err)
	end := x.t0.AddDate(0, 0, days-1) // the newest sample
	cutoff := end.AddDate(0, 0, -29)  // keep the last 30 days, the newest included

	tests := []struct {
		name      string
		limit     int
		wantPages []int
	}{
		{"pages of 300", 300, []int{300, 300, 300, 300, 140}},
		{"nothing left", 300, []int{0}},
	}
	kept := 60
	if x.OwnRetention {
		tests = tests[1:] // deletes nothing
		kept = days * 2
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pages []int
			for {
				n, err := s.DeleteSamplesBefore(ctx, cutoff, tc.limit)
				require.NoError(t, err)
				pages = append(pages, n)
				if n < tc.limit {
					break
				}
			}
			require.Equal(t, tc.wantPages, pages)
		})
	}
	for _, b := range []string{"b1", "b2"} {
		w, err := s.Window(ctx, b, time.Time{}, end.Add(time.Second))
		require.NoError(t, err)
		require.Len(t, w, kept, "box %s", b)
		for _, smp := range w {
			require.False(t, !x.OwnRetention && smp.Time.Before(cutoff), "sample %+v survived", smp)
		}
	}
	require.NoError(t, s.Compact(ctx))
	_, err = s.DeleteSamplesBefore(ctx, cutoff, 0)
	require.ErrorIs(t, err, store.ErrBadLimit)
	require.EqualError(t, err, "delete samples before "+cutoff.Format(time.RFC3339)+": limit must be at least 1 (got 0)")
}
