package storetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// modelKey is one sample's key in the model of testTiersModel.
type modelKey struct {
	box, component, metric string
	ts                     int64
}

// sampleModel is what a store should hold: the last value written for
// each key.
type sampleModel map[modelKey]float64

// window returns the model's samples of box in [from, to), ordered as
// Window orders them.
func (m sampleModel) window(box, kind string, from, to time.Time) []telemetry.Sample {
	var out []telemetry.Sample
	for k, v := range m {
		if k.box != box || k.ts < from.UnixNano() || k.ts >= to.UnixNano() {
			continue
		}
		if kind != "" && !strings.HasPrefix(k.component, kind+"/") {
			continue
		}
		out = append(out, sample(k.box, k.component, k.metric, time.Unix(0, k.ts).UTC(), v))
	}
	slices.SortFunc(out, func(a, b telemetry.Sample) int {
		return cmpSamples(a, b)
	})
	return out
}

func cmpSamples(a, b telemetry.Sample) int {
	if c := strings.Compare(a.Component, b.Component); c != 0 {
		return c
	}
	if c := strings.Compare(a.Metric, b.Metric); c != 0 {
		return c
	}
	return a.Time.Compare(b.Time)
}

// testTiersModel appends runs of samples of every length (single samples
// become rows, longer runs of a series and day chunks), overwriting stored
// ones now and then, across UTC midnights, and seals and trims at random
// points; after every step each box's windows, kinds and newest sample
// must be what a plain map of the last write per key says. The seed is
// fixed, so a failure repeats.
func testTiersModel(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	sealer, seals := s.(store.Sealer)
	if !x.NoSeal {
		require.True(t, seals, "a SQL store seals its samples (store.Sealer)")
	}
	r := rand.New(rand.NewPCG(12, 34))
	boxes := []string{"b1", "b2"}
	series := [][2]string{
		{"pool/p0", telemetry.PoolUsedBytes},
		{"disk/0", telemetry.DiskTemperatureC},
		{"disk/1", telemetry.DiskReallocatedSectors},
		{"port/fc0", telemetry.PortCRCErrors},
	}
	start := x.t0.Truncate(24 * time.Hour).Add(-12 * time.Hour) // 3 days around two midnights
	span := 72 * time.Hour
	model := sampleModel{}
	floor := start // nothing before it is kept
	value := func(kind int) float64 {
		switch kind {
		case 0:
			return float64(r.IntN(100))
		case 1:
			return math.Round(r.Float64()*1e5) / 1000
		default:
			return r.NormFloat64() * 1e3
		}
	}
	check := func(step int, what string) {
		t.Helper()
		for _, b := range boxes {
			got, err := s.Window(ctx, b, start.Add(-time.Hour), start.Add(span+time.Hour))
			require.NoError(t, err)
			require.Equal(t, model.window(b, "", start.Add(-time.Hour), start.Add(span+time.Hour)), got, "step %d (%s): box %s, whole window", step, what, b)
			from := start.Add(time.Duration(r.Int64N(int64(span))))
			to := from.Add(time.Duration(r.Int64N(int64(30 * time.Hour))))
			got, err = s.Window(ctx, b, from, to)
			require.NoError(t, err)
			require.Equal(t, model.window(b, "", from, to), got, "step %d (%s): box %s, %s..%s", step, what, b, from, to)
			got, err = s.WindowKind(ctx, b, "disk", from, to)
			require.NoError(t, err)
			require.Equal(t, model.window(b, "disk", from, to), got, "step %d (%s): box %s disks", step, what, b)
			all := model.window(b, "", time.Time{}, start.Add(100*span))
			latest, err := s.LatestSample(ctx, b)
			if len(all) == 0 {
				require.ErrorIs(t, err, store.ErrNotFound)
				continue
			}
			require.NoError(t, err)
			newest := all[0].Time
			for _, smp := range all {
				if smp.Time.After(newest) {
					newest = smp.Time
				}
			}
			require.Equal(t, newest, latest, "step %d (%s): newest of %s", step, what, b)
		}
	}
	for step := range 60 {
		switch op := r.IntN(20); {
		case op < 15 || !seals && op < 19: // append
			var batch []telemetry.Sample
			for range 1 + r.IntN(4) {
				b := boxes[r.IntN(len(boxes))]
				sr := series[r.IntN(len(series))]
				n := []int{1, 2, 3, 4, 5, 12, 100, 300}[r.IntN(8)]
				// Mostly on one 5-minute grid, so that writes meet stored
				// samples (in rows or chunks) and replace them.
				stepDur := []time.Duration{5 * time.Minute, 10 * time.Minute, 5*time.Minute + 7*time.Nanosecond}[r.IntN(3)]
				slots := int64(start.Add(span).Sub(floor) / (5 * time.Minute))
				at := floor.Add(time.Duration(r.Int64N(slots)) * 5 * time.Minute)
				if r.IntN(6) == 0 {
					at = at.Add(time.Duration(1 + r.IntN(1000)))
				}
				kind := r.IntN(3)
				for i := range n {
					smp := sample(b, sr[0], sr[1], at.Add(time.Duration(i)*stepDur), value(kind))
					batch = append(batch, smp)
				}
			}
			r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			_, err := s.AppendSamples(ctx, batch)
			require.NoError(t, err, "step %d", step)
			for _, smp := range batch { // in order: the last of equal keys wins
				model[modelKey{smp.Box, smp.Component, smp.Metric, smp.Time.UnixNano()}] = smp.Value
			}
			check(step, fmt.Sprintf("append %d", len(batch)))
		case op < 19: // seal
			before := start.Add(time.Duration(r.Int64N(int64(span + 24*time.Hour))))
			sealAll(t, sealer, before, 1+r.IntN(3))
			check(step, "seal before "+before.Format(time.RFC3339))
		default: // retention at a midnight: no chunk holds both sides
			if x.OwnRetention {
				continue
			}
			cut := floor.Truncate(24 * time.Hour).Add(24 * time.Hour)
			if cut.After(start.Add(span - 24*time.Hour)) {
				continue
			}
			for {
				n, err := s.DeleteSamplesBefore(ctx, cut, 100)
				require.NoError(t, err)
				if n < 100 {
					break
				}
			}
			for k := range model {
				if k.ts < cut.UnixNano() {
					delete(model, k)
				}
			}
			floor = cut
			check(step, "retention before "+cut.Format(time.RFC3339))
		}
	}
	if seals {
		// A sample written over a chunk counts twice until its day is
		// sealed: seal everything, then the count is exact.
		sealAll(t, sealer, start.Add(100*span), 50)
		check(-1, "sealed all")
		st, err := s.Stats(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(len(model)), st.Samples, "Stats counts each sample once, in rows or chunks")
	}
}

// testSealSamples: a day of samples that arrived one at a time (rows) and
// a day that arrived as one batch (a chunk) are sealed page by page; reads
// are the same before and after, sealing again finds nothing, a late
// sample in a sealed day is read and sealed in, and retention deletes
// sealed days.
func testSealSamples(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	sealer, ok := s.(store.Sealer)
	require.True(t, ok, "a SQL store seals its samples (store.Sealer)")
	day0 := x.t0.Truncate(24 * time.Hour)
	metrics := []string{telemetry.VolumeReadLatencyMs, telemetry.VolumeWriteLatencyMs, telemetry.VolumeIOPS}
	for i := range 288 { // day 0: every 5 minutes, one post each
		at := day0.Add(time.Duration(i) * 5 * time.Minute)
		var post []telemetry.Sample
		for j, m := range metrics {
			post = append(post, sample("b1", "volume/db01", m, at, float64(i*j)/8))
		}
		_, err := s.AppendSamples(ctx, post)
		require.NoError(t, err)
	}
	_, err := s.AppendSamples(ctx, gridAt(day0.Add(24*time.Hour), []string{"b1"}, []string{"volume/db01"}, metrics, 1440, func(i int) float64 { return float64(i % 17) }))
	require.NoError(t, err)
	end := day0.Add(48 * time.Hour)
	before, err := s.Window(ctx, "b1", day0, end)
	require.NoError(t, err)
	require.Len(t, before, 3*(288+1440))

	total, pages := sealAll(t, sealer, end, 2)
	require.Equal(t, 2, pages, "3 series, 2 a page")
	require.Equal(t, store.SealResult{Series: 3, Days: 6, Rows: 3 * 288, Chunks: 3, Samples: 3 * (288 + 1440)}, total)
	after, err := s.Window(ctx, "b1", day0, end)
	require.NoError(t, err)
	require.Equal(t, before, after)
	total, _ = sealAll(t, sealer, end, 2)
	require.Zero(t, total, "nothing left to seal")
	res, err := sealer.SealSamples(ctx, end, 0, 0)
	require.ErrorIs(t, err, store.ErrBadLimit)
	require.Zero(t, res)

	late := sample("b1", "volume/db01", telemetry.VolumeIOPS, day0.Add(time.Hour+time.Second), 99)
	_, err = s.AppendSamples(ctx, []telemetry.Sample{late})
	require.NoError(t, err)
	total, _ = sealAll(t, sealer, end, 10)
	require.Equal(t, store.SealResult{Series: 1, Days: 1, Rows: 1, Chunks: 1, Samples: 289}, total)
	w, err := s.WindowKind(ctx, "b1", "volume", late.Time, late.Time.Add(time.Nanosecond))
	require.NoError(t, err)
	require.Equal(t, []telemetry.Sample{late}, w)
	st, err := s.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3*(288+1440)+1), st.Samples)

	n, err := s.DeleteSamplesBefore(ctx, day0.Add(24*time.Hour), 1000)
	require.NoError(t, err)
	require.Equal(t, 3*288+1, n, "day 0's sealed chunks, each counted by its samples")
	w, err = s.Window(ctx, "b1", time.Time{}, end)
	require.NoError(t, err)
	require.Len(t, w, 3*1440)
}

// sealAll seals everything before before, limit series a call, and returns
// the sums of the calls' results (Next and More left zero) and the calls.
func sealAll(t *testing.T, sealer store.Sealer, before time.Time, limit int) (store.SealResult, int) {
	t.Helper()
	var total store.SealResult
	var after int64
	for calls := 1; ; calls++ {
		res, err := sealer.SealSamples(t.Context(), before, after, limit)
		require.NoError(t, err)
		require.LessOrEqual(t, res.Series, limit)
		total.Series += res.Series
		total.Days += res.Days
		total.Rows += res.Rows
		total.Chunks += res.Chunks
		total.Samples += res.Samples
		if !res.More {
			return total, calls
		}
		require.Greater(t, res.Next, after, "the cursor moves on")
		after = res.Next
		require.Less(t, calls, 10000)
	}
}

// testRetentionInsideADay: a cutoff inside a day keeps the chunk that
// reaches past it, and with it the row that overrides one of its samples:
// the chunk's old value is never read again.
func testRetentionInsideADay(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	day := x.t0.Truncate(24 * time.Hour)
	var batch []telemetry.Sample
	for i := range 6 { // 01:00 .. 06:00, one chunk
		batch = append(batch, sample("b1", "pool/p0", telemetry.PoolUsedBytes, day.Add(time.Duration(1+i)*time.Hour), 1))
	}
	_, err := s.AppendSamples(ctx, batch)
	require.NoError(t, err)
	over := sample("b1", "pool/p0", telemetry.PoolUsedBytes, day.Add(time.Hour), 2)
	_, err = s.AppendSamples(ctx, []telemetry.Sample{over})
	require.NoError(t, err)
	for {
		n, err := s.DeleteSamplesBefore(ctx, day.Add(3*time.Hour+30*time.Minute), 10)
		require.NoError(t, err)
		if n < 10 {
			break
		}
	}
	w, err := s.Window(ctx, "b1", day, day.Add(24*time.Hour))
	require.NoError(t, err)
	for _, smp := range w {
		if smp.Time.Equal(over.Time) {
			require.Equal(t, 2.0, smp.Value, "the overwritten value came back")
		}
	}
	require.GreaterOrEqual(t, len(w), 3, "03:30 onwards stays")
}

// testSealDuringAppends: samples appended one at a time into a closed day
// while it is being sealed over and over (a box uploading its backlog
// while the retention run seals) are neither lost nor overwritten by the
// chunk's older values.
func testSealDuringAppends(t *testing.T, s store.Store, x samplesCase) {
	ctx := t.Context()
	sealer, ok := s.(store.Sealer)
	require.True(t, ok, "a SQL store seals its samples (store.Sealer)")
	day := x.t0.Truncate(24 * time.Hour)
	want := map[time.Time]float64{}
	var batch []telemetry.Sample
	for i := range 288 {
		at := day.Add(time.Duration(i) * 5 * time.Minute)
		batch = append(batch, sample("b1", "pool/p0", telemetry.PoolUsedBytes, at, 0))
		want[at] = 0
	}
	_, err := s.AppendSamples(ctx, batch)
	require.NoError(t, err)

	stop := make(chan struct{})
	sealed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				sealed <- nil
				return
			default:
			}
			if _, err := sealer.SealSamples(ctx, day.Add(48*time.Hour), 0, 10); err != nil {
				sealed <- err
				return
			}
		}
	}()
	for i := range 576 { // every 2.5 minutes: half overwrite the chunk's times, half are new
		at := day.Add(time.Duration(i) * 150 * time.Second)
		_, err := s.AppendSamples(ctx, []telemetry.Sample{sample("b1", "pool/p0", telemetry.PoolUsedBytes, at, float64(i+1))})
		require.NoError(t, err)
		want[at] = float64(i + 1)
	}
	close(stop)
	require.NoError(t, <-sealed)
	sealAll(t, sealer, day.Add(48*time.Hour), 10)
	w, err := s.Window(ctx, "b1", day, day.Add(24*time.Hour))
	require.NoError(t, err)
	got := map[time.Time]float64{}
	for _, smp := range w {
		got[smp.Time] = smp.Value
	}
	require.Equal(t, want, got)
}
