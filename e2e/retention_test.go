package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestRetention stores a year of daily samples on each store, runs
// `starter retention --now`, and checks that only the last 30 days
// (retention.samples 720h) are left; then `starter retention` creates the
// sanwatch-retention schedule and, run again, updates it.
func TestRetention(t *testing.T) {
	tests := []struct {
		name     string
		postgres bool
	}{
		{"sqlite", false},
		{"postgres", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{postgres: tc.postgres})
			acts := h.inProcess(nil)
			ctx := context.Background()

			const days, kept = 365, 30
			boxes := []string{"box-1", "box-2", "box-3"}
			now := time.Now().UTC().Truncate(time.Second)
			var in []telemetry.Sample
			for _, b := range boxes {
				for d := range days {
					at := now.Add(-time.Duration(d*24+1) * time.Hour)
					in = append(in, telemetry.Sample{Time: at, Box: b, Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: float64(d)},
						telemetry.Sample{Time: at, Box: b, Component: "disk/0", Metric: telemetry.DiskTemperatureC, Value: 40})
				}
			}
			_, err := acts.Store.AppendSamples(ctx, in)
			require.NoError(t, err)

			out := h.starter("retention", "--now")
			want := fmt.Sprintf("deleted %d samples older than", len(boxes)*2*(days-kept))
			require.Contains(t, out, want)
			require.Contains(t, out, "(kept 720h0m0s)")
			for _, b := range boxes {
				w, err := acts.Store.Window(ctx, b, time.Time{}, now.Add(time.Hour))
				require.NoError(t, err)
				require.Len(t, w, 2*kept, "box %s", b)
				for _, s := range w {
					require.Less(t, now.Sub(s.Time), 720*time.Hour, "sample %+v outside the window", s)
				}
			}
			out = h.starter("retention", "--now")
			require.Contains(t, out, "deleted 0 samples older than", "a second run finds nothing")
			if !tc.postgres {
				resp, err := h.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'Retention'"})
				require.NoError(t, err)
				require.NotEmpty(t, resp.GetExecutions())
				recordHistory(t, h, resp.GetExecutions()[0].GetExecution().GetWorkflowId(), "Retention-now")
			}

			out = h.starter("retention")
			require.Contains(t, out, "schedule sanwatch-retention created: Retention every 24h0m0s, samples kept 720h0m0s")
			out = h.starter("retention", "--set", "retention.every=12h")
			require.Contains(t, out, "schedule sanwatch-retention updated: Retention every 12h0m0s, samples kept 720h0m0s")
			d, err := h.c.ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID).Describe(ctx)
			require.NoError(t, err)
			require.Equal(t, []client.ScheduleIntervalSpec{{Every: 12 * time.Hour}}, d.Schedule.Spec.Intervals)
			action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
			require.True(t, ok)
			require.Equal(t, "Retention", action.Workflow)
		})
	}
}
