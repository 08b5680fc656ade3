package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/receiver"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestOutboxSweptBySchedule: a receiver accepts batches while it cannot
// reach Temporal, then goes away for good. The worker created the
// sanwatch-outbox-sweep schedule at start; its next run starts the queued
// batches' workflows, and they are stored.
func TestOutboxSweptBySchedule(t *testing.T) {
	ctx := context.Background()
	addr, deadTemporal := freeAddr(t), freeAddr(t)
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr)})
	w := h.startWorker("main,analysis,email")
	require.Eventually(t, func() bool { return strings.Contains(w.Output(), "outbox sweep schedule created") }, 60*time.Second, 100*time.Millisecond, w.Output())
	d, err := h.c.ScheduleClient().GetHandle(ctx, workflows.OutboxSweepScheduleID).Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: time.Minute}}, d.Schedule.Spec.Intervals, "6 x receiver.sweep_every, at least a minute")

	r := h.startReceiver(addr, "--set", "temporal.address="+deadTemporal)
	tok := h.newToken("box-0001")
	var ids []string
	for i := range 2 {
		code, rc, raw := postBatch(t, addr, tok, boxBatch("box-0001", i, 10))
		require.Equal(t, http.StatusAccepted, code, raw)
		require.Equal(t, receiver.StatusQueued, rc.Status, "Temporal is unreachable for this receiver")
		ids = append(ids, rc.BatchID)
	}
	r.kill() // the receiver is gone: only the schedule can start them now

	st := h.openStore()
	defer st.Close()
	is := st.(store.IntakeStore)
	n, err := is.CountPendingIntakes(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	require.NoError(t, h.c.ScheduleClient().GetHandle(ctx, workflows.OutboxSweepScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		for _, id := range ids {
			b, err := st.Batch(ctx, id)
			if err != nil || b.Status != store.BatchStored {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "the sweep starts the queued batches' workflows")
	n, err = is.CountPendingIntakes(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	d, err = h.c.ScheduleClient().GetHandle(ctx, workflows.OutboxSweepScheduleID).Describe(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, d.Info.RecentActions)
	run := d.Info.RecentActions[len(d.Info.RecentActions)-1].StartWorkflowResult
	var res struct{ Started, Pending int }
	require.NoError(t, h.c.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &res))
	require.Equal(t, 2, res.Started)
	require.Zero(t, res.Pending)
	recordHistory(t, h, run.WorkflowID, "SweepOutbox-sweep")
}
