package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// recordHistory writes the history of a finished workflow to
// $SANWATCH_RECORD_HISTORIES/<name>.json when that variable is set, for the
// replay test in workflows/. Normal runs record nothing.
func recordHistory(t *testing.T, h *harness, workflowID, name string) {
	t.Helper()
	recordRun(t, h, workflowID, "", name)
}

// recordRun records one run of a workflow (runID "" is the latest run).
func recordRun(t *testing.T, h *harness, workflowID, runID, name string) {
	t.Helper()
	dir := os.Getenv("SANWATCH_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	it := h.c.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	var hist historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	writeHistory(t, dir, &hist, workflowID, name)
}

// writeHistory writes hist and the workflow id to dir/<name>.json and .id.
func writeHistory(t *testing.T, dir string, hist *historypb.History, workflowID, name string) {
	t.Helper()
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".id"), []byte(workflowID+"\n"), 0o644))
}
