package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// TestReplayRecordedHistories replays histories recorded from real runs (see
// e2e's SANWATCH_RECORD_HISTORIES) against the current workflow code, so a
// change that would break running workflows fails here. Every workflow type
// must have at least one recorded history.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		base := filepath.Base(f)
		typ, _, _ := strings.Cut(base, "-")
		seen[typ] = true
		t.Run(base, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(IngestTelemetry)
			r.RegisterWorkflow(AnalyzeBoxes)
			r.RegisterWorkflow(FleetScan)
			r.RegisterWorkflow(Retention)
			r.RegisterWorkflow(SweepOutbox)
			r.RegisterWorkflowWithOptions(Remediate, workflow.RegisterOptions{Name: activities.RemediateWorkflowType})
			// The workflow id is kept beside the history (<name>.id): ids of
			// children derive from it, so replay must use the original one.
			id, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".id")
			require.NoError(t, err, "every recorded history needs its workflow id in a .id file")
			data, err := os.Open(f)
			require.NoError(t, err)
			defer data.Close()
			hist, err := client.HistoryFromJSON(data, client.HistoryJSONOptions{})
			require.NoError(t, err)
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, hist, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: strings.TrimSpace(string(id)), RunID: "replay"},
			}))
		})
	}
	for _, typ := range []string{"IngestTelemetry", "AnalyzeBoxes", "FleetScan", "Remediate", "Retention"} {
		require.True(t, seen[typ], "no recorded history for %s in testdata/histories (file name %s-*.json)", typ, typ)
	}
	_, err = os.Stat(filepath.Join("testdata", "histories"))
	require.NoError(t, err)
}
