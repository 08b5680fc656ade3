package activities

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// exporterSeries is one series as an exporter names it, for the
// VictoriaMetrics import API.
type exporterSeries struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

// importSeries writes series into VictoriaMetrics as a scrape would have.
func importSeries(t *testing.T, vm *tsdbtest.VM, series ...exporterSeries) {
	t.Helper()
	var body bytes.Buffer
	for _, s := range series {
		require.NoError(t, json.NewEncoder(&body).Encode(s))
	}
	resp, err := http.Post(vm.URL+"/api/v1/import", "application/json", &body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.NoError(t, vm.Flush(t.Context()))
}

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

// TestAnalyzeThroughMapping: smartctl_exporter and NetApp Harvest series,
// named as those exporters name them, are analysed through the shipped
// mappings: a disk whose reallocated sector count grows is a disk failure
// risk finding, a healthy disk is not, and Harvest's microseconds are read
// as milliseconds. Both read APIs: raw export (victoriametrics) and stepped
// query_range (prometheus, as on any Prometheus-compatible engine).
func TestAnalyzeThroughMapping(t *testing.T) {
	for _, api := range []string{tsdb.APIVictoriaMetrics, tsdb.APIPrometheus} {
		t.Run(api, func(t *testing.T) { testAnalyzeThroughMapping(t, api) })
	}
}

func testAnalyzeThroughMapping(t *testing.T, api string) {
	vm := tsdbtest.Start(t)
	end := time.Date(2026, 11, 1, 23, 55, 0, 0, time.UTC)
	const host = "host-1:9633"
	smart := func(device, id string, f func(i, n int) float64) exporterSeries {
		v, ts := every5m(end, f)
		return exporterSeries{Metric: map[string]string{"__name__": "smartctl_device_attribute", "instance": host, "job": "smartctl",
			"device": device, "attribute_id": id, "attribute_name": "Reallocated_Sector_Ct", "attribute_value_type": "raw"}, Values: v, Timestamps: ts}
	}
	growing := func(i, n int) float64 {
		if i > n-48 {
			return float64(40 + (i - (n - 48)))
		}
		return 0
	}
	healthy := func(int, int) float64 { return 0 }
	lat, lts := every5m(end, func(i, n int) float64 { return 1500 }) // µs
	importSeries(t, vm,
		smart("sda", "5", growing),
		smart("sdb", "5", healthy),
		smart("sda", "9", func(i, _ int) float64 { return float64(i) }), // another attribute: not mapped
		exporterSeries{Metric: map[string]string{"__name__": "volume_read_latency", "cluster": "cl1", "svm": "svm1", "volume": "vol0"}, Values: lat, Timestamps: lts},
	)
	m, err := tsdb.LoadMapping("../config/mappings/smartctl_exporter.yaml", "../config/mappings/netapp_harvest.yaml")
	require.NoError(t, err)
	b, err := tsdb.Open(tsdb.Options{URL: vm.URL, API: api, Mapping: m})
	require.NoError(t, err)
	f := newFixture(t)
	withEngine(t, f, b)
	ctx := t.Context()

	// Discovery finds both boxes and names the entries nothing matched.
	d, err := b.Discover(ctx, end.Add(-48*time.Hour), end.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{"cl1", host}, d.Boxes)
	require.Contains(t, d.Empty, "mapping netapp_harvest.yaml entry 2 (volume.write_latency_ms <- volume_write_latency): no series with label cluster from 2026-10-30T23:55:00Z to 2026-11-01T23:56:00Z",
		"entries are numbered in their own file")
	require.Contains(t, d.Empty, "mapping smartctl_exporter.yaml entry 2 (disk.pending_sectors <- smartctl_device_attribute{attribute_id=\"197\",attribute_value_type=\"raw\"}): no series with label instance from 2026-10-30T23:55:00Z to 2026-11-01T23:56:00Z")
	require.NoError(t, f.acts.Store.TouchBoxes(ctx, d.Boxes))

	val, err := f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: d.Boxes, JudgeSilence: false})
	require.NoError(t, err)
	var res ShardResult
	require.NoError(t, val.Get(&res))
	require.Equal(t, 2, res.Analysed)
	fs, err := f.acts.Store.Findings(ctx, store.FindingQuery{Box: host})
	require.NoError(t, err)
	require.Len(t, fs, 1, "%+v", fs)
	require.Equal(t, finding.RuleDiskFailure, fs[0].Rule)
	require.Equal(t, "disk/sda", fs[0].Component)

	w, err := f.acts.Store.Window(ctx, "cl1", end.Add(-time.Hour), end.Add(time.Minute))
	require.NoError(t, err)
	if api == tsdb.APIVictoriaMetrics {
		require.Len(t, w, 13) // 22:55 to 23:55, every 5 minutes
	} else {
		// Stepped every 15 s: 22:55 to 23:55, the last sample carried
		// forward up to the engine's staleness interval.
		require.GreaterOrEqual(t, len(w), 241)
		require.LessOrEqual(t, len(w), 245)
		for i := 1; i < len(w); i++ {
			require.Equal(t, 15*time.Second, w[i].Time.Sub(w[i-1].Time))
		}
	}
	require.Equal(t, "volume/svm1:vol0", w[0].Component)
	require.Equal(t, "volume.read_latency_ms", w[0].Metric)
	require.InDelta(t, 1.5, w[0].Value, 1e-9)
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
