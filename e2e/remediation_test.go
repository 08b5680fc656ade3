package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/workflows"
)

const latencyFP = "box-0001/latency_anomaly/volume/vol0"

// t0 is the start of the hand-made telemetry of these tests.
var t0 = time.Date(2026, 10, 29, 0, 0, 0, 0, time.UTC)

// writeFleet writes a one-box inventory with an owner and an escalation contact.
func writeFleet(t *testing.T, h *harness) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(h.dir, "sim"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(h.dir, "sim", "fleet.yaml"), []byte(`boxes:
  - id: box-0001
    model: SW-7000
    firmware: 4.3.1
    site: par1
    owners: [owner@example.com]
    escalation: [oncall@example.com]
`), 0o644))
}

// latencyBatch writes n 5-minute points of box-0001 volume/vol0 read latency
// starting at start, value(i) each, and returns the file path.
func latencyBatch(t *testing.T, h *harness, name string, start time.Time, n int, value func(i int) float64) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("time,box,component,metric,value\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s,box-0001,volume/vol0,volume.read_latency_ms,%.3f\n", start.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339), value(i))
	}
	p := filepath.Join(h.dir, name)
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// faultyBatch is 48 h of latency: about 1 ms, then 8 ms for the last 4 hours.
func faultyBatch(t *testing.T, h *harness) string {
	return latencyBatch(t, h, "fault.csv", t0, 576, func(i int) float64 {
		if i >= 576-48 {
			return 8 + float64(i%3)*0.1
		}
		return 1 + float64(i%5)*0.02
	})
}

// healedBatch continues the series with 2 healthy hours.
func healedBatch(t *testing.T, h *harness) string {
	return latencyBatch(t, h, "healed.csv", t0.Add(576*5*time.Minute), 24, func(i int) float64 { return 1 + float64(i%5)*0.02 })
}

func remediationState(t *testing.T, h *harness) workflows.RemediationState {
	t.Helper()
	v, err := h.c.QueryWorkflow(context.Background(), workflows.RemediateWorkflowID(latencyFP), "", workflows.QueryState)
	require.NoError(t, err)
	var st workflows.RemediationState
	require.NoError(t, v.Get(&st))
	return st
}

// TestRemediationLifecycle: injected fault -> email -> ack -> fault data goes
// away -> "resolved" email in the same thread -> workflow completed.
func TestRemediationLifecycle(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	acts := h.inProcess(nil)

	out := h.starter("ingest", faultyBatch(t, h))
	require.Contains(t, out, "findings=1 new=1")
	msgs := h.smtp.WaitMessages(1, 30*time.Second)
	require.Len(t, msgs, 1)
	first := msgs[0]
	require.Equal(t, []string{"owner@example.com"}, first.To)
	require.Contains(t, first.Header.Get("Subject"), "[sanwatch][")
	require.Contains(t, first.Header.Get("Subject"), "box-0001 volume/vol0:")
	require.Equal(t, latencyFP, first.Header.Get("X-Sanwatch-Fingerprint"))
	require.Contains(t, string(first.Data), "text/csv")
	require.Contains(t, string(first.Data), "text/html")
	firstID := first.Header.Get("Message-Id")
	require.NotEmpty(t, firstID)

	out = h.starter("remediations")
	require.Contains(t, out, latencyFP)
	require.Contains(t, out, workflows.PhaseWaiting)

	out, code := h.run("starter", "check")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "SANWATCH WARNING - 1 warning findings not acknowledged | critical=0 warning=1 notify_failing=0")

	out = h.starter("ack", latencyFP, "--by", "alice", "--note", "moving the volume")
	require.Contains(t, out, "ack: "+latencyFP+": phase acknowledged: acknowledged by alice")
	// Filtered through the search attributes, in one visibility query.
	require.Eventually(t, func() bool {
		out := h.starter("remediations", "--severity", string(finding.Warning), "--site", "par1", "--acked", "true")
		return strings.Contains(out, latencyFP) && strings.Contains(out, "1 remediations")
	}, 10*time.Second, 200*time.Millisecond)
	require.Contains(t, h.starter("remediations", "--severity", "critical"), "0 remediations")
	// The UI's summary tells the problem at a glance, with no address in it.
	d, err := h.c.DescribeWorkflowExecution(context.Background(), workflows.RemediateWorkflowID(latencyFP), "")
	require.NoError(t, err)
	var summary string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(d.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary))
	require.Contains(t, summary, "warning: ")
	require.Contains(t, summary, "(box box-0001)")
	require.NotContains(t, summary, "@")
	out, code = h.run("starter", "ack", latencyFP, "--by", "")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "who is acting is empty: set --by NAME")
	require.Eventually(t, func() bool { return remediationState(t, h).Acked }, 10*time.Second, 100*time.Millisecond)
	st := remediationState(t, h)
	require.Equal(t, "alice", st.AckedBy)
	f, err := acts.Store.Finding(context.Background(), latencyFP)
	require.NoError(t, err)
	require.Equal(t, finding.StatusAcknowledged, f.Status)
	require.Contains(t, h.starter("check"), "SANWATCH OK - no unacknowledged findings")

	// The fault is still in the data: verification keeps it open.
	time.Sleep(3 * time.Second)
	require.Len(t, h.smtp.Messages(), 1)
	require.NotEqual(t, workflows.PhaseResolved, remediationState(t, h).Phase)

	// Fresh healthy data: verified clear for resolve_after, then "resolved".
	h.starter("ingest", "--no-analyze", healedBatch(t, h))
	msgs = h.smtp.WaitMessages(2, 30*time.Second)
	require.Len(t, msgs, 2)
	resolved := msgs[1]
	require.True(t, strings.HasPrefix(resolved.Header.Get("Subject"), "Resolved: "), resolved.Header.Get("Subject"))
	require.Equal(t, firstID, resolved.Header.Get("In-Reply-To"))
	require.Contains(t, resolved.Header.Get("References"), firstID)

	var final workflows.RemediationState
	require.NoError(t, h.c.GetWorkflow(context.Background(), workflows.RemediateWorkflowID(latencyFP), "").Get(context.Background(), &final))
	require.Equal(t, workflows.PhaseResolved, final.Phase)
	require.Equal(t, 2, final.EmailsSent)
	f, err = acts.Store.Finding(context.Background(), latencyFP)
	require.NoError(t, err)
	require.Equal(t, finding.StatusResolved, f.Status)

	// A signal for a fingerprint with no remediation is a clear error.
	out, code = h.run("starter", "ack", "box-0001/latency_anomaly/volume/nope")
	require.Equal(t, 1, code)
	require.Contains(t, out, "no open remediation for this fingerprint")
	// The Nagios check says UNKNOWN (3) when it cannot look, never OK.
	out, code = h.run("starter", "check", "--set", "store.path="+filepath.Join(h.dir, "missing", "x.db"))
	require.Equal(t, 3, code, out)
	require.Contains(t, out, "SANWATCH UNKNOWN - store:")
	out, code = h.run("starter", "check", "--set", "smtp.port=70000")
	require.Equal(t, 3, code, out)
	require.Contains(t, out, "config: smtp.port = 70000: must be 1-65535")

	out, code = h.run("starter", "ack", "not-a-fingerprint")
	require.Equal(t, 1, code)
	require.Contains(t, out, `parse fingerprint "not-a-fingerprint": want box/rule/component`)
}

// TestEmailTransientFailureSendsOnce: a 4xx, then success: exactly one message.
func TestEmailTransientFailureSendsOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(nil)
	h.smtp.FailNext(1, smtptest.Temp4xx)
	h.starter("ingest", faultyBatch(t, h))
	msgs := h.smtp.WaitMessages(1, time.Minute)
	require.Len(t, msgs, 1)
	require.Eventually(t, func() bool { return remediationState(t, h).EmailsSent == 1 }, 10*time.Second, 100*time.Millisecond)
	require.GreaterOrEqual(t, h.smtp.Attempts(), 2)
	time.Sleep(2 * time.Second)
	require.Len(t, h.smtp.Messages(), 1)
}

// TestEmailPermanentFailureIsRecorded: a 5xx is not retried; the finding is
// marked undeliverable and the escalation contacts are told.
func TestEmailPermanentFailureIsRecorded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	acts := h.inProcess(nil)
	h.smtp.FailNext(1, smtptest.Perm5xx)
	h.starter("ingest", faultyBatch(t, h))
	msgs := h.smtp.WaitMessages(1, time.Minute)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"oncall@example.com"}, msgs[0].To)
	require.True(t, strings.HasPrefix(msgs[0].Header.Get("Subject"), "Undeliverable: "), msgs[0].Header.Get("Subject"))
	require.Eventually(t, func() bool { return remediationState(t, h).Undeliverable }, 10*time.Second, 100*time.Millisecond)
	st := remediationState(t, h)
	require.Equal(t, workflows.PhaseUndeliverable, st.Phase)
	require.Contains(t, st.LastError, "550")
	f, err := acts.Store.Finding(context.Background(), latencyFP)
	require.NoError(t, err)
	require.Equal(t, finding.StatusUndeliverable, f.Status)
	require.Equal(t, 2, h.smtp.Attempts(), "the 5xx is not retried")
}

// TestWorkerCrashAfterSendDoesNotResend kills the worker process right after
// the notification was sent and recorded, possibly before Temporal heard the
// activity complete; a new worker carries the remediation on (resolve) and
// the first Message-ID is delivered once.
func TestWorkerCrashAfterSendDoesNotResend(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	w := h.startWorker("main,analysis,email")
	h.starter("ingest", faultyBatch(t, h))
	msgs := h.smtp.WaitMessages(1, time.Minute)
	require.Len(t, msgs, 1)
	firstID := msgs[0].Header.Get("Message-Id")
	// Kill the worker once the send step has recorded the message (the relay
	// accepted it), before the workflow's next step is known to have run.
	st := h.openStore()
	require.Eventually(t, func() bool {
		sent, err := st.EmailSent(context.Background(), firstID)
		return err == nil && sent
	}, 30*time.Second, 5*time.Millisecond)
	w.kill()

	h.startWorker("main,analysis,email")
	h.starter("resolve", latencyFP, "--by", "bob")
	h.starter("ingest", "--no-analyze", healedBatch(t, h))
	var final workflows.RemediationState
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, h.c.GetWorkflow(ctx, workflows.RemediateWorkflowID(latencyFP), "").Get(ctx, &final))
	require.Equal(t, workflows.PhaseResolved, final.Phase)
	count := 0
	for _, m := range h.smtp.Messages() {
		if m.Header.Get("Message-Id") == firstID {
			count++
		}
	}
	require.Equal(t, 1, count, "the notification must not be sent twice")
}

// TestRelayDownIsNotSilent: with the relay refusing every message, the
// remediation stays "notifying", `starter remediations` shows the pending
// SendEmail's attempt and error, and `starter check` goes CRITICAL naming
// the error once notify_failing_after has passed (issue 9).
func TestRelayDownIsNotSilent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(nil)
	h.smtp.FailNext(1000, smtptest.Temp4xx)
	out := h.starter("ingest", faultyBatch(t, h))
	require.Contains(t, out, "findings=1 new=1")

	var list string
	require.Eventually(t, func() bool {
		list = h.starter("remediations")
		return strings.Contains(list, "SendEmail (attempt ")
	}, 60*time.Second, time.Second, "the pending email's attempt shows: %s", list)
	require.Contains(t, list, latencyFP)
	require.Contains(t, list, "notifying")
	require.Contains(t, list, "451")

	var code int
	require.Eventually(t, func() bool {
		out, code = h.run("starter", "check", "--set", "remediation.notify_failing_after=1s")
		return code == 2
	}, 30*time.Second, time.Second, "check goes CRITICAL once no owner was told for 1s: %s", out)
	require.Contains(t, out, "SANWATCH CRITICAL - 1 remediations have had no email accepted for more than 1s; "+latencyFP+": SendEmail attempt ")
	require.Contains(t, out, "451")
	require.Contains(t, out, "notify_failing=1")
	// Within the allowed time it is the findings that speak.
	out, code = h.run("starter", "check", "--set", "remediation.notify_failing_after=1h")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "notify_failing=0")
}

// TestFailingReminderIsNotSilent: the first email went out, then the relay
// refuses; the reminder's SendEmail keeps failing, and `starter check` goes
// CRITICAL once that has lasted notify_failing_after (issue 9, found by review).
func TestFailingReminderIsNotSilent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.inProcess(fastRemediation(3*time.Second, time.Hour, 0))
	h.starter("ingest", faultyBatch(t, h))
	require.Len(t, h.smtp.WaitMessages(1, time.Minute), 1)
	h.smtp.FailNext(1000, smtptest.Temp4xx)
	var out string
	var code int
	require.Eventually(t, func() bool {
		out, code = h.run("starter", "check", "--set", "remediation.notify_failing_after=2s")
		return code == 2
	}, time.Minute, time.Second, "check goes CRITICAL once the reminder failed for 2s: %s", out)
	require.Contains(t, out, "SANWATCH CRITICAL - 1 remediations have had no email accepted for more than 2s; "+latencyFP+": SendEmail attempt ")
	require.Contains(t, out, "451")
	require.Equal(t, workflows.PhaseWaiting, remediationState(t, h).Phase, "the owner was told once")
}
