package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
)

const fp = "box-0042/capacity_forecast/pool/ssd_r6"

// mailLog records the SendEmail calls of a test in order.
type mailLog struct {
	mu    sync.Mutex
	kinds []string
	steps []int
	at    []time.Time
}

func (m *mailLog) add(in activities.SendEmailInput, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kinds = append(m.kinds, in.Kind)
	m.steps = append(m.steps, in.Step)
	m.at = append(m.at, now)
}

func (m *mailLog) Kinds() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.kinds...)
}

// remediateEnv sets up Remediate with mocked activities: present reports
// whether verification still sees the finding at a given test time.
func remediateEnv(t *testing.T, present func() bool, sendErr func(in activities.SendEmailInput) error) (*testsuite.TestWorkflowEnvironment, *mailLog, *[]finding.Status) {
	t.Helper()
	return remediateEnvWith(t, remediateMocks{present: present, sendErr: sendErr})
}

// remediateMocks shape the mocked activities of a Remediate test.
type remediateMocks struct {
	present func() bool
	sendErr func(in activities.SendEmailInput) error
	// statusErr, when set, may refuse a status write.
	statusErr func(in activities.SetStatusInput) error
	// verifyErr, when set, may fail a verification.
	verifyErr func() error
	// sendTakes and verifyTakes are how long (test time) each call lasts.
	sendTakes, verifyTakes time.Duration
	settings               *activities.Settings
}

func remediateEnvWith(t *testing.T, m remediateMocks) (*testsuite.TestWorkflowEnvironment, *mailLog, *[]finding.Status) {
	t.Helper()
	present, sendErr := m.present, m.sendErr
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(20 * time.Second)
	env.RegisterWorkflowWithOptions(Remediate, workflow.RegisterOptions{Name: activities.RemediateWorkflowType})
	env.RegisterActivity(a)
	settings := testSettings
	if m.settings != nil {
		settings = *m.settings
	}
	env.OnActivity(a.GetSettings, mock.Anything).Return(settings, nil)
	log := &mailLog{}
	env.OnActivity(a.SendEmail, mock.Anything, mock.Anything).After(m.sendTakes).Return(
		func(_ context.Context, in activities.SendEmailInput) (activities.SendEmailResult, error) {
			if sendErr != nil {
				if err := sendErr(in); err != nil {
					return activities.SendEmailResult{}, err
				}
			}
			log.add(in, env.Now())
			return activities.SendEmailResult{MessageID: "<id>"}, nil
		})
	env.OnActivity(a.VerifyFinding, mock.Anything, mock.Anything).After(m.verifyTakes).Return(
		func(context.Context, activities.VerifyInput) (activities.VerifyResult, error) {
			if m.verifyErr != nil {
				if err := m.verifyErr(); err != nil {
					return activities.VerifyResult{}, err
				}
			}
			if present() {
				return activities.VerifyResult{Present: true, Detail: "Pool ssd_r6 fills in 5 days (used 91 %)"}, nil
			}
			return activities.VerifyResult{}, nil
		})
	statuses := &[]finding.Status{}
	var mu sync.Mutex
	env.OnActivity(a.SetFindingStatus, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SetStatusInput) error {
			if m.statusErr != nil {
				if err := m.statusErr(in); err != nil {
					return err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			*statuses = append(*statuses, in.Status)
			return nil
		})
	return env, log, statuses
}

func TestRemediateRemindsEscalatesAndResolves(t *testing.T) {
	var start time.Time
	var env *testsuite.TestWorkflowEnvironment
	// The problem is present for the first 60 hours, then gone.
	env, log, statuses := remediateEnv(t, func() bool { return env.Now().Sub(start) < 60*time.Hour }, nil)
	start = env.Now()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Critical, DetectedAt: start})
	}, 0)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st RemediationState
	require.NoError(t, env.GetWorkflowResult(&st))

	// notify at 0, reminder at 24h, escalation at 48h (which also restarts the
	// reminder clock), resolved once clear (60h) for resolve_after (6h).
	require.Equal(t, []string{"notify", "reminder", "escalation", "resolved"}, log.Kinds())
	require.Equal(t, []int{0, 1, 2, 3}, log.steps)
	require.Equal(t, 24*time.Hour, log.at[1].Sub(log.at[0]))
	require.Equal(t, 48*time.Hour, log.at[2].Sub(log.at[0]))
	require.Equal(t, PhaseResolved, st.Phase)
	require.True(t, st.Escalated)
	require.Equal(t, 4, st.EmailsSent)
	resolvedAt := log.at[3].Sub(log.at[0])
	require.GreaterOrEqual(t, resolvedAt, 66*time.Hour)
	require.LessOrEqual(t, resolvedAt, 67*time.Hour)
	require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusResolved}, *statuses)
}

func TestRemediateAckStopsRemindersAndResolveVerifies(t *testing.T) {
	var env *testsuite.TestWorkflowEnvironment
	fixed := false
	env, log, statuses := remediateEnv(t, func() bool { return !fixed }, nil)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Warning}) }, 0)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalAck, AckSignal{By: "alice", Note: "on it"})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		// A repeat detection with worse severity sends an update.
		env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Critical})
	}, 3*time.Hour)
	env.RegisterDelayedCallback(func() {
		q, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		var st RemediationState
		require.NoError(t, q.Get(&st))
		require.True(t, st.Acked)
		require.Equal(t, "alice", st.AckedBy)
		require.Equal(t, PhaseAcknowledged, st.Phase)
		require.Equal(t, finding.Critical, st.Severity)
	}, 4*time.Hour)
	env.RegisterDelayedCallback(func() {
		// Resolve while still broken: verified at once, stays open.
		env.SignalWorkflow(SignalResolve, AckSignal{By: "bob"})
	}, 70*time.Hour)
	env.RegisterDelayedCallback(func() {
		fixed = true
		env.SignalWorkflow(SignalResolve, AckSignal{By: "bob"})
	}, 80*time.Hour)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())
	var st RemediationState
	require.NoError(t, env.GetWorkflowResult(&st))
	// Acked after 2h: no reminder, no escalation; resolve at 80h completes at once.
	require.Equal(t, []string{"notify", "update", "resolved"}, log.Kinds())
	require.Equal(t, 80*time.Hour, log.at[2].Sub(log.at[0]))
	require.False(t, st.Escalated)
	require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusAcknowledged, finding.StatusResolved}, *statuses)
}

func TestRemediatePermanentFailureGoesToEscalation(t *testing.T) {
	fixedAfter := 10 * time.Hour
	var env *testsuite.TestWorkflowEnvironment
	var start time.Time
	env, log, statuses := remediateEnv(t, func() bool { return env.Now().Sub(start) < fixedAfter },
		func(in activities.SendEmailInput) error {
			if in.Kind == activities.EmailNotify {
				return temporal.NewNonRetryableApplicationError("550 5.1.1 unknown mailbox", activities.ErrTypeUndeliverable, nil)
			}
			return nil
		})
	start = env.Now()
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())
	var st RemediationState
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, []string{"undeliverable", "resolved"}, log.Kinds())
	require.True(t, st.Undeliverable)
	require.Contains(t, st.LastError, "550 5.1.1 unknown mailbox")
	require.Equal(t, []finding.Status{finding.StatusOpen, finding.StatusUndeliverable, finding.StatusResolved}, *statuses)
}

func TestRemediateContinuesAsNewAndKeepsState(t *testing.T) {
	env, _, _ := remediateEnv(t, func() bool { return true }, nil)
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(historyLimit + 1) }, 5*time.Hour)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalAck, AckSignal{By: "dave"}) }, 5*time.Hour)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp, State: &RemediationState{
		Fingerprint: fp, Phase: PhaseWaiting, Step: 3, EmailsSent: 3, Runs: 1,
		StartedAt: env.Now(), FirstSentAt: env.Now(), LastSentAt: env.Now(),
	}})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next RemediateInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, fp, next.Fingerprint)
	require.NotNil(t, next.State)
	require.Equal(t, 3, next.State.Step, "no email was sent again")
	require.Equal(t, 2, next.State.Runs)
	require.True(t, next.State.Acked, "a signal delivered before continue-as-new is kept")
	require.Equal(t, "dave", next.State.AckedBy)
}

func TestRemediateRejectsEmptyFingerprint(t *testing.T) {
	env, _, _ := remediateEnv(t, func() bool { return true }, nil)
	env.ExecuteWorkflow(Remediate, RemediateInput{})
	require.ErrorContains(t, env.GetWorkflowError(), "input fingerprint is empty")
}

func TestRemediateRepeatDetectionRestartsTheResolveWindow(t *testing.T) {
	var env *testsuite.TestWorkflowEnvironment
	env, log, _ := remediateEnv(t, func() bool { return false }, nil)
	// Clear from the first verification (1h), so it would resolve at 7h; a
	// repeat detection at exactly 7h restarts the window.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalEvidence, EvidenceSignal{Severity: finding.Warning})
	}, 7*time.Hour)
	env.ExecuteWorkflow(Remediate, RemediateInput{Fingerprint: fp})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"notify", "resolved"}, log.Kinds())
	require.GreaterOrEqual(t, log.at[1].Sub(log.at[0]), 13*time.Hour, "resolved only after a full clear window after the detection")
}
