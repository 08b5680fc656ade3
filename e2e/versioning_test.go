package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// TestWorkerVersioning: workers configured with worker.deployment_name and
// worker.build_id serve that version of the deployment; once it is the
// current version, ingest, analysis and remediation run on it.
func TestWorkerVersioning(t *testing.T) {
	h := newHarness(t, harnessOptions{extraYAML: "  deployment_name: sanwatch\n  build_id: build-1\n"})
	writeFleet(t, h)
	h.inProcess(nil)
	dep := h.c.WorkerDeploymentClient().GetHandle("sanwatch")
	require.Eventually(t, func() bool {
		_, err := dep.SetCurrentVersion(context.Background(), client.WorkerDeploymentSetCurrentVersionOptions{BuildID: "build-1"})
		return err == nil
	}, time.Minute, 500*time.Millisecond, "the version appears once its workers poll")

	out := h.starter("ingest", faultyBatch(t, h))
	require.Contains(t, out, "findings=1 new=1")
	h.smtp.WaitMessages(1, 30*time.Second)
	_, rest, ok := strings.Cut(out, "workflow=")
	require.True(t, ok, out)
	id, _, _ := strings.Cut(rest, " ")
	d, err := h.c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	v := d.GetWorkflowExecutionInfo().GetVersioningInfo().GetDeploymentVersion()
	require.Equal(t, "sanwatch", v.GetDeploymentName())
	require.Equal(t, "build-1", v.GetBuildId())
}
