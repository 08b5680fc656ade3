package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
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
	out, code = h.run("starter", "schedule", "create", "--id", "x", "--every", "5m")
	require.Equal(t, 1, code)
	require.Contains(t, out, "--timeout 15m0s must be longer than analysis.shard_deadline (30m0s)")
	out, code = h.run("starter", "scan", "--selector", "color=blue")
	require.Equal(t, 1, code)
	require.Contains(t, out, `unknown key "color"`)
}

// TestScheduleBackfill backfills two hours of an hourly schedule and checks
// that the two scans due then run, with the schedule's ids; bad times are
// refused before anything is asked of Temporal.
func TestScheduleBackfill(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(nil)
	h.starter("schedule", "create", "--id", "hourly", "--every", "1h", "--no-remediate")

	base := time.Now().UTC().Truncate(time.Hour)
	from, to := base.Add(-3*time.Hour+time.Minute), base.Add(-time.Minute) // due: base-2h, base-1h
	out := h.starter("schedule", "backfill", "--id", "hourly", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	require.Contains(t, out, fmt.Sprintf("schedule hourly: backfill from %s to %s requested (overlap buffer-all)",
		from.Format(time.RFC3339), to.Format(time.RFC3339)))

	st := h.openStore()
	var ids []string
	require.Eventually(t, func() bool {
		reps, err := st.ScanReports(context.Background(), 0)
		ids = ids[:0]
		for _, r := range reps {
			ids = append(ids, r.ID)
		}
		sort.Strings(ids)
		return err == nil && len(reps) == 2
	}, 2*time.Minute, 200*time.Millisecond, "scan reports %v", ids)
	require.Equal(t, []string{
		"scan-hourly-" + base.Add(-2*time.Hour).Format(time.RFC3339),
		"scan-hourly-" + base.Add(-time.Hour).Format(time.RFC3339),
	}, ids)
	require.Contains(t, h.starter("schedule", "describe", "hourly"), "runs:      2 (skipped for overlap 0, missed the catch-up window 0)")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a time", []string{"--id", "hourly", "--from", "yesterday", "--to", to.Format(time.RFC3339)},
			`starter: --from "yesterday": want a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)`},
		{"reversed", []string{"--id", "hourly", "--from", "2026-11-02", "--to", "2026-11-01"},
			"starter: --from 2026-11-02T00:00:00Z is not before --to 2026-11-01T00:00:00Z"},
		{"no such schedule", []string{"--id", "nope", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)},
			"starter: backfill schedule nope: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := h.run("starter", append([]string{"schedule", "backfill"}, tc.args...)...)
			require.Equal(t, 1, code, out)
			require.True(t, strings.HasPrefix(strings.TrimSpace(out), tc.want), out)
		})
	}
}

// TestCheckWarnsOnStuckSchedule runs a schedule every minute with no analysis
// worker, so its scan cannot complete: `starter check` is OK at first, then
// WARNING once the scan has run longer than the interval (runs are skipped),
// naming the schedule and its skip count. Once an analysis worker lets the
// scans complete, check still warns of the runs skipped recently.
func TestCheckWarnsOnStuckSchedule(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	w := h.startWorker("main,email")
	require.Eventually(t, func() bool { return strings.Contains(w.Output(), "worker started") }, 30*time.Second, 50*time.Millisecond)
	h.starter("schedule", "create", "--id", "stuck", "--every", "1m", "--timeout", "10m", "--no-remediate", "--set", "analysis.shard_deadline=5m")
	h.starter("schedule", "trigger", "stuck")

	out, code := h.run("starter", "check")
	require.Equal(t, 0, code, out)
	require.Equal(t, "SANWATCH OK - no unacknowledged findings | critical=0 warning=0 notify_failing=0", strings.TrimSpace(out))

	running := regexp.MustCompile(`^SANWATCH WARNING - schedule stuck: scan scan-stuck-\S+ running for 1m\d+s, longer than its interval 1m: ` +
		`the runs due meanwhile are skipped \(runs skipped for overlap [1-9]\d*, missed the catch-up window 0\) \| critical=0 warning=0 notify_failing=0$`)
	require.Eventually(t, func() bool {
		out, code = h.run("starter", "check")
		return code == 1 && running.MatchString(strings.Split(out, "\n")[0])
	}, 2*time.Minute, 2*time.Second, "last check: exit %d: %s", code, out)

	// Two runs skipped, then analysis comes back: the stuck scan completes and
	// the next one runs on time, but the gap is still among the recent runs.
	require.Eventually(t, func() bool {
		return strings.Contains(h.starter("schedule", "describe", "stuck"), "skipped for overlap 2")
	}, 2*time.Minute, time.Second)
	h.startWorker("analysis")
	require.Eventually(t, func() bool {
		reps, err := h.openStore().ScanReports(context.Background(), 0)
		return err == nil && len(reps) >= 2
	}, 2*time.Minute, time.Second, "the stuck scan and the next one complete")
	out, code = h.run("starter", "check")
	require.Equal(t, 1, code, out)
	require.Regexp(t, `^SANWATCH WARNING - schedule stuck: no run between \S+ and \S+ \(every 1m\) `+
		`\(runs skipped for overlap [2-9], missed the catch-up window 0\) \| critical=0 warning=0 notify_failing=0`, out)
}
