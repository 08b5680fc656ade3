package workflows

import (
	"errors"
	"fmt"
	"strings"
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
	// UpdateAck acknowledges the problem and answers with the new phase
	// (AckSignal in, UpdateResult out). Validated: --by set, remediation open,
	// fingerprint matching.
	UpdateAck = "Ack"
	// UpdateResolve says the problem was fixed; it answers once fresh data
	// was checked: resolved, or still detected with the numbers.
	UpdateResolve = "Resolve"
)

// changeRemediateV2 is the GetVersion change id of this round's Remediate:
// signals drained again after the last activities before continue-as-new
// and completion (a detection after "Resolved:" reopens), escalation retries
// paced by the reminder interval, status writes that survive a database
// outage, a failed "Resolved:" email retried before completing, the phase
// kept at notifying until an email went out, search attributes, user
// metadata, and the ack/resolve updates. Runs started before it keep the old
// behaviour until they continue as new.
const changeRemediateV2 = "remediate-v2"

// statusRetryEvery is how often a status the store refused is written again.
const statusRetryEvery = 10 * time.Minute

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
	// Fingerprint, when set (the updates), must be the remediation's own.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// UpdateResult answers the ack and resolve updates.
type UpdateResult struct {
	Phase string `json:"phase"`
	// Message says what happened: "acknowledged", "resolved: verified
	// clear", "still detected: <numbers>", or why verification failed.
	Message string `json:"message"`
	// StillDetected is true when a resolve found the problem on fresh data.
	StillDetected bool `json:"still_detected,omitempty"`
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
	// EscalationTriedAt is when the last escalation was attempted; a failed
	// one is tried again a reminder interval later, never at once.
	EscalationTriedAt time.Time `json:"escalation_tried_at,omitzero"`
	// PendingStatus is a status the store has not taken yet; it is written
	// again every statusRetryEvery, and a resolved remediation does not
	// complete before it is recorded.
	PendingStatus *PendingStatus `json:"pending_status,omitempty"`
	// LastDetail is what the last verification saw, e.g. "still detected: ...".
	LastDetail string `json:"last_detail,omitempty"`
	// Reopened counts detections after the remediation was resolved.
	Reopened int `json:"reopened,omitempty"`
}

// PendingStatus is a finding status waiting to be recorded in the store.
type PendingStatus struct {
	Status finding.Status `json:"status"`
	Note   string         `json:"note,omitempty"`
	// TriedAt is when the store last refused it.
	TriedAt time.Time `json:"tried_at"`
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
	v2 := workflow.GetVersion(ctx, changeRemediateV2, workflow.DefaultVersion, 1) >= 1
	r := &remediation{ctx: ctx, v2: v2}
	if v2 {
		// Handlers first, before anything that may block, so an update in
		// the first workflow task of a run (right after continue-as-new)
		// is not refused as unknown.
		if err := r.init(in); err != nil {
			return r.st, err
		}
	}
	s, err := loadSettings(ctx)
	if err != nil {
		return RemediationState{}, err
	}
	r.s = s
	if v2 {
		return r.runV2(in)
	}
	if err := r.init(in); err != nil {
		return r.st, err
	}
	return r.run(in)
}

// init sets the state from the input and registers the query, signal
// channels and (v2) update handlers.
func (r *remediation) init(in RemediateInput) error {
	ctx := r.ctx
	if in.State != nil {
		r.st = *in.State
	} else {
		r.st = RemediationState{Fingerprint: in.Fingerprint, Phase: PhaseNotifying, StartedAt: workflow.Now(ctx)}
	}
	r.st.Runs++
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (RemediationState, error) { return r.st, nil }); err != nil {
		return fmt.Errorf("set query handler: %w", err)
	}
	r.evidence = workflow.GetSignalChannel(ctx, SignalEvidence)
	r.ack = workflow.GetSignalChannel(ctx, SignalAck)
	r.resolve = workflow.GetSignalChannel(ctx, SignalResolve)
	if !r.v2 {
		return nil
	}
	r.requests = workflow.NewBufferedChannel(ctx, 1000)
	for _, u := range []struct {
		name    string
		resolve bool
	}{{UpdateAck, false}, {UpdateResolve, true}} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, sig AckSignal) (UpdateResult, error) {
				return r.onUpdate(ctx, sig, u.resolve)
			},
			workflow.UpdateHandlerOptions{Validator: r.validateUpdate})
		if err != nil {
			return fmt.Errorf("set update handler %s: %w", u.name, err)
		}
	}
	return nil
}

// remediation is the running state machine of one Remediate run.
type remediation struct {
	ctx                    workflow.Context
	s                      activities.Settings
	st                     RemediationState
	evidence, ack, resolve workflow.ReceiveChannel
	resolveRequested       bool

	// v2 is true on runs of changeRemediateV2 and later.
	v2 bool
	// requests carries ack/resolve updates from their handlers to the main
	// loop, which acts on them; resolves wait in pendingResolves for the
	// verification that answers them.
	requests        workflow.Channel
	pendingResolves []*request
	// verifyOutcome says what the last verification found, for update answers.
	verifyOutcome UpdateResult
	// lastSendPermanent is true when the last send failed for good.
	lastSendPermanent bool
	// searched is what was last written to the search attributes.
	searched searchState
}

// request is one ack or resolve update waiting for the main loop.
type request struct {
	sig     AckSignal
	resolve bool
	done    bool
	result  UpdateResult
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
			due := r.st.FirstSentAt.Add(r.s.EscalateAfter)
			if r.v2 && !r.st.EscalationTriedAt.IsZero() {
				// A failed escalation is not retried at once, over and over.
				if again := r.st.EscalationTriedAt.Add(r.s.Reminder); again.After(due) {
					due = again
				}
			}
			consider(due, "escalate")
		}
		last := r.st.LastSentAt
		if last.IsZero() {
			last = r.st.StartedAt
		}
		consider(last.Add(r.s.Reminder), "remind")
	}
	if p := r.st.PendingStatus; r.v2 && p != nil {
		consider(p.TriedAt.Add(statusRetryEvery), "status")
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
	if r.v2 && r.st.Phase == PhaseResolved {
		// Closed: the ack is kept in the state, the store keeps "resolved".
		if !r.st.Acked {
			r.st.Acked, r.st.AckedBy, r.st.AckNote, r.st.AckedAt = true, sig.By, sig.Note, workflow.Now(r.ctx)
		}
		return
	}
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
	if r.v2 && r.st.Phase == PhaseResolved {
		r.st.Detections++
		r.st.LastDetected = sig.DetectedAt
		r.st.ClearSince = time.Time{}
		if sig.Severity != "" {
			r.st.Severity = sig.Severity
		}
		r.reopen()
		return
	}
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
	case r.v2 && r.st.EmailsSent == 0:
		return PhaseNotifying // no owner was told yet
	}
	return PhaseWaiting
}

// verify re-runs the analysis of the box on fresh data. Clear for the resolve
// window (or clear when a person said it was resolved) completes the remediation.
func (r *remediation) verify(requested bool) {
	opts := workflow.ActivityOptions{
		TaskQueue:           r.s.AnalysisQueue,
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: time.Minute, MaximumAttempts: 5},
	}
	if r.v2 {
		opts.ScheduleToCloseTimeout = 15 * time.Minute
		opts.Summary = "verify on fresh data"
		if requested {
			opts.Summary = "verify on fresh data (resolve requested)"
		}
	}
	ctx := workflow.WithActivityOptions(r.ctx, opts)
	now := workflow.Now(r.ctx)
	var res activities.VerifyResult
	err := workflow.ExecuteActivity(ctx, a.VerifyFinding, activities.VerifyInput{Fingerprint: r.st.Fingerprint}).Get(ctx, &res)
	r.st.LastVerified = now
	if err != nil {
		r.st.LastError = "verify: " + ErrorMessage(err)
		r.verifyOutcome = UpdateResult{Phase: r.st.Phase, Message: "verification failed, nothing changed: " + ErrorMessage(err)}
		var app *temporal.ApplicationError
		if r.v2 && errors.As(err, &app) && app.Type() == activities.ErrTypeAnalyzerFailed {
			// The analyzer that judges this finding failed: its state is
			// unknown, so the clear time so far no longer counts.
			r.st.ClearSince = time.Time{}
			if r.st.Phase == PhaseClearing {
				r.st.Phase = r.waitingPhase()
			}
		}
		return
	}
	if res.Present {
		r.st.LastDetail = "still detected: " + res.Detail
		r.verifyOutcome = UpdateResult{Phase: r.waitingPhase(), Message: r.st.LastDetail, StillDetected: true}
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
	r.st.LastDetail = "clear on fresh data"
	r.verifyOutcome = UpdateResult{Phase: PhaseClearing, Message: fmt.Sprintf("clear on fresh data since %s; resolved after %s clear", r.st.ClearSince.UTC().Format(time.RFC3339), r.s.ResolveAfter)}
	if requested || now.Sub(r.st.ClearSince) >= r.s.ResolveAfter {
		if r.v2 {
			r.resolveV2()
			return
		}
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

// resolveV2 completes a verified-clear remediation: the "Resolved:" email
// must go out (or be undeliverable) before the finding is marked resolved;
// a relay that is down means another try at the next verification.
func (r *remediation) resolveV2() {
	// Evidence delivered meanwhile (a repeat detection) means it is not clear.
	r.applyPending()
	if r.st.ClearSince.IsZero() {
		r.verifyOutcome = UpdateResult{Phase: r.st.Phase, Message: "a repeat detection arrived while resolving: still open", StillDetected: true}
		return
	}
	ok := r.send(activities.EmailResolved, fmt.Sprintf("verified clear since %s", r.st.ClearSince.UTC().Format(time.RFC3339)))
	if !ok && !r.lastSendPermanent {
		r.st.LastDetail = "clear on fresh data, but the Resolved email failed; tried again at the next verification"
		r.verifyOutcome = UpdateResult{Phase: r.st.Phase, Message: r.st.LastDetail + ": " + r.st.LastError}
		return
	}
	r.setStatus(finding.StatusResolved, "verified clear")
	r.st.Phase = PhaseResolved
	r.verifyOutcome = UpdateResult{Phase: PhaseResolved, Message: "resolved: verified clear on fresh data"}
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
	opts := workflow.ActivityOptions{
		TaskQueue:              r.s.EmailQueue,
		StartToCloseTimeout:    attempt,
		ScheduleToCloseTimeout: retryFor,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeUndeliverable, activities.ErrTypeUnknownFinding, activities.ErrTypeInvalidInput},
		},
	}
	if r.v2 {
		opts.Summary = fmt.Sprintf("email %d: %s", step+1, kind)
	}
	r.lastSendPermanent = false
	ctx := workflow.WithActivityOptions(r.ctx, opts)
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
	r.lastSendPermanent = errors.As(err, &app) && app.NonRetryable()
	if errors.As(err, &app) && app.Type() == activities.ErrTypeUndeliverable && kind != activities.EmailUndeliverable {
		r.st.Undeliverable = true
		r.st.Phase = PhaseUndeliverable
		r.setStatus(finding.StatusUndeliverable, r.st.LastError)
		if kind != activities.EmailResolved {
			r.send(activities.EmailUndeliverable, r.st.LastError)
		}
		return false
	}
	// Retries ran out (relay down for smtp.retry_for): try again at the next
	// reminder. From v2 on a remediation that never reached anyone stays
	// "notifying", so lists and checks show that no owner was told.
	r.st.LastSentAt = now
	if r.st.Phase == PhaseNotifying && (!r.v2 || r.st.EmailsSent > 0) {
		r.st.Phase = r.waitingPhase()
	}
	return false
}

// setStatus records the finding's status in the store.
// From v2 on it retries for an hour and, if the store still refuses, keeps
// the status pending and writes it again every statusRetryEvery: a database
// blip never leaves the store behind the workflow.
func (r *remediation) setStatus(status finding.Status, note string) {
	opts := workflow.ActivityOptions{
		TaskQueue:           r.s.MainQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	}
	if r.v2 {
		opts.ScheduleToCloseTimeout = time.Hour
		opts.RetryPolicy = &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeUnknownFinding, activities.ErrTypeInvalidInput},
		}
		opts.Summary = "record status " + string(status)
	}
	ctx := workflow.WithActivityOptions(r.ctx, opts)
	err := workflow.ExecuteActivity(ctx, a.SetFindingStatus, activities.SetStatusInput{
		Fingerprint: r.st.Fingerprint, Status: status, Note: note,
	}).Get(ctx, nil)
	if err == nil {
		if r.v2 {
			r.st.PendingStatus = nil
			if strings.HasPrefix(r.st.LastError, "record status") {
				r.st.LastError = ""
			}
		}
		return
	}
	r.st.LastError = "record status: " + ErrorMessage(err)
	if !r.v2 {
		return
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() {
		r.st.PendingStatus = nil // the finding is gone from the store: nothing to record
		return
	}
	r.st.PendingStatus = &PendingStatus{Status: status, Note: note, TriedAt: workflow.Now(r.ctx)}
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
