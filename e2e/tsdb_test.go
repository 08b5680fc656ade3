package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestPipelineOnVictoriaMetrics runs the pipeline with samples.backend:
// prometheus against a real VictoriaMetrics: ingest writes the samples to
// the engine (none to SQLite), a FleetScan reads them back and finds the
// simulated faults; then, with the engine down, a scan reports its shards
// failed and resolves nothing.
func TestPipelineOnVictoriaMetrics(t *testing.T) {
	vm := tsdbtest.Start(t)
	h := newHarness(t, harnessOptions{extraYAML: fmt.Sprintf(`analysis:
  shard_deadline: 20s
samples:
  backend: prometheus
  url: %s
`, vm.URL)})
	sim := filepath.Join(h.dir, "sim")
	h.starter("simulate", "--boxes", "6", "--hours", "48", "--faults", "3", "--seed", "5", "--out", sim)
	h.startWorker("main,analysis,email")
	h.starter("ingest", "--no-analyze", filepath.Join(sim, "batches"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	scan := func(id string) store.ScanReport {
		run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue},
			workflows.FleetScan, workflows.FleetScanInput{ShardSize: 2})
		require.NoError(t, err)
		var rep store.ScanReport
		require.NoError(t, run.Get(ctx, &rep))
		return rep
	}
	rep := scan("scan-vm")
	require.Equal(t, 6, rep.Boxes)
	require.Equal(t, 6, rep.Analysed)
	require.Empty(t, rep.FailedShards)
	require.GreaterOrEqual(t, rep.Findings, 3, "the simulated faults are found from the engine's samples")

	// The samples are in the engine, none in SQLite.
	st := h.openStore()
	stats, err := st.Stats(ctx)
	require.NoError(t, err)
	require.Positive(t, stats.Samples)
	base, err := store.OpenSQLite(h.config().Store.Path)
	require.NoError(t, err)
	baseStats, err := base.Stats(ctx)
	require.NoError(t, err)
	require.NoError(t, base.Close())
	require.Zero(t, baseStats.Samples)
	require.Equal(t, stats.Findings, baseStats.Findings, "findings are kept in SQLite")
	before, err := st.Findings(ctx, store.FindingQuery{Status: finding.StatusOpen})
	require.NoError(t, err)
	require.NotEmpty(t, before)

	// The engine goes down: every shard fails (retried until the shard
	// deadline), the scan still ends and reports them, and no finding changes.
	vm.Stop()
	rep = scan("scan-vm-down")
	require.Equal(t, 6, rep.Boxes)
	require.Zero(t, rep.Analysed)
	require.Len(t, rep.FailedShards, 3)
	require.Contains(t, rep.FailedShards[0], "connection refused")
	after, err := st.Findings(ctx, store.FindingQuery{Status: finding.StatusOpen})
	require.NoError(t, err)
	require.Len(t, after, len(before), "nothing resolved because data could not be read")
}
