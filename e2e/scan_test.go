package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestFleetScanSurvivesAKilledAnalysisWorker runs a FleetScan on two analysis
// worker processes sharing the PostgreSQL store (the multi-host setup), kills
// one of them mid-scan, and checks that both did shards, the scan completed,
// and every box was analysed exactly once.
func TestFleetScanSurvivesAKilledAnalysisWorker(t *testing.T) {
	h := newHarness(t, harnessOptions{postgres: true})
	h.starter("simulate", "--boxes", "24", "--hours", "48", "--faults", "9", "--seed", "3", "--out", filepath.Join(h.dir, "sim"))
	h.startWorker("main,email")
	w1 := h.startWorker("analysis")
	w2 := h.startWorker("analysis")
	h.starter("ingest", "--no-analyze", filepath.Join(h.dir, "sim", "batches"))

	out := h.starter("scan", "--id", "scan-e2e", "--shard-size", "1", "--max-in-flight", "4", "--wait=false")
	require.Contains(t, out, "scan scan-e2e started")
	ctx := context.Background()
	require.Eventually(t, func() bool {
		v, err := h.c.QueryWorkflow(ctx, "scan-e2e", "", workflows.QueryProgress)
		if err != nil {
			return false
		}
		var p workflows.ScanProgress
		return v.Get(&p) == nil && p.Done >= 6
	}, time.Minute, 50*time.Millisecond)
	w2.kill()

	var rep store.ScanReport
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, h.c.GetWorkflow(ctx2, "scan-e2e", "").Get(ctx2, &rep))
	require.Equal(t, 24, rep.Boxes)
	require.Equal(t, 24, rep.Analysed, "every box analysed exactly once")
	require.Empty(t, rep.FailedShards)
	require.Equal(t, 9, rep.Findings)
	require.Contains(t, w1.Output(), "shard analysed")
	require.Contains(t, w2.Output(), "shard analysed")
	recordHistory(t, h, "scan-e2e", "FleetScan-two-workers")

	out = h.starter("scans")
	require.Contains(t, out, "scan-e2e")
	out = h.starter("scan-report", "scan-e2e")
	require.Contains(t, out, "boxes:     24 (analysed 24)")
}

// TestScheduleTriggersScans drives every `starter schedule` command against
// the Temporal Schedules API.
func TestScheduleTriggersScans(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.starter("simulate", "--boxes", "5", "--hours", "6", "--faults", "0", "--out", filepath.Join(h.dir, "sim"))
	h.inProcess(nil)

	out := h.starter("schedule", "create", "--id", "every-15m", "--every", "15m", "--selector", "all", "--no-remediate")
	require.Contains(t, out, "schedule every-15m created")
	out = h.starter("schedule", "list")
	require.Regexp(t, regexp.MustCompile(`every-15m\s+FleetScan\s+false`), out)
	h.starter("schedule", "trigger", "every-15m")

	var reps []store.ScanReport
	st := h.openStore()
	require.Eventually(t, func() bool {
		var err error
		reps, err = st.ScanReports(context.Background(), 0)
		return err == nil && len(reps) == 1
	}, time.Minute, 200*time.Millisecond)
	require.True(t, strings.HasPrefix(reps[0].ID, "scan-every-15m"), reps[0].ID)
	require.Equal(t, 5, reps[0].Analysed)

	out = h.starter("schedule", "describe", "every-15m")
	require.Contains(t, out, "every:     15m0s")
	require.Contains(t, out, "overlap:   Skip")
	require.Contains(t, out, "catch-up:  15m0s", "a missed run is caught up only within one interval")
	require.Contains(t, out, "timeout:   45m0s", "a hung scan ends after 3 intervals instead of skipping every later one")
	require.Contains(t, out, "runs:      1")
	h.starter("schedule", "pause", "every-15m", "--note", "maintenance")
	require.Contains(t, h.starter("schedule", "describe", "every-15m"), "paused:    true")
	h.starter("schedule", "unpause", "every-15m")
	require.Contains(t, h.starter("schedule", "describe", "every-15m"), "paused:    false")
	h.starter("schedule", "delete", "every-15m")
	out, code := h.run("starter", "schedule", "describe", "every-15m")
	require.Equal(t, 1, code, out)

	out, code = h.run("starter", "schedule", "create", "--id", "x", "--every", "15m", "--cron", "0 * * * *")
	require.Equal(t, 1, code)
	require.Contains(t, out, "give exactly one of --every")
	out, code = h.run("starter", "scan", "--selector", "color=blue")
	require.Equal(t, 1, code)
	require.Contains(t, out, `unknown key "color"`)
}
