package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/workflows"
)

// The tests in this file drive Remediate through each of its branches on a
// real server with short timers, and check what a user sees. With
// SANWATCH_RECORD_HISTORIES set they also record each run's history for the
// replay corpus (`make record-histories`).

// fastRemediation shortens the timers of the in-process workers.
func fastRemediation(reminder, escalate time.Duration, historyLimit int) func(*activities.Activities) {
	return func(a *activities.Activities) {
		a.Settings.Reminder, a.Settings.EscalateAfter = reminder, escalate
		a.Settings.RemediateHistoryLimit = historyLimit
	}
}

// update sends an ack or resolve update and returns its answer.
func update(t *testing.T, h *harness, name string, sig workflows.AckSignal) (workflows.UpdateResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	handle, err := h.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.RemediateWorkflowID(latencyFP), UpdateName: name, Args: []any{sig},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res workflows.UpdateResult
	if err == nil {
		err = handle.Get(ctx, &res)
	}
	return res, err
}

// finalState waits for the remediation to complete and returns its result.
func finalState(t *testing.T, h *harness) workflows.RemediationState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var st workflows.RemediationState
	require.NoError(t, h.c.GetWorkflow(ctx, workflows.RemediateWorkflowID(latencyFP), "").Get(ctx, &st))
	return st
}

// subjects returns the subjects of the messages received so far.
func subjects(h *harness) []string {
	var out []string
	for _, m := range h.smtp.Messages() {
		out = append(out, m.Header.Get("Subject"))
	}
	return out
}

// TestRemediateReminderEscalationResolve: reminder, escalation, a resolve
// while still detected (no fresh data), an ack, then fresh healthy data and
// a resolve that closes it.
func TestRemediateReminderEscalationResolve(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(fastRemediation(3*time.Second, 5*time.Second, 0))
	h.starter("ingest", faultyBatch(t, h))
	msgs := h.smtp.WaitMessages(3, time.Minute)
	require.Len(t, msgs, 3, "notify, reminder, escalation: %v", subjects(h))
	require.Equal(t, "<oncall@example.com>", msgs[2].Header.Get("To"), "the escalation goes to the escalation contacts")

	res, err := update(t, h, workflows.UpdateResolve, workflows.AckSignal{By: "alice"})
	require.NoError(t, err)
	require.True(t, res.StillDetected, "%+v", res)
	require.True(t, strings.HasPrefix(res.Message, "still detected: "), res.Message)
	res, err = update(t, h, workflows.UpdateAck, workflows.AckSignal{By: "alice", Fingerprint: latencyFP})
	require.NoError(t, err)
	require.Equal(t, workflows.PhaseAcknowledged, res.Phase)

	h.starter("ingest", "--no-analyze", healedBatch(t, h))
	res, err = update(t, h, workflows.UpdateResolve, workflows.AckSignal{By: "alice"})
	require.NoError(t, err)
	require.Equal(t, workflows.PhaseResolved, res.Phase, "%+v", res)
	st := finalState(t, h)
	require.True(t, st.Escalated)
	require.Equal(t, workflows.PhaseResolved, st.Phase)
	require.True(t, strings.HasPrefix(subjects(h)[len(subjects(h))-1], "Resolved: "))
	_, err = update(t, h, workflows.UpdateAck, workflows.AckSignal{By: "alice"})
	require.Error(t, err, "a closed remediation takes no update")
	recordHistory(t, h, workflows.RemediateWorkflowID(latencyFP), "Remediate-remind-escalate-resolve")
}

// TestRemediateUndeliverable: the owner's mailbox does not exist; the
// escalation contacts are told, and fresh healthy data resolves it.
func TestRemediateUndeliverable(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(fastRemediation(time.Hour, 2*time.Hour, 0))
	h.smtp.FailNext(1, smtptest.Perm5xx)
	h.starter("ingest", faultyBatch(t, h))
	msgs := h.smtp.WaitMessages(1, time.Minute)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"oncall@example.com"}, msgs[0].To)
	require.Eventually(t, func() bool { return remediationState(t, h).Phase == workflows.PhaseUndeliverable }, 30*time.Second, 200*time.Millisecond)
	h.starter("ingest", "--no-analyze", healedBatch(t, h))
	st := finalState(t, h)
	require.True(t, st.Undeliverable)
	require.Equal(t, workflows.PhaseResolved, st.Phase)
	recordHistory(t, h, workflows.RemediateWorkflowID(latencyFP), "Remediate-undeliverable")
}

// TestRemediateContinuesAsNewOnRealServer: a short history limit makes the
// remediation continue as new while it verifies; the next run keeps the
// state (emails are not sent again) and resolves on fresh data.
func TestRemediateContinuesAsNewOnRealServer(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(fastRemediation(time.Hour, 2*time.Hour, 40))
	h.starter("ingest", faultyBatch(t, h))
	h.smtp.WaitMessages(1, time.Minute)
	id := workflows.RemediateWorkflowID(latencyFP)
	var runs []string
	require.Eventually(t, func() bool {
		runs = remediationRuns(t, h, id)
		return len(runs) >= 2
	}, time.Minute, 500*time.Millisecond, "continued as new")
	h.starter("ingest", "--no-analyze", healedBatch(t, h))
	st := finalState(t, h)
	require.Equal(t, workflows.PhaseResolved, st.Phase)
	require.GreaterOrEqual(t, st.Runs, 2)
	require.Equal(t, 2, st.EmailsSent, "notify once, resolved once, across runs")
	require.Len(t, h.smtp.Messages(), 2)
	runs = remediationRuns(t, h, id)
	recordRun(t, h, id, runs[0], "Remediate-continue-as-new")
	recordRun(t, h, id, runs[len(runs)-1], "Remediate-after-continue-as-new")
	out := h.starter("findings", "--status", string(finding.StatusResolved))
	require.Contains(t, out, "latency_anomaly  volume/vol0  resolved")
}

// remediationRuns lists the run ids of a workflow id, oldest first.
func remediationRuns(t *testing.T, h *harness, id string) []string {
	t.Helper()
	resp, err := h.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	require.NoError(t, err)
	type run struct {
		id    string
		start time.Time
	}
	var rs []run
	for _, e := range resp.GetExecutions() {
		rs = append(rs, run{e.GetExecution().GetRunId(), e.GetStartTime().AsTime()})
	}
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].start.Before(rs[j-1].start); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.id)
	}
	return out
}
