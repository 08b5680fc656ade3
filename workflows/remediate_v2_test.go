package workflows

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
)

// The tests in this file drive the exact moments of issue 9's defects. Each
// runs on the current version and, where the old code ends at all, on the
// old one (workflow.DefaultVersion, what runs started before remediate-v2
// still execute), whose row pins the defect: the same test fails there.

// pinRemediateVersion makes GetVersion(remediate-v2) answer v (DefaultVersion: the
// code before the change).
func pinRemediateVersion(env *testsuite.TestWorkflowEnvironment, v workflow.Version) {
	if v == workflow.DefaultVersion {
		env.OnGetVersion(changeRemediateV2, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	}
}

var remediateVersions = []struct {
	name    string
	version workflow.Version
}{{"v2", 1}, {"before-v2", workflow.DefaultVersion}}

// Defect 1: a repeat detection delivered while the "Resolved:" email is
// being sent used to be dropped and the finding stayed resolved.
func TestRemediateDetectionDuringResolvedEmailReopens(t *testing.T) {
	for _, v := range remediateVersions {
		t.Run(v.name, func(t *testing.T) {
			env, log, statuses := remediateEnvWith(t, remediateMocks{present: func() bool { return false }, sendTakes: 10 * time.Minute})
			pinRemediateVersion(env, v.version)
			// Clear from the first verification (1h): the resolve email
			// goes out at 7h and takes 10 minutes; a detection lands in it.
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Critical, DetectedAt: env.Now()})
			}, 7*time.Hour+5*time.Minute)
			env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
			require.NoError(t, env.GetWorkflowError())
			var st RemediationState
			require.NoError(t, env.GetWorkflowResult(&st))
			if v.version == workflow.DefaultVersion {
				require.Equal(t, []string{"notify", "resolved"}, log.Kinds(), "the old code loses the detection")
				require.Equal(t, 0, st.Detections)
				return
			}
			require.Equal(t, []string{"notify", "resolved", "update", "resolved"}, log.Kinds(),
				"the detection reopens the remediation, the owners are told, and it resolves again once clear")
			require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusResolved, finding.StatusOpen, finding.StatusResolved}, *statuses)
			require.Equal(t, 1, st.Detections)
			require.Equal(t, 1, st.Reopened)
			require.Equal(t, PhaseResolved, st.Phase)
		})
	}
}

// Defect 1: a signal delivered while the last verification before
// continue-as-new runs used to be dropped.
func TestRemediateSignalDuringLastVerifyIsCarriedOver(t *testing.T) {
	for _, v := range remediateVersions {
		t.Run(v.name, func(t *testing.T) {
			env, _, _ := remediateEnvWith(t, remediateMocks{present: func() bool { return true }, verifyTakes: 10 * time.Minute})
			pinRemediateVersion(env, v.version)
			start := env.Now()
			// At 5h30m history is long and an ack and a resolve arrive
			// together: one wakes the loop, the other is drained before
			// continue-as-new and its verification runs until 5h40m. A
			// detection lands during that verification.
			env.RegisterDelayedCallback(func() {
				env.SetCurrentHistoryLength(historyLimit + 1)
				env.SignalWorkflow(SignalAck, AckSignal{By: "dave"})
				env.SignalWorkflow(SignalResolve, AckSignal{By: "dave"})
			}, 5*time.Hour+30*time.Minute)
			detectedAt := start.Add(5*time.Hour + 35*time.Minute)
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Critical, DetectedAt: detectedAt})
			}, 5*time.Hour+35*time.Minute)
			env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp, State: &RemediationState{
				Fingerprint: fp, Phase: PhaseWaiting, Severity: finding.Warning, Step: 1, EmailsSent: 1, Runs: 1,
				StartedAt: start, FirstSentAt: start, LastSentAt: start,
			}})
			var can *workflow.ContinueAsNewError
			require.ErrorAs(t, env.GetWorkflowError(), &can)
			var next RemediateInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			require.True(t, next.State.Acked)
			if v.version == workflow.DefaultVersion {
				require.Equal(t, 0, next.State.Detections, "the old code drops the detection")
				return
			}
			require.Equal(t, 1, next.State.Detections, "the detection is carried into the next run")
			require.Equal(t, finding.Critical, next.State.Severity)
			require.True(t, next.State.LastDetected.Equal(detectedAt))
		})
	}
}

// Defect 5: an escalation that fails for good (here: it cannot be rendered)
// used to be retried at once, over and over. Only the current version runs:
// the old one never leaves that instant.
func TestRemediateFailedEscalationIsPaced(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Duration
	var env *testsuite.TestWorkflowEnvironment
	var start time.Time
	env, _, _ = remediateEnvWith(t, remediateMocks{present: func() bool { return true },
		sendErr: func(in activities.SendEmailInput) error {
			if in.Kind != activities.EmailEscalation {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, env.Now().Sub(start))
			return temporal.NewNonRetryableApplicationError("render email: template broken", activities.ErrTypeInvalidInput, nil)
		}})
	start = env.Now()
	env.RegisterDelayedCallback(env.CancelWorkflow, 100*time.Hour)
	// Without the fix the workflow never leaves 48h: fail instead of hanging.
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("escalation retried %d times without pause; the workflow never got past %v", len(attempts), attempts[len(attempts)-1])
	}
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "cancelling ends the remediation: %v", env.GetWorkflowError())
	require.Equal(t, []time.Duration{48 * time.Hour, 72 * time.Hour, 96 * time.Hour}, attempts,
		"a failed escalation is tried again a reminder interval later")
}

// Defect 6: a store outage when the finding is resolved used to leave it
// open in the store for ever (10 attempts, then nothing).
func TestRemediateStoreOutageAtResolve(t *testing.T) {
	cases := []struct {
		name string
		// down says whether the store refuses "resolved" on attempt n at time since the start.
		down      func(n int, since time.Duration) bool
		version   workflow.Version
		wantSaved bool
	}{
		{"12 failed writes", func(n int, _ time.Duration) bool { return n <= 12 }, 1, true},
		{"12 failed writes, before v2", func(n int, _ time.Duration) bool { return n <= 12 }, workflow.DefaultVersion, false},
		{"down for 4 hours", func(_ int, since time.Duration) bool { return since < 11*time.Hour }, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var env *testsuite.TestWorkflowEnvironment
			var start time.Time
			var mu sync.Mutex
			n := 0
			env, _, statuses := remediateEnvWith(t, remediateMocks{present: func() bool { return false },
				statusErr: func(in activities.SetStatusInput) error {
					if in.Status != finding.StatusResolved {
						return nil
					}
					mu.Lock()
					defer mu.Unlock()
					n++
					if c.down(n, env.Now().Sub(start)) {
						return errors.New("store: database is locked")
					}
					return nil
				}})
			start = env.Now()
			pinRemediateVersion(env, c.version)
			env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
			require.NoError(t, env.GetWorkflowError())
			var st RemediationState
			require.NoError(t, env.GetWorkflowResult(&st))
			require.Equal(t, PhaseResolved, st.Phase)
			if !c.wantSaved {
				require.Equal(t, []finding.Status{finding.StatusOpen}, *statuses, "the old code gives up: the store keeps the finding open")
				return
			}
			require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusResolved}, *statuses)
			require.Nil(t, st.PendingStatus)
		})
	}
}

// Defect 7: a "Resolved:" email that failed (relay down past smtp.retry_for)
// used to be ignored and the remediation completed without telling anyone.
func TestRemediateFailedResolvedEmailIsRetried(t *testing.T) {
	for _, v := range remediateVersions {
		t.Run(v.name, func(t *testing.T) {
			var env *testsuite.TestWorkflowEnvironment
			var start time.Time
			env, log, statuses := remediateEnvWith(t, remediateMocks{present: func() bool { return false },
				sendErr: func(in activities.SendEmailInput) error {
					if in.Kind == activities.EmailResolved && env.Now().Sub(start) < 10*time.Hour {
						return errors.New("dial tcp 127.0.0.1:25: connect: connection refused")
					}
					return nil
				}})
			start = env.Now()
			pinRemediateVersion(env, v.version)
			env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
			require.NoError(t, env.GetWorkflowError())
			var st RemediationState
			require.NoError(t, env.GetWorkflowResult(&st))
			if v.version == workflow.DefaultVersion {
				require.Equal(t, []string{"notify"}, log.Kinds(), "the old code completes without the Resolved email")
				return
			}
			require.Equal(t, []string{"notify", "resolved"}, log.Kinds())
			require.GreaterOrEqual(t, log.at[1].Sub(start), 10*time.Hour, "resolved once the relay took the email")
			require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusResolved}, *statuses)
		})
	}
}

// updateAnswer is what one update got back.
type updateAnswer struct {
	rejected error
	result   UpdateResult
	err      error
}

func sendUpdate(env *testsuite.TestWorkflowEnvironment, name string, sig AckSignal, out *updateAnswer) {
	env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { out.rejected = err },
		OnComplete: func(v any, err error) {
			out.err = err
			if r, ok := v.(UpdateResult); ok {
				out.result = r
			}
		},
	}, sig)
}

func TestRemediateAckAndResolveUpdates(t *testing.T) {
	fixed := false
	env, log, statuses := remediateEnvWith(t, remediateMocks{present: func() bool { return !fixed }})
	var noBy, otherFP, ack, early, resolve updateAnswer
	env.RegisterDelayedCallback(func() {
		sendUpdate(env, UpdateAck, AckSignal{By: " "}, &noBy)
		sendUpdate(env, UpdateAck, AckSignal{By: "alice", Fingerprint: "box-9/disk_health/disk/1"}, &otherFP)
	}, time.Hour+time.Minute)
	env.RegisterDelayedCallback(func() { sendUpdate(env, UpdateAck, AckSignal{By: "alice", Fingerprint: fp}, &ack) }, 2*time.Hour)
	env.RegisterDelayedCallback(func() { sendUpdate(env, UpdateResolve, AckSignal{By: "bob"}, &early) }, 3*time.Hour)
	env.RegisterDelayedCallback(func() {
		fixed = true
		sendUpdate(env, UpdateResolve, AckSignal{By: "bob"}, &resolve)
	}, 5*time.Hour+30*time.Minute)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())

	require.ErrorContains(t, noBy.rejected, "who is acting is empty")
	require.ErrorContains(t, otherFP.rejected, `unknown fingerprint "box-9/disk_health/disk/1"`)
	require.NoError(t, ack.rejected)
	require.Equal(t, UpdateResult{Phase: PhaseAcknowledged, Message: "acknowledged by alice"}, ack.result)
	require.True(t, early.result.StillDetected)
	require.Equal(t, "still detected: Pool ssd_r6 fills in 5 days (used 91 %)", early.result.Message)
	require.Equal(t, PhaseAcknowledged, early.result.Phase)
	require.NoError(t, resolve.err)
	require.Equal(t, PhaseResolved, resolve.result.Phase)
	require.Equal(t, []string{"notify", "resolved"}, log.Kinds())
	require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusAcknowledged, finding.StatusResolved}, *statuses)

	closed := &remediation{st: RemediationState{Fingerprint: fp, Phase: PhaseResolved}}
	require.ErrorContains(t, closed.validateUpdate(nil, AckSignal{By: "carol"}), "is closed: it was resolved")
}

// A remediation that never reached anyone stays "notifying" (v2), so the
// list and the check can tell that no owner was told.
func TestRemediateNeverNotifiedStaysNotifying(t *testing.T) {
	env, log, _ := remediateEnvWith(t, remediateMocks{present: func() bool { return true },
		sendErr: func(activities.SendEmailInput) error { return errors.New("dial tcp: connection refused") }})
	env.RegisterDelayedCallback(func() {
		q, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		var st RemediationState
		require.NoError(t, q.Get(&st))
		require.Equal(t, PhaseNotifying, st.Phase)
		require.Contains(t, st.LastError, "connection refused")
		env.CancelWorkflow()
	}, 30*time.Hour)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.Empty(t, log.Kinds())
}

// Two resolves close together: the second arrives while the first one's
// verification runs. One verification answers both: one "Resolved:" email,
// one resolved status (found by review).
func TestRemediateTwoResolvesResolveOnce(t *testing.T) {
	env, log, statuses := remediateEnvWith(t, remediateMocks{present: func() bool { return false }, verifyTakes: 2 * time.Minute})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResolve, AckSignal{By: "alice"}) }, 30*time.Minute)
	var second updateAnswer
	env.RegisterDelayedCallback(func() { sendUpdate(env, UpdateResolve, AckSignal{By: "bob"}, &second) }, 31*time.Minute)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"notify", "resolved"}, log.Kinds())
	require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusAcknowledged, finding.StatusResolved}, *statuses)
	require.Equal(t, PhaseResolved, second.result.Phase, "%+v", second)
}

// An update cancelled mid-wait gets an answer, and the run ends cancelled.
func TestRemediateCancelAnswersWaitingUpdates(t *testing.T) {
	env, _, _ := remediateEnvWith(t, remediateMocks{present: func() bool { return true }, verifyTakes: 10 * time.Minute})
	var res updateAnswer
	env.RegisterDelayedCallback(func() { sendUpdate(env, UpdateResolve, AckSignal{By: "bob"}, &res) }, 30*time.Minute)
	env.RegisterDelayedCallback(env.CancelWorkflow, 35*time.Minute)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "%v", env.GetWorkflowError())
	require.NotEmpty(t, res.result.Message, "the waiting update was answered: %+v", res)
}

// While the analyzer that judges a finding fails, the finding is unknown,
// not clear: the resolve window starts again once the analyzer runs (found
// by review; issue 10).
func TestRemediateAnalyzerFailureRestartsTheResolveWindow(t *testing.T) {
	var env *testsuite.TestWorkflowEnvironment
	var start time.Time
	env, log, _ := remediateEnvWith(t, remediateMocks{present: func() bool { return false },
		verifyErr: func() error {
			if since := env.Now().Sub(start); since >= 3*time.Hour && since < 8*time.Hour {
				return temporal.NewApplicationError("external analyzer \"legacy\" failed on box-0042", activities.ErrTypeAnalyzerFailed)
			}
			return nil
		}})
	start = env.Now()
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"notify", "resolved"}, log.Kinds())
	require.GreaterOrEqual(t, log.at[1].Sub(start), 14*time.Hour, "clear for a whole window after the analyzer came back at 8h")
}
