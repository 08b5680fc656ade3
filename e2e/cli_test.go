package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// temporalCLI returns the real `temporal` CLI that `make test` builds into
// ./bin (or SANWATCH_TEMPORAL_CLI). Missing, the test fails: it says how to get it.
func temporalCLI(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SANWATCH_TEMPORAL_CLI")
	if p == "" {
		p = filepath.Join(repoRoot, "bin", "temporal")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the temporal CLI is needed for CLI-compatibility tests: %v; run `make test` (it builds bin/temporal) or set SANWATCH_TEMPORAL_CLI", err)
	}
	return p
}

// temporal runs the real CLI against the harness server.
func (h *harness) temporal(args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--address", h.ts.GetFrontendHostPort(), "--namespace", h.ts.GetDefaultNamespace())
	cmd := exec.CommandContext(ctx, temporalCLI(h.t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(h.t, cmd.Run(), "temporal %v:\n%s", args, out.String())
	return out.String()
}

// TestTemporalCLICompatibility starts and drives sanwatch's workflows with the
// plain `temporal` CLI, exactly as the README shows.
func TestTemporalCLICompatibility(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(nil)
	batch := faultyBatch(t, h)

	// Ingest: temporal workflow execute waits and prints the result.
	out := h.temporal("workflow", "execute", "--type", "IngestTelemetry", "--task-queue", "sanwatch",
		"--workflow-id", "ingest-by-cli", "--input", fmt.Sprintf(`{"path": %q}`, batch))
	require.Contains(t, out, `"accepted":576`)
	recordHistory(t, h, "ingest-by-cli", "IngestTelemetry-cli")
	recordHistory(t, h, workflows.AnalyzeWorkflowID("ingest-by-cli"), "AnalyzeBoxes-cli")

	// The remediation it started: query its state, ack and resolve it by signal.
	id := workflows.RemediateWorkflowID(latencyFP)
	h.smtp.WaitMessages(1, 30*time.Second)
	out = h.temporal("workflow", "query", "--workflow-id", id, "--type", "state")
	require.Contains(t, out, `"phase":"waiting"`)
	h.temporal("workflow", "signal", "--workflow-id", id, "--name", "ack", "--input", `{"by": "cli-user", "note": "seen"}`)
	require.Eventually(t, func() bool { return remediationState(t, h).AckedBy == "cli-user" }, 10*time.Second, 100*time.Millisecond)
	h.temporal("workflow", "execute", "--type", "IngestTelemetry", "--task-queue", "sanwatch",
		"--workflow-id", "ingest-healed", "--input", fmt.Sprintf(`{"path": %q, "analyze": false}`, healedBatch(t, h)))
	h.temporal("workflow", "signal", "--workflow-id", id, "--name", "resolve", "--input", `{"by": "cli-user"}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var final workflows.RemediationState
	require.NoError(t, h.c.GetWorkflow(ctx, id, "").Get(ctx, &final))
	require.Equal(t, workflows.PhaseResolved, final.Phase)
	recordHistory(t, h, id, "Remediate-cli")

	// AnalyzeBoxes on its own.
	out = h.temporal("workflow", "execute", "--type", "AnalyzeBoxes", "--task-queue", "sanwatch",
		"--workflow-id", "analyze-by-cli", "--input", `{"boxes": ["box-0001"], "window": "48h", "remediate": false}`)
	require.Contains(t, out, `"analysed":1`)

	// A schedule of fleet scans, created, triggered and described with the CLI.
	h.temporal("schedule", "create", "--schedule-id", "cli-scan", "--interval", "1h",
		"--workflow-id", "scan-cli-scan", "--task-queue", "sanwatch", "--type", "FleetScan",
		"--input", `{"selector": {"site": "par1"}, "remediate": false}`, "--overlap-policy", "Skip")
	h.temporal("schedule", "trigger", "--schedule-id", "cli-scan")
	st := h.openStore()
	var reps []store.ScanReport
	require.Eventually(t, func() bool {
		var err error
		reps, err = st.ScanReports(context.Background(), 0)
		return err == nil && len(reps) == 1
	}, time.Minute, 200*time.Millisecond)
	require.Equal(t, "site=par1", reps[0].Selector)
	require.Equal(t, 1, reps[0].Analysed)
	out = h.temporal("schedule", "describe", "--schedule-id", "cli-scan", "--output", "json")
	var desc map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &desc), out)
	h.temporal("schedule", "delete", "--schedule-id", "cli-scan")
}

// TestNoWorkerPolling: ingest and scan with nobody serving their task queues
// say so and exit non-zero after --wait-for-worker, instead of waiting
// forever; once the right workers poll, they go through.
func TestNoWorkerPolling(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	batch := healedBatch(t, h)

	begin := time.Now()
	out, code := h.run("starter", "ingest", "--wait-for-worker", "3s", batch)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, `no worker is polling task queue "sanwatch": start bin/worker`)
	require.GreaterOrEqual(t, time.Since(begin), 3*time.Second, "it waited --wait-for-worker first")
	out, code = h.run("starter", "scan", "--wait-for-worker", "0s")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, `no worker is polling task queue "sanwatch": start bin/worker`)

	// A worker on the main queue only: analysis would never run.
	h.startWorker("main,email")
	out, code = h.run("starter", "ingest", "--wait-for-worker", "10s", batch)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, `no worker is polling task queue "sanwatch-analysis": start bin/worker`)
	// Storing alone needs only the main queue.
	out = h.starter("ingest", "--no-analyze", batch)
	require.Contains(t, out, "ok ")

	h.startWorker("analysis")
	out = h.starter("scan", "--id", "scan-after-workers")
	require.Contains(t, out, "boxes:")
}
