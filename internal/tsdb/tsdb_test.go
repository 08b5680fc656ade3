package tsdb_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// openVM returns a backend on a fresh VictoriaMetrics.
func openVM(t *testing.T, o tsdb.Options) (*tsdb.Backend, *tsdbtest.VM) {
	t.Helper()
	vm := tsdbtest.Start(t)
	o.URL, o.FlushAfterWrite = vm.URL, true
	b, err := tsdb.Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b, vm
}

// openComposite is the store a worker opens with samples.backend:
// prometheus: SQLite for everything but samples, VictoriaMetrics for those.
func openComposite(t *testing.T) store.Store {
	t.Helper()
	base, err := store.OpenSQLite(filepath.Join(t.TempDir(), "sanwatch.db"))
	require.NoError(t, err)
	b, _ := openVM(t, tsdb.Options{})
	s := store.WithSamples(base, b)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// vmSamples is what VictoriaMetrics keeps, where it differs from SQL.
var vmSamples = storetest.SampleOptions{
	Resolution:      time.Millisecond,
	MinTime:         time.Unix(0, 0),
	MaxTime:         time.Now().Add(tsdb.MaxFutureSkew),
	KeepsDuplicates: true,
	OwnRetention:    true,
	NoSeal:          true,
}

// TestVictoriaMetricsStore runs the whole store suite on SQLite with the
// samples in a real VictoriaMetrics.
func TestVictoriaMetricsStore(t *testing.T) {
	storetest.RunWith(t, openComposite, vmSamples)
}

// TestOddNames: ids and metric names with characters that are not valid
// in Prometheus names round-trip unchanged through label values, and two
// metrics that map to one series name stay apart.
func TestOddNames(t *testing.T) {
	b, _ := openVM(t, tsdb.Options{})
	ctx := t.Context()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	odd := []telemetry.Sample{
		{Time: at, Box: `box "1" {x}=\ ä`, Component: "disk/ä b,c}", Metric: "disk.reallocated_sectors", Value: 1},
		{Time: at, Box: `box "1" {x}=\ ä`, Component: "disk/ä b,c}", Metric: "x-y.z", Value: 2},
		{Time: at, Box: `box "1" {x}=\ ä`, Component: "disk/ä b,c}", Metric: "x_y.z", Value: 3},
		{Time: at, Box: "box\n2", Component: "port/0:1", Metric: "port.crc_errors", Value: 4},
	}
	n, err := b.AppendSamples(ctx, odd)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	w, err := b.Window(ctx, `box "1" {x}=\ ä`, at, at.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, odd[:3], w)
	w, err = b.WindowKind(ctx, "box\n2", "port", at, at.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, odd[3:], w)
	require.Equal(t, "sanwatch_disk_reallocated_sectors", tsdb.SeriesName("disk.reallocated_sectors"))
	require.Equal(t, "sanwatch_x_y_z", tsdb.SeriesName("x-y.z"))
	require.Equal(t, "sanwatch__", tsdb.SeriesName("ä"))
}

// TestWindowBounded: a window holding more than max_points fails with a
// clear error instead of reading them all into memory.
func TestWindowBounded(t *testing.T) {
	b, vm := openVM(t, tsdb.Options{MaxPoints: 1000})
	ctx := t.Context()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var in []telemetry.Sample
	for i := range 5000 {
		in = append(in, telemetry.Sample{Time: at.Add(time.Duration(i) * time.Second), Box: "b1", Component: "disk/1", Metric: "disk.temperature_c", Value: 40})
	}
	_, err := b.AppendSamples(ctx, in)
	require.NoError(t, err)
	_, err = b.Window(ctx, "b1", at, at.Add(2*time.Hour))
	require.ErrorIs(t, err, tsdb.ErrTooManyPoints)
	require.EqualError(t, err, "window of b1: 2026-11-01T00:00:00Z to 2026-11-01T02:00:00Z holds more than samples.max_points = 1000 points: shorten analysis.window or raise samples.max_points: too many points")
	w, err := b.Window(ctx, "b1", at, at.Add(1000*time.Second))
	require.NoError(t, err)
	require.Len(t, w, 1000, "exactly max_points is allowed")

	// query_range steps instead: 15 s at least, at most 10,000 steps a
	// series; what is still over max_points fails the same way.
	pb, err := tsdb.Open(tsdb.Options{URL: vm.URL, API: tsdb.APIPrometheus, MaxPoints: 1000})
	require.NoError(t, err)
	w, err = pb.Window(ctx, "b1", at, at.Add(2*time.Hour))
	require.NoError(t, err)
	require.NotEmpty(t, w)
	require.LessOrEqual(t, len(w), 1000)
	require.Equal(t, 15*time.Second, w[1].Time.Sub(w[0].Time), "stepped at 15 s, not 5,000 raw samples")
	pb, err = tsdb.Open(tsdb.Options{URL: vm.URL, API: tsdb.APIPrometheus, MaxPoints: 100})
	require.NoError(t, err)
	_, err = pb.Window(ctx, "b1", at, at.Add(2*time.Hour))
	require.ErrorIs(t, err, tsdb.ErrTooManyPoints)
}

// TestEngineErrors: an unreachable engine and an engine refusing the
// credentials give errors that name the engine but never the secret.
func TestEngineErrors(t *testing.T) {
	vm := tsdbtest.Start(t)
	b, err := tsdb.Open(tsdb.Options{URL: vm.URL, BearerToken: "TOKEN-4711"})
	require.NoError(t, err)
	vm.Stop()
	_, err = b.Window(t.Context(), "b1", time.Now().Add(-time.Hour), time.Now())
	require.ErrorContains(t, err, "connection refused")
	require.NotContains(t, err.Error(), "TOKEN-4711")
	_, err = b.LatestSample(t.Context(), "b1")
	require.ErrorContains(t, err, "latest sample of b1: GET ")
	require.NotErrorIs(t, err, store.ErrNotFound)

	_, err = tsdb.Open(tsdb.Options{URL: "http://user:pw@127.0.0.1:1"})
	require.EqualError(t, err, "open samples backend: url must not hold credentials: use samples.username and samples.password_file")
	_, err = tsdb.Open(tsdb.Options{URL: "http://127.0.0.1:1", API: "graphite"})
	require.EqualError(t, err, `open samples backend: api "graphite": allowed victoriametrics, prometheus`)
	pb, err := tsdb.Open(tsdb.Options{URL: "http://127.0.0.1:1", API: tsdb.APIPrometheus})
	require.NoError(t, err)
	_, err = pb.AppendSamples(t.Context(), []telemetry.Sample{{Time: time.Now(), Box: "b", Component: "c/1", Metric: "m", Value: 1}})
	require.ErrorIs(t, err, tsdb.ErrReadOnly)
}

// TestAuth: basic auth, a bearer token and a client certificate (mTLS)
// reach an engine behind an authenticating HTTPS gateway; wrong or missing
// credentials are refused with the gateway's answer, never echoing them.
func TestAuth(t *testing.T) {
	vm := tsdbtest.Start(t)
	proxy := tsdbtest.StartProxy(t, vm.URL, func(r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok {
			return u == "sanwatch" && p == "PW-4711"
		}
		return r.Header.Get("Authorization") == "Bearer TOKEN-4711"
	})
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tls := tsdb.Options{URL: proxy.URL, CAFile: proxy.CAFile, CertFile: proxy.CertFile, KeyFile: proxy.KeyFile, FlushAfterWrite: true}
	tests := []struct {
		name    string
		mutate  func(o *tsdb.Options)
		wantErr string
	}{
		{"basic", func(o *tsdb.Options) { o.Username, o.Password = "sanwatch", "PW-4711" }, ""},
		{"bearer", func(o *tsdb.Options) { o.BearerToken = "TOKEN-4711" }, ""},
		{"wrong password", func(o *tsdb.Options) { o.Username, o.Password = "sanwatch", "WRONG-PW" }, "401 Unauthorized"},
		{"no credentials", func(*tsdb.Options) {}, "401 Unauthorized"},
		{"no client certificate", func(o *tsdb.Options) { o.BearerToken, o.CertFile, o.KeyFile = "TOKEN-4711", "", "" }, "certificate"},
		{"unknown CA", func(o *tsdb.Options) { o.BearerToken, o.CAFile = "TOKEN-4711", "" }, "certificate"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tls
			tc.mutate(&o)
			b, err := tsdb.Open(o)
			require.NoError(t, err)
			defer b.Close()
			box := fmt.Sprintf("b%d", i)
			_, err = b.AppendSamples(t.Context(), []telemetry.Sample{{Time: at, Box: box, Component: "disk/1", Metric: "disk.temperature_c", Value: 40}})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "PW")
				require.NotContains(t, err.Error(), "TOKEN")
				return
			}
			require.NoError(t, err)
			w, err := b.Window(t.Context(), box, at, at.Add(time.Second))
			require.NoError(t, err)
			require.Len(t, w, 1)
		})
	}
}
