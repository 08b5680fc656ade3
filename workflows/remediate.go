package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
)

// Signal and query names of Remediate.
const (
	// SignalEvidence carries a repeat detection (EvidenceSignal).
	SignalEvidence = activities.EvidenceSignalName
	// SignalAck acknowledges the problem (AckSignal): reminders and escalation stop.
	SignalAck = "ack"
	// SignalResolve says the problem was fixed (AckSignal): it is verified at once.
	SignalResolve = "resolve"
	// QueryState returns the RemediationState.
	QueryState = "state"
)

// Remediation phases reported by the state query.
const (
	PhaseNotifying     = "notifying"
	PhaseWaiting       = "waiting"
	PhaseAcknowledged  = "acknowledged"
	PhaseClearing      = "clearing"
	PhaseUndeliverable = "undeliverable"
	PhaseResolved      = "resolved"
)

// historyLimit is the history length past which Remediate continues as new.
const historyLimit = 2000

// RemediateWorkflowID returns the id of the remediation of a fingerprint: one
// workflow per box/rule/component.
func RemediateWorkflowID(fingerprint string) string {
	return activities.RemediateIDPrefix + fingerprint
}

// EvidenceSignal is a (repeat) detection of the finding.
type EvidenceSignal = activities.EvidenceSignal

// AckSignal is the payload of the ack and resolve signals.
type AckSignal struct {
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// RemediateInput starts Remediate. State is set only by continue-as-new.
type RemediateInput struct {
	Fingerprint string            `json:"fingerprint"`
	State       *RemediationState `json:"state,omitempty"`
}

// RemediationState is where a remediation is: what the state query returns
// and what continue-as-new carries over.
type RemediationState struct {
	Fingerprint   string           `json:"fingerprint"`
	Phase         string           `json:"phase"`
	Severity      finding.Severity `json:"severity"`
	StartedAt     time.Time        `json:"started_at"`
	Step          int              `json:"step"` // emails attempted in the thread
	EmailsSent    int              `json:"emails_sent"`
	FirstSentAt   time.Time        `json:"first_sent_at,omitempty"`
	LastSentAt    time.Time        `json:"last_sent_at,omitempty"`
	Detections    int              `json:"detections"`
	LastDetected  time.Time        `json:"last_detected,omitempty"`
	Acked         bool             `json:"acked"`
	AckedBy       string           `json:"acked_by,omitempty"`
	AckNote       string           `json:"ack_note,omitempty"`
	AckedAt       time.Time        `json:"acked_at,omitempty"`
	Escalated     bool             `json:"escalated"`
	Undeliverable bool             `json:"undeliverable"`
	ClearSince    time.Time        `json:"clear_since,omitempty"`
	LastVerified  time.Time        `json:"last_verified,omitempty"`
	LastError     string           `json:"last_error,omitempty"`
	Runs          int              `json:"runs"`
}

// Remediate follows one finding until it is fixed: it emails the owner
// (render -> send), then waits for an ack or resolve signal, new evidence or
// its timers; re-verifies on fresh data every verify interval; reminds and
// escalates while unacknowledged; and when the finding has been verified clear
// for the resolve window, sends a "resolved" email and completes. Emails of
// one fingerprint share a thread.
func Remediate(ctx workflow.Context, in RemediateInput) (RemediationState, error) {
	if in.Fingerprint == "" {
		return RemediationState{}, temporal.NewNonRetryableApplicationError("input fingerprint is empty", activities.ErrTypeInvalidInput, nil)
	}
	s, err := loadSettings(ctx)
	if err != nil {
		return RemediationState{}, err
	}
	r := &remediation{ctx: ctx, s: s}
	if in.State != nil {
		r.st = *in.State
	} else {
		r.st = RemediationState{Fingerprint: in.Fingerprint, Phase: PhaseNotifying, StartedAt: workflow.Now(ctx)}
	}
	r.st.Runs++
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (RemediationState, error) { return r.st, nil }); err != nil {
		return r.st, fmt.Errorf("set query handler: %w", err)
	}
	r.evidence = workflow.GetSignalChannel(ctx, SignalEvidence)
	r.ack = workflow.GetSignalChannel(ctx, SignalAck)
	r.resolve = workflow.GetSignalChannel(ctx, SignalResolve)
	return r.run(in)
}

// remediation is the running state machine of one Remediate run.
type remediation struct {
	ctx                    workflow.Context
	s                      activities.Settings
	st                     RemediationState
	evidence, ack, resolve workflow.ReceiveChannel
	resolveRequested       bool
}

func (r *remediation) run(in RemediateInput) (RemediationState, error) {
	ctx := r.ctx
	if in.State == nil {
		r.drainSignals()
		r.setStatus(finding.StatusOpen, "")
		r.send(activities.EmailNotify, "")
	}
	for {
		if r.st.Phase == PhaseResolved {
			return r.st, nil
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > historyLimit {
			r.drainSignals()
			if r.resolveRequested { // a resolve drained here is acted on, not carried as a flag
				r.resolveRequested = false
				r.verify(true)
				if r.st.Phase == PhaseResolved {
					return r.st, nil
				}
			}
			st := r.st
			return st, workflow.NewContinueAsNewError(ctx, Remediate, RemediateInput{Fingerprint: st.Fingerprint, State: &st})
		}
		r.waitOnce()
	}
}

// waitOnce waits for one signal or the next timer and acts on it.
func (r *remediation) waitOnce() {
	ctx := r.ctx
	now := workflow.Now(ctx)
	next, what := r.nextDeadline(now)
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	fired := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(r.ack, func(c workflow.ReceiveChannel, _ bool) { r.onAck(c, false) })
	sel.AddReceive(r.resolve, func(c workflow.ReceiveChannel, _ bool) { r.onAck(c, true) })
	sel.AddReceive(r.evidence, func(c workflow.ReceiveChannel, _ bool) { r.onEvidence(c) })
	sel.AddFuture(workflow.NewTimer(tctx, next.Sub(now)), func(f workflow.Future) {
		fired = f.Get(ctx, nil) == nil
	})
	sel.Select(ctx)
	if r.resolveRequested {
		r.resolveRequested = false
		r.verify(true)
		return
	}
	if !fired {
		return
	}
	switch what {
	case "escalate":
		// A failed escalation (relay down for smtp.retry_for) is tried again.
		r.st.Escalated = r.send(activities.EmailEscalation, "")
	case "remind":
		kind := activities.EmailReminder
		if r.st.EmailsSent == 0 {
			kind = activities.EmailNotify
		}
		r.send(kind, "")
	case "verify":
		r.verify(false)
	}
}

// nextDeadline returns the earliest due action: escalation, reminder or verification.
func (r *remediation) nextDeadline(now time.Time) (time.Time, string) {
	at, what := r.verifyAt(now), "verify"
	consider := func(t time.Time, w string) {
		if t.Before(at) {
			at, what = t, w
		}
	}
	if !r.st.Acked && !r.st.Undeliverable {
		if !r.st.Escalated && !r.st.FirstSentAt.IsZero() {
			consider(r.st.FirstSentAt.Add(r.s.EscalateAfter), "escalate")
		}
		last := r.st.LastSentAt
		if last.IsZero() {
			last = r.st.StartedAt
		}
		consider(last.Add(r.s.Reminder), "remind")
	}
	if at.Before(now) {
		at = now
	}
	return at, what
}

// verifyAt is when the next verification is due: every verify interval, and
// exactly when the resolve window of a clear finding ends.
func (r *remediation) verifyAt(now time.Time) time.Time {
	last := r.st.LastVerified
	if last.IsZero() {
		last = r.st.StartedAt
	}
	at := last.Add(r.s.VerifyEvery)
	if !r.st.ClearSince.IsZero() {
		// The end of the resolve window, unless a verification already ran at
		// or after it (and failed): then the normal interval applies.
		if end := r.st.ClearSince.Add(r.s.ResolveAfter); end.Before(at) && end.After(last) {
			at = end
		}
	}
	return at
}

func (r *remediation) onAck(c workflow.ReceiveChannel, resolve bool) {
	var sig AckSignal
	c.Receive(r.ctx, &sig)
	r.applyAck(sig, resolve)
}

func (r *remediation) applyAck(sig AckSignal, resolve bool) {
	if !r.st.Acked {
		r.st.Acked, r.st.AckedBy, r.st.AckNote, r.st.AckedAt = true, sig.By, sig.Note, workflow.Now(r.ctx)
		if r.st.Phase != PhaseClearing && r.st.Phase != PhaseUndeliverable {
			r.st.Phase = PhaseAcknowledged
		}
		note := "acknowledged by " + sig.By
		if sig.Note != "" {
			note += ": " + sig.Note
		}
		r.setStatus(finding.StatusAcknowledged, note)
	}
	if resolve {
		r.resolveRequested = true
	}
}

func (r *remediation) onEvidence(c workflow.ReceiveChannel) {
	var sig EvidenceSignal
	c.Receive(r.ctx, &sig)
	r.applyEvidence(sig)
}

func (r *remediation) applyEvidence(sig EvidenceSignal) {
	r.st.Detections++
	r.st.LastDetected = sig.DetectedAt
	r.st.ClearSince = time.Time{}
	if r.st.Phase == PhaseClearing {
		r.st.Phase = r.waitingPhase()
	}
	worse := sig.Severity.Rank() > r.st.Severity.Rank() && r.st.Severity != ""
	if sig.Severity != "" {
		r.st.Severity = sig.Severity
	}
	if worse && r.st.EmailsSent > 0 {
		r.send(activities.EmailUpdate, "severity is now "+string(sig.Severity))
	}
}

// drainSignals applies every signal already delivered, without blocking.
func (r *remediation) drainSignals() {
	for {
		var ev EvidenceSignal
		if !r.evidence.ReceiveAsync(&ev) {
			break
		}
		r.applyEvidence(ev)
	}
	for _, c := range []struct {
		ch      workflow.ReceiveChannel
		resolve bool
	}{{r.ack, false}, {r.resolve, true}} {
		for {
			var sig AckSignal
			if !c.ch.ReceiveAsync(&sig) {
				break
			}
			r.applyAck(sig, c.resolve)
		}
	}
}

func (r *remediation) waitingPhase() string {
	switch {
	case r.st.Undeliverable:
		return PhaseUndeliverable
	case r.st.Acked:
		return PhaseAcknowledged
	}
	return PhaseWaiting
}

// verify re-runs the analysis of the box on fresh data. Clear for the resolve
// window (or clear when a person said it was resolved) completes the remediation.
func (r *remediation) verify(requested bool) {
	ctx := workflow.WithActivityOptions(r.ctx, workflow.ActivityOptions{
		TaskQueue:           r.s.AnalysisQueue,
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: time.Minute, MaximumAttempts: 5},
	})
	now := workflow.Now(r.ctx)
	var res activities.VerifyResult
	err := workflow.ExecuteActivity(ctx, a.VerifyFinding, activities.VerifyInput{Fingerprint: r.st.Fingerprint}).Get(ctx, &res)
	r.st.LastVerified = now
	if err != nil {
		r.st.LastError = "verify: " + ErrorMessage(err)
		return
	}
	if res.Present {
		r.st.ClearSince = time.Time{}
		r.st.Phase = r.waitingPhase()
		if res.Severity != "" {
			r.st.Severity = res.Severity
		}
		if requested {
			r.st.LastError = "resolve requested but the problem is still detected on fresh data"
		}
		return
	}
	if r.st.ClearSince.IsZero() {
		r.st.ClearSince = now
	}
	r.st.Phase = PhaseClearing
	if requested || now.Sub(r.st.ClearSince) >= r.s.ResolveAfter {
		// Evidence delivered meanwhile (a repeat detection) means it is not clear.
		r.drainSignals()
		if r.st.ClearSince.IsZero() {
			return
		}
		r.send(activities.EmailResolved, fmt.Sprintf("verified clear since %s", r.st.ClearSince.UTC().Format(time.RFC3339)))
		r.setStatus(finding.StatusResolved, "verified clear")
		r.st.Phase = PhaseResolved
	}
}

// send emails one message of the thread. A permanent failure marks the
// finding undeliverable and tells the escalation contacts; running out of
// retries leaves the error in the state and the reminder timer tries again.
func (r *remediation) send(kind, note string) bool {
	step := r.st.Step
	r.st.Step++
	retryFor := r.s.SMTPRetryFor
	if retryFor <= 0 {
		retryFor = time.Hour
	}
	// One attempt may take a few SMTP timeouts (dial, commands, data); a worker
	// that dies mid-send is noticed after this and the send retried elsewhere.
	attempt := 4 * r.s.SMTPTimeout
	if attempt <= 0 {
		attempt = 2 * time.Minute
	}
	ctx := workflow.WithActivityOptions(r.ctx, workflow.ActivityOptions{
		TaskQueue:              r.s.EmailQueue,
		StartToCloseTimeout:    attempt,
		ScheduleToCloseTimeout: retryFor,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeUndeliverable, activities.ErrTypeUnknownFinding, activities.ErrTypeInvalidInput},
		},
	})
	info := workflow.GetInfo(r.ctx)
	in := activities.SendEmailInput{
		WorkflowID: info.WorkflowExecution.ID, ThreadKey: info.WorkflowExecution.ID + "/" + info.FirstRunID,
		Fingerprint: r.st.Fingerprint, Kind: kind, Step: step, Note: note,
	}
	var res activities.SendEmailResult
	err := workflow.ExecuteActivity(ctx, a.SendEmail, in).Get(ctx, &res)
	now := workflow.Now(r.ctx)
	if err == nil {
		r.st.EmailsSent++
		if r.st.FirstSentAt.IsZero() {
			r.st.FirstSentAt = now
		}
		r.st.LastSentAt = now
		if r.st.Phase == PhaseNotifying {
			r.st.Phase = r.waitingPhase()
		}
		return true
	}
	r.st.LastError = fmt.Sprintf("send %s: %s", kind, ErrorMessage(err))
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == activities.ErrTypeUndeliverable && kind != activities.EmailUndeliverable {
		r.st.Undeliverable = true
		r.st.Phase = PhaseUndeliverable
		r.setStatus(finding.StatusUndeliverable, r.st.LastError)
		if kind != activities.EmailResolved {
			r.send(activities.EmailUndeliverable, r.st.LastError)
		}
		return false
	}
	// Retries ran out (relay down for smtp.retry_for): try again at the next reminder.
	r.st.LastSentAt = now
	if r.st.Phase == PhaseNotifying {
		r.st.Phase = r.waitingPhase()
	}
	return false
}

// setStatus records the finding's status in the store.
func (r *remediation) setStatus(status finding.Status, note string) {
	ctx := workflow.WithActivityOptions(r.ctx, workflow.ActivityOptions{
		TaskQueue:           r.s.MainQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	err := workflow.ExecuteActivity(ctx, a.SetFindingStatus, activities.SetStatusInput{
		Fingerprint: r.st.Fingerprint, Status: status, Note: note,
	}).Get(ctx, nil)
	if err != nil {
		r.st.LastError = "record status: " + ErrorMessage(err)
	}
}

// ErrorMessage returns the message of the innermost application error of
// err, the one that names the problem, or err's whole message if there is none.
func ErrorMessage(err error) string {
	msg := err.Error()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if app, ok := e.(*temporal.ApplicationError); ok {
			msg = app.Error()
		}
	}
	return msg
}
