package tsdb_test

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// nativeSeries turns samples into sanwatch's own series, as AppendSamples
// names and labels them, for a Prometheus to hold.
func nativeSeries(samples []telemetry.Sample) []tsdbtest.Series {
	type key struct{ box, comp, metric string }
	by := map[key]int{}
	var out []tsdbtest.Series
	for _, s := range samples {
		k := key{s.Box, s.Component, s.Metric}
		i, ok := by[k]
		if !ok {
			i = len(out)
			by[k] = i
			out = append(out, tsdbtest.Series{Metric: map[string]string{
				"__name__": tsdb.SeriesName(s.Metric), tsdb.LabelBox: s.Box, tsdb.LabelComponent: s.Component, tsdb.LabelMetric: s.Metric,
			}})
		}
		out[i].Values = append(out[i].Values, s.Value)
		out[i].Timestamps = append(out[i].Timestamps, s.Time.UnixMilli())
	}
	return out
}

// every returns n samples of one series, step apart from at, valued by f.
func every(at time.Time, step time.Duration, n int, box, comp, metric string, f func(i int) float64) []telemetry.Sample {
	out := make([]telemetry.Sample, n)
	for i := range out {
		out[i] = telemetry.Sample{Time: at.Add(time.Duration(i) * step).UTC(), Box: box, Component: comp, Metric: metric, Value: f(i)}
	}
	return out
}

func sortSamples(s []telemetry.Sample) []telemetry.Sample {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(x, y telemetry.Sample) int {
		return cmp.Or(strings.Compare(x.Component, y.Component), strings.Compare(x.Metric, y.Metric), x.Time.Compare(y.Time))
	})
	return s
}

// TestPrometheusWindows reads windows from a real Prometheus with
// query_range (samples.api: prometheus): sanwatch's own series with ids and
// metric names Prometheus could not hold as names (kept in label values),
// and exporter series through a mapping whose metric name, label values and
// box ids hold every character Prometheus allows there. Samples 15 s apart
// on the step grid come back exactly.
func TestPrometheusWindows(t *testing.T) {
	// Within the last day: the Prometheus API looks back 31 days at most.
	at := time.Now().Add(-6 * time.Hour).Truncate(time.Hour).UTC()
	const (
		oddBox  = `box "1" {x}=\ ä`
		oddComp = "disk/ä b,c}\n"
		box2    = "box\n2"
	)
	const n = 40 // 10 minutes at 15 s
	inc := func(i int) float64 { return float64(i) }
	var native []telemetry.Sample
	native = append(native, every(at, 15*time.Second, n, oddBox, oddComp, "disk.reallocated_sectors", inc)...)
	native = append(native, every(at, 15*time.Second, n, oddBox, oddComp, "x-y.z", func(i int) float64 { return 0.5 + float64(i) })...)
	native = append(native, every(at, 15*time.Second, n, oddBox, oddComp, "x_y.z", func(i int) float64 { return -1e-9 * float64(i) })...)
	native = append(native, every(at, 15*time.Second, n, box2, "port/0:1", "port.crc_errors", inc)...)
	native = append(native, every(at, 15*time.Second, n, box2, "disk/1", "disk.temperature_c", func(int) float64 { return 41.25 })...)

	// An exporter series through a mapping: a recording rule's name
	// (colons), a box id that is an IPv6 address and port, a device
	// label with spaces, quotes and a backslash, and a matcher on a value
	// with a quote.
	const (
		host   = `[::1]:9633`
		device = `/dev/disk/by-id/ata-"Disk" \ 1`
	)
	exporter := tsdbtest.Series{Metric: map[string]string{
		"__name__": "instance:smartctl_temperature_celsius:max", "instance": host, "device": device, "scope": `cur"rent`,
	}}
	for i := range n {
		exporter.Values = append(exporter.Values, 30+float64(i%3))
		exporter.Timestamps = append(exporter.Timestamps, at.Add(time.Duration(i)*15*time.Second).UnixMilli())
	}
	other := exporter // another scope: the matcher leaves it out
	other.Metric = map[string]string{"__name__": exporter.Metric["__name__"], "instance": host, "device": device, "scope": "max"}

	prom := tsdbtest.StartPrometheus(t, append(nativeSeries(native), exporter, other)...)
	ctx := t.Context()
	b, err := tsdb.Open(tsdb.Options{URL: prom.URL, API: tsdb.APIPrometheus})
	require.NoError(t, err)
	defer b.Close()

	mapping := filepath.Join(t.TempDir(), "odd.yaml")
	require.NoError(t, os.WriteFile(mapping, []byte(`box_label: instance
entries:
  - metric: disk.temperature_c
    selector: 'instance:smartctl_temperature_celsius:max{scope="cur\"rent"}'
    component: 'disk/{{.device}}'
`), 0o600))
	m, err := tsdb.LoadMapping(mapping)
	require.NoError(t, err)
	mb, err := tsdb.Open(tsdb.Options{URL: prom.URL, API: tsdb.APIPrometheus, Mapping: m})
	require.NoError(t, err)
	defer mb.Close()

	of := func(box, comp string) []telemetry.Sample {
		var out []telemetry.Sample
		for _, s := range native {
			if s.Box == box && (comp == "" || strings.HasPrefix(s.Component, comp)) {
				out = append(out, s)
			}
		}
		return sortSamples(out)
	}
	var mapped []telemetry.Sample
	for i, v := range exporter.Values {
		mapped = append(mapped, telemetry.Sample{Time: time.UnixMilli(exporter.Timestamps[i]).UTC(), Box: host,
			Component: "disk/" + device, Metric: "disk.temperature_c", Value: v})
	}
	end := at.Add(n * 15 * time.Second)
	tests := []struct {
		name     string
		b        *tsdb.Backend
		box      string
		kind     string
		from, to time.Time
		want     []telemetry.Sample
	}{
		{"odd ids and names", b, oddBox, "", at, end, of(oddBox, "")},
		{"newline in the box id", b, box2, "", at, end, of(box2, "")},
		{"one kind", b, box2, "port", at, end, of(box2, "port/")},
		{"kind with none", b, oddBox, "port", at, end, nil},
		{"part of the window", b, box2, "disk", at.Add(5 * time.Minute), at.Add(6 * time.Minute), of(box2, "disk/")[20:24]},
		{"unknown box", b, "box 3", "", at, end, nil},
		{"mapping", mb, host, "", at, end, mapped},
		{"mapping, one kind", mb, host, "disk", at, end, mapped},
		{"mapping, another box", mb, "[::1]:9634", "", at, end, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w []telemetry.Sample
			var err error
			if tc.kind == "" {
				w, err = tc.b.Window(ctx, tc.box, tc.from, tc.to)
			} else {
				w, err = tc.b.WindowKind(ctx, tc.box, tc.kind, tc.from, tc.to)
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, w)
		})
	}

	// The newest sample, and the boxes a mapping finds.
	latest, err := b.LatestSample(ctx, box2)
	require.NoError(t, err)
	require.Equal(t, end.Add(-15*time.Second), latest)
	_, err = b.LatestSample(ctx, "box 3")
	require.ErrorIs(t, err, store.ErrNotFound)
	latest, err = mb.LatestSample(ctx, host)
	require.NoError(t, err)
	require.Equal(t, end.Add(-15*time.Second), latest)
	d, err := mb.Discover(ctx, at, end)
	require.NoError(t, err)
	require.Equal(t, []string{host}, d.Boxes)
	d, err = b.Discover(ctx, at, end)
	require.NoError(t, err)
	require.Equal(t, []string{box2, oddBox}, d.Boxes) // "\n" sorts before " "

	// Prometheus is read-only to sanwatch.
	_, err = b.AppendSamples(ctx, native[:1])
	require.ErrorIs(t, err, tsdb.ErrReadOnly)
}

// TestPrometheusMaxPoints: a real Prometheus answers query_range at the
// step sanwatch picks however long the window (never over its 11,000
// points a series), and what is still over samples.max_points fails with
// ErrTooManyPoints and a message naming the key.
func TestPrometheusMaxPoints(t *testing.T) {
	at := time.Now().Add(-4 * time.Hour).Truncate(time.Hour).UTC()
	// Two hours of a sample a second: 7,200 raw samples.
	raw := every(at, time.Second, 7200, "b1", "disk/1", "disk.temperature_c", func(i int) float64 { return float64(40 + i%2) })
	prom := tsdbtest.StartPrometheus(t, nativeSeries(raw)...)
	ctx := t.Context()
	open := func(maxPoints int) *tsdb.Backend {
		b, err := tsdb.Open(tsdb.Options{URL: prom.URL, API: tsdb.APIPrometheus, MaxPoints: maxPoints})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	tests := []struct {
		name      string
		maxPoints int
		from, to  time.Time
		wantLen   int           // 0: an error
		wantStep  time.Duration // between the first two points
		wantErr   string
	}{
		{"stepped at 15 s", 1000, at, at.Add(2 * time.Hour), 480, 15 * time.Second, ""},
		{"exactly max_points", 480, at, at.Add(2 * time.Hour), 480, 15 * time.Second, ""},
		{"over max_points", 479, at, at.Add(2 * time.Hour), 0, 0,
			"window of b1: " + at.Format(time.RFC3339) + " to " + at.Add(2*time.Hour).Format(time.RFC3339) +
				" holds more than samples.max_points = 479 points: shorten analysis.window or raise samples.max_points: too many points"},
		// 31 days: 2,678,400 s / 10,000 steps -> a step of 269 s, its grid
		// 84 s into the data; the 2 h of data and the 5 minutes of
		// Prometheus' lookback after them hold 28 steps.
		{"a month", 1000, at.Add(-30 * 24 * time.Hour), at.Add(24 * time.Hour), 28, 269 * time.Second, ""},
		// A year at under 10,000 steps: Prometheus refuses more than 11,000.
		{"a year", 1000, at.Add(-365 * 24 * time.Hour), at.Add(2 * time.Hour), -1, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := open(tc.maxPoints).Window(ctx, "b1", tc.from, tc.to)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, tsdb.ErrTooManyPoints)
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.wantLen < 0 {
				require.NotEmpty(t, w)
				return
			}
			require.Len(t, w, tc.wantLen)
			require.Equal(t, tc.wantStep, w[1].Time.Sub(w[0].Time))
		})
	}
}
