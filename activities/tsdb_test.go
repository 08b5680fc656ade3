package activities

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// every5m returns 48 h of 5-minute timestamps ending at end, valued by f.
func every5m(end time.Time, f func(i, n int) float64) ([]float64, []int64) {
	const n = 576
	var vs []float64
	var ts []int64
	for i := range n {
		ts = append(ts, end.Add(-time.Duration(n-1-i)*5*time.Minute).UnixMilli())
		vs = append(vs, f(i, n))
	}
	return vs, ts
}

// withEngine swaps the fixture's store for SQLite plus samples in the
// engine behind b.
func withEngine(t *testing.T, f *fixture, b *tsdb.Backend) {
	t.Helper()
	base, err := store.OpenSQLite(filepath.Join(t.TempDir(), "base.db"))
	require.NoError(t, err)
	f.acts.Store = store.WithSamples(base, b)
	t.Cleanup(func() { _ = f.acts.Store.Close() })
}

// mappedSeries is what smartctl_exporter and NetApp Harvest would have
// scraped over the 48 h ending at end: on host, disk sda's reallocated
// sector count grows over the last 4 h, sdb's stays 0 (and an attribute no
// entry maps counts up); on cluster cl1, a volume's read latency is a
// steady 1,500 µs and an aggregate is half full.
func mappedSeries(end time.Time, host string) []tsdbtest.Series {
	smart := func(device, id string, f func(i, n int) float64) tsdbtest.Series {
		v, ts := every5m(end, f)
		return tsdbtest.Series{Metric: map[string]string{"__name__": "smartctl_device_attribute", "instance": host, "job": "smartctl",
			"device": device, "attribute_id": id, "attribute_name": "Reallocated_Sector_Ct", "attribute_value_type": "raw"}, Values: v, Timestamps: ts}
	}
	harvest := func(name string, labels map[string]string, v float64) tsdbtest.Series {
		vs, ts := every5m(end, func(int, int) float64 { return v })
		m := map[string]string{"__name__": name, "cluster": "cl1", "datacenter": "dc1"}
		for k, v := range labels {
			m[k] = v
		}
		return tsdbtest.Series{Metric: m, Values: vs, Timestamps: ts}
	}
	growing := func(i, n int) float64 {
		if i > n-48 {
			return float64(40 + (i - (n - 48)))
		}
		return 0
	}
	vol := map[string]string{"svm": "svm1", "volume": "vol0"}
	aggr := map[string]string{"aggr": "aggr1", "node": "n1"}
	return []tsdbtest.Series{
		smart("sda", "5", growing),
		smart("sdb", "5", func(int, int) float64 { return 0 }),
		smart("sda", "9", func(i, _ int) float64 { return float64(i) }), // another attribute: not mapped
		harvest("volume_read_latency", vol, 1500),                       // µs
		harvest("aggr_space_used", aggr, 5e12),
		harvest("aggr_space_total", aggr, 1e13),
	}
}

// TestAnalyzeThroughMapping: smartctl_exporter and NetApp Harvest series,
// named as those exporters name them, are analysed through the shipped
// mappings: a disk whose reallocated sector count grows is a disk failure
// risk finding, a healthy disk is not, and Harvest's microseconds are read
// as milliseconds. From a real VictoriaMetrics through both read APIs (raw
// export, and stepped query_range as on any Prometheus-compatible engine),
// and from a real Prometheus (query_range), where the series are what
// promtool backfilled.
func TestAnalyzeThroughMapping(t *testing.T) {
	tests := []struct {
		name       string
		api        string
		prometheus bool // a real Prometheus, else VictoriaMetrics
	}{
		{"victoriametrics export", tsdb.APIVictoriaMetrics, false},
		{"victoriametrics query_range", tsdb.APIPrometheus, false},
		{"prometheus query_range", tsdb.APIPrometheus, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testAnalyzeThroughMapping(t, tc.api, tc.prometheus) })
	}
}

func testAnalyzeThroughMapping(t *testing.T, api string, prometheus bool) {
	// Up to now: the Prometheus API finds a box's newest sample within
	// 31 days of now.
	end := time.Now().UTC().Truncate(5 * time.Minute).Add(-5 * time.Minute)
	const host = "host-1:9633"
	series := mappedSeries(end, host)
	var url string
	if prometheus {
		url = tsdbtest.StartPrometheus(t, series...).URL
	} else {
		vm := tsdbtest.Start(t)
		require.NoError(t, vm.Import(t.Context(), series...))
		url = vm.URL
	}
	m, err := tsdb.LoadMapping("../config/mappings/smartctl_exporter.yaml", "../config/mappings/netapp_harvest.yaml")
	require.NoError(t, err)
	b, err := tsdb.Open(tsdb.Options{URL: url, API: api, Mapping: m})
	require.NoError(t, err)
	f := newFixture(t)
	withEngine(t, f, b)
	ctx := t.Context()

	// Discovery finds both boxes and names the entries nothing matched.
	from, to := end.Add(-48*time.Hour), end.Add(time.Minute)
	span := " from " + from.Format(time.RFC3339) + " to " + to.Format(time.RFC3339)
	d, err := b.Discover(ctx, from, to)
	require.NoError(t, err)
	require.Equal(t, []string{"cl1", host}, d.Boxes)
	require.Contains(t, d.Empty, "mapping netapp_harvest.yaml entry 2 (volume.write_latency_ms <- volume_write_latency): no series with label cluster"+span,
		"entries are numbered in their own file")
	require.Contains(t, d.Empty, "mapping smartctl_exporter.yaml entry 2 (disk.pending_sectors <- smartctl_device_attribute{attribute_id=\"197\",attribute_value_type=\"raw\"}): no series with label instance"+span)
	require.NoError(t, f.acts.Store.TouchBoxes(ctx, d.Boxes))

	val, err := f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: d.Boxes, JudgeSilence: false})
	require.NoError(t, err)
	var res ShardResult
	require.NoError(t, val.Get(&res))
	require.Equal(t, 2, res.Analysed)
	require.Zero(t, res.NoData)
	fs, err := f.acts.Store.Findings(ctx, store.FindingQuery{Box: host})
	require.NoError(t, err)
	require.Len(t, fs, 1, "%+v", fs)
	require.Equal(t, finding.RuleDiskFailure, fs[0].Rule)
	require.Equal(t, "disk/sda", fs[0].Component)
	fs, err = f.acts.Store.Findings(ctx, store.FindingQuery{Box: "cl1"})
	require.NoError(t, err)
	require.Empty(t, fs, "a steady volume and a half-full aggregate")

	w, err := f.acts.Store.Window(ctx, "cl1", end.Add(-time.Hour), end.Add(time.Minute))
	require.NoError(t, err)
	byMetric := map[string][]telemetry.Sample{}
	for _, s := range w {
		byMetric[s.Metric] = append(byMetric[s.Metric], s)
	}
	require.Len(t, byMetric, 3, "volume.read_latency_ms, pool.used_bytes, pool.total_bytes")
	lat := byMetric["volume.read_latency_ms"]
	if api == tsdb.APIVictoriaMetrics {
		require.Len(t, lat, 13) // the last hour, every 5 minutes, both ends in
	} else {
		// Stepped every 15 s: an hour and a minute, the last sample
		// carried forward up to the engine's lookback (5 minutes).
		require.Len(t, lat, 244)
		for i := 1; i < len(lat); i++ {
			require.Equal(t, 15*time.Second, lat[i].Time.Sub(lat[i-1].Time))
		}
	}
	require.Equal(t, "volume/svm1:vol0", lat[0].Component)
	require.InDelta(t, 1.5, lat[0].Value, 1e-9, "µs read as ms")
	require.Equal(t, "pool/aggr1", byMetric["pool.used_bytes"][0].Component)
	require.Equal(t, 5e12, byMetric["pool.used_bytes"][0].Value)
	require.Equal(t, 1e13, byMetric["pool.total_bytes"][0].Value)
}

// TestMappingMatchingNothing: a mapping none of whose entries match gives
// an error naming each entry, not an empty fleet.
func TestMappingMatchingNothing(t *testing.T) {
	vm := tsdbtest.Start(t)
	m, err := tsdb.LoadMapping("../config/mappings/netapp_harvest.yaml")
	require.NoError(t, err)
	b, err := tsdb.Open(tsdb.Options{URL: vm.URL, Mapping: m})
	require.NoError(t, err)
	now := time.Now()
	_, err = b.Discover(t.Context(), now.Add(-time.Hour), now)
	require.ErrorIs(t, err, tsdb.ErrNothingMatched)
	require.ErrorContains(t, err, "mapping netapp_harvest.yaml entry 1 (volume.read_latency_ms <- volume_read_latency): no series with label cluster")
	require.ErrorContains(t, err, "mapping netapp_harvest.yaml entry 5 (pool.total_bytes <- aggr_space_total): no series with label cluster")
}

// TestEngineUnreachable: with the engine down, analysing a shard fails with
// a retryable error (FleetScan reports the shard failed), and verifying an
// open finding fails instead of saying it is gone: nothing is resolved
// because data could not be read.
func TestEngineUnreachable(t *testing.T) {
	vm := tsdbtest.Start(t)
	b, err := tsdb.Open(tsdb.Options{URL: vm.URL, Timeout: 2 * time.Second})
	require.NoError(t, err)
	vm.Stop()
	f := newFixture(t)
	withEngine(t, f, b)
	ctx := t.Context()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	open := finding.Finding{Box: "box-0001", Rule: finding.RuleDiskFailure, Component: "disk/3", Severity: finding.Critical,
		Title: "disk 3", DetectedAt: at}
	_, err = f.acts.Store.UpsertFinding(ctx, open)
	require.NoError(t, err)

	_, err = f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: []string{"box-0001"}, JudgeSilence: true})
	require.Error(t, err)
	require.ErrorContains(t, err, "analyze box box-0001: latest sample: latest sample of box-0001:")
	require.ErrorContains(t, err, "connection refused")
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		require.False(t, appErr.NonRetryable(), "an unreachable engine is retried")
	}

	_, err = f.env.ExecuteActivity(f.acts.VerifyFinding, VerifyInput{Fingerprint: open.Fingerprint()})
	require.ErrorContains(t, err, "connection refused")
	got, err := f.acts.Store.Finding(ctx, open.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, finding.StatusOpen, got.Status)
}

// TestTooManyPointsIsNotRetryable: a box whose window holds more samples
// than samples.max_points fails AnalyzeShard and VerifyFinding with a
// non-retryable error (retrying reads the same window) whose message names
// the key, and the open finding stays as it was.
func TestTooManyPointsIsNotRetryable(t *testing.T) {
	vm := tsdbtest.Start(t)
	b, err := tsdb.Open(tsdb.Options{URL: vm.URL, MaxPoints: 100, FlushAfterWrite: true})
	require.NoError(t, err)
	f := newFixture(t)
	withEngine(t, f, b)
	ctx := t.Context()
	end := time.Date(2026, 11, 1, 23, 55, 0, 0, time.UTC)
	var samples []telemetry.Sample
	vs, ts := every5m(end, func(int, int) float64 { return 40 })
	for i, v := range vs {
		samples = append(samples, telemetry.Sample{Time: time.UnixMilli(ts[i]).UTC(), Box: "box-0001", Component: "disk/1", Metric: "disk.temperature_c", Value: v})
	}
	_, err = f.acts.Store.AppendSamples(ctx, samples)
	require.NoError(t, err)
	open := finding.Finding{Box: "box-0001", Rule: finding.RuleDiskFailure, Component: "disk/1", Severity: finding.Critical,
		Title: "disk 1", DetectedAt: end}
	_, err = f.acts.Store.UpsertFinding(ctx, open)
	require.NoError(t, err)

	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"AnalyzeShard", func() error {
			_, err := f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: []string{"box-0002", "box-0001"}})
			return err
		}, "analyze box box-0001: read window: window of box-0001: "},
		{"VerifyFinding", func() error {
			_, err := f.env.ExecuteActivity(f.acts.VerifyFinding, VerifyInput{Fingerprint: open.Fingerprint()})
			return err
		}, "verify " + open.Fingerprint() + ": read window: window of box-0001: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.True(t, appErr.NonRetryable(), "%v", err)
			require.Equal(t, ErrTypeTooManyPoints, appErr.Type())
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "holds more than samples.max_points = 100 points: shorten analysis.window or raise samples.max_points")
		})
	}
	got, err := f.acts.Store.Finding(ctx, open.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, finding.StatusOpen, got.Status)
}

// requestCounter counts requests by path, as a tsdbtest.Proxy's allow.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) allow(r *http.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.URL.Path]++
	return true
}

// take returns the counts of imports and flushes since the last take.
func (c *requestCounter) take() (imports, flushes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	imports, flushes = c.n["/api/v1/import"], c.n["/internal/force_flush"]
	clear(c.n)
	return imports, flushes
}

// TestStoreBatchFlushesOnce: with a SampleFlusher (the worker's wiring for
// samples.flush_writes), a batch stored in ten writes flushes the engine
// once, at the end, instead of after each write; either way a read right
// after StoreBatch sees every sample. A batch stored before writes and
// flushes nothing.
func TestStoreBatchFlushesOnce(t *testing.T) {
	vm := tsdbtest.Start(t)
	var eng requestCounter
	proxy := tsdbtest.StartProxy(t, vm.URL, eng.allow)
	tests := []struct {
		name           string
		box            string
		flushEachWrite bool
		flusher        bool
		wantImports    int
		wantFlushes    int
	}{
		{"flush after each write", "box-0001", true, false, 10, 10},
		{"flush once a batch", "box-0002", false, true, 10, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tsdb.Open(tsdb.Options{URL: proxy.URL, CAFile: proxy.CAFile, CertFile: proxy.CertFile, KeyFile: proxy.KeyFile,
				FlushAfterWrite: tc.flushEachWrite})
			require.NoError(t, err)
			f := newFixture(t) // 100 samples a chunk
			withEngine(t, f, b)
			if tc.flusher {
				f.acts.SampleFlusher = b
			}
			at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			var csv strings.Builder
			csv.WriteString("time,box,component,metric,value\n")
			for i := range 1000 {
				fmt.Fprintf(&csv, "%s,%s,disk/%d,disk.temperature_c,%d\n", at.Add(time.Duration(i/10)*time.Minute).Format(time.RFC3339), tc.box, i%10, 30+i%7)
			}
			p := f.write(t, tc.box+".csv", csv.String())
			eng.take()
			val, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
			require.NoError(t, err)
			var sum BatchSummary
			require.NoError(t, val.Get(&sum))
			require.Equal(t, int64(1000), sum.Accepted)
			imports, flushes := eng.take()
			require.Equal(t, tc.wantImports, imports)
			require.Equal(t, tc.wantFlushes, flushes)
			w, err := f.acts.Store.Window(t.Context(), tc.box, at, at.Add(2*time.Hour))
			require.NoError(t, err)
			require.Len(t, w, 1000, "searchable when StoreBatch returns")

			val, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
			require.NoError(t, err)
			require.NoError(t, val.Get(&sum))
			require.True(t, sum.AlreadyStored)
			imports, flushes = eng.take()
			require.Zero(t, imports+flushes, "a batch stored before")
		})
	}
}
