package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/email"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/search"
)

// This file holds the main loop of Remediate from changeRemediateV2 on.
// Handlers only record (signals land in their channels, updates in
// r.requests); the loop acts. Before continue-as-new and before completing,
// the loop settles: it applies everything delivered, acts on it, and repeats
// until nothing new arrived while it acted, then waits for the update
// handlers to finish. A detection that arrives after the "Resolved:" email
// reopens the remediation instead of being lost.

// searchState is what Remediate last wrote to its search attributes.
type searchState struct {
	phase, severity string
	acked, set      bool
}

func (r *remediation) runV2(in RemediateInput) (RemediationState, error) {
	ctx := r.ctx
	r.describe()
	if in.State == nil {
		r.settle()
		r.setStatus(finding.StatusOpen, "")
		r.send(activities.EmailNotify, "")
	}
	for {
		if ctx.Err() != nil {
			return r.cancelled()
		}
		r.settle()
		r.describe()
		if r.st.Phase == PhaseResolved {
			if r.st.PendingStatus != nil {
				// The store has not taken "resolved" yet: completing now
				// would leave the finding open there for ever.
				r.waitV2(r.st.PendingStatus.TriedAt.Add(statusRetryEvery), "status")
				continue
			}
			if !r.quiesce() {
				continue
			}
			if ctx.Err() != nil {
				return r.cancelled()
			}
			return r.st, nil
		}
		info := workflow.GetInfo(ctx)
		limit := historyLimit
		if r.s.RemediateHistoryLimit > 0 {
			limit = r.s.RemediateHistoryLimit
		}
		if info.GetCurrentHistoryLength() > limit || info.GetCurrentHistorySize() > historySizeLimit || info.GetContinueAsNewSuggested() {
			if !r.quiesce() {
				continue
			}
			if ctx.Err() != nil {
				return r.cancelled()
			}
			st := r.st
			return st, workflow.NewContinueAsNewError(ctx, Remediate, RemediateInput{Fingerprint: st.Fingerprint, State: &st})
		}
		next, what := r.nextDeadline(workflow.Now(ctx))
		r.waitV2(next, what)
	}
}

// cancelled ends a cancelled run (`temporal workflow cancel`): the
// follow-up stops, the finding keeps its status in the store, and updates
// waiting for an answer get one.
func (r *remediation) cancelled() (RemediationState, error) {
	for {
		var req *request
		if !r.requests.ReceiveAsync(&req) {
			break
		}
		r.pendingResolves = append(r.pendingResolves, req)
	}
	r.verifyOutcome = UpdateResult{Phase: r.st.Phase, Message: "the remediation was cancelled"}
	r.finishResolves()
	dctx, cancel := workflow.NewDisconnectedContext(r.ctx)
	defer cancel()
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return r.st, temporal.NewCanceledError(r.st.Phase)
}

// quiesce waits for the update handlers to finish and reports whether the
// run may end: false when something was delivered meanwhile, which the loop
// must act on first.
func (r *remediation) quiesce() bool {
	ctx := r.ctx
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) || r.pending() })
	return !r.pending() && !r.resolveRequested
}

// pending reports whether a signal or update waits in a channel.
func (r *remediation) pending() bool {
	return r.evidence.Len()+r.ack.Len()+r.resolve.Len()+r.requests.Len() > 0
}

// settle applies everything delivered and acts on it, until nothing new
// arrived while it acted.
func (r *remediation) settle() {
	for {
		got := r.applyPending()
		if r.resolveRequested {
			r.resolveRequested = false
			// A second resolve that arrived while the first one resolved
			// is answered by it: no second verification, no second email.
			if r.st.Phase != PhaseResolved {
				r.verify(true)
			}
			r.finishResolves()
			continue
		}
		if !got {
			return
		}
	}
}

// applyPending receives and applies every delivered signal and update
// without blocking; it reports whether there was any.
func (r *remediation) applyPending() bool {
	got := false
	for {
		var ev EvidenceSignal
		if !r.evidence.ReceiveAsync(&ev) {
			break
		}
		got = true
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
			got = true
			r.applyAck(sig, c.resolve)
		}
	}
	for {
		var req *request
		if !r.requests.ReceiveAsync(&req) {
			break
		}
		got = true
		r.handleRequest(req)
	}
	return got
}

// waitV2 waits until at for the due action what, or for a signal or update
// (applied here; the loop's settle acts on the rest).
func (r *remediation) waitV2(at time.Time, what string) {
	ctx := r.ctx
	now := workflow.Now(ctx)
	if at.Before(now) {
		at = now
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	fired := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(r.ack, func(c workflow.ReceiveChannel, _ bool) { r.onAck(c, false) })
	sel.AddReceive(r.resolve, func(c workflow.ReceiveChannel, _ bool) { r.onAck(c, true) })
	sel.AddReceive(r.evidence, func(c workflow.ReceiveChannel, _ bool) { r.onEvidence(c) })
	sel.AddReceive(r.requests, func(c workflow.ReceiveChannel, _ bool) {
		var req *request
		c.Receive(ctx, &req)
		r.handleRequest(req)
	})
	timer := workflow.NewTimerWithOptions(tctx, at.Sub(now), workflow.TimerOptions{Summary: timerSummary(what)})
	sel.AddFuture(timer, func(f workflow.Future) { fired = f.Get(ctx, nil) == nil })
	sel.Select(ctx)
	if !fired {
		return
	}
	switch what {
	case "escalate":
		r.st.EscalationTriedAt = workflow.Now(ctx)
		// A failed escalation is tried again a reminder interval later.
		r.st.Escalated = r.send(activities.EmailEscalation, "")
	case "remind":
		kind := activities.EmailReminder
		if r.st.EmailsSent == 0 {
			kind = activities.EmailNotify
		}
		r.send(kind, "")
	case "verify":
		r.verify(false)
	case "status":
		if p := r.st.PendingStatus; p != nil {
			r.setStatus(p.Status, p.Note)
		}
	}
}

// timerSummary is the UI's label of a timer: what it waits for.
func timerSummary(what string) string {
	switch what {
	case "escalate":
		return "wait for ack until escalation"
	case "remind":
		return "wait for ack until reminder"
	case "verify":
		return "wait until next verification on fresh data"
	case "status":
		return "wait, then record the status again (store refused it)"
	}
	return "wait for " + what
}

// handleRequest acts on one update. An ack answers at once; a resolve
// answers after the verification the loop runs next.
func (r *remediation) handleRequest(req *request) {
	if r.st.Phase == PhaseResolved {
		req.result = UpdateResult{Phase: r.st.Phase, Message: "already resolved"}
		req.done = true
		return
	}
	r.applyAck(req.sig, req.resolve)
	if req.resolve {
		r.pendingResolves = append(r.pendingResolves, req)
		return
	}
	msg := "acknowledged by " + req.sig.By
	if strings.HasPrefix(r.st.LastError, "record status") && r.st.PendingStatus != nil {
		msg += " (the store did not take the status yet; it is retried)"
	}
	req.result = UpdateResult{Phase: r.st.Phase, Message: msg}
	req.done = true
}

// finishResolves answers the resolve updates with the verification's outcome.
func (r *remediation) finishResolves() {
	for _, req := range r.pendingResolves {
		req.result = r.verifyOutcome
		req.done = true
	}
	r.pendingResolves = nil
}

// onUpdate is the handler of the ack and resolve updates: it hands the
// request to the main loop and waits for its answer.
func (r *remediation) onUpdate(ctx workflow.Context, sig AckSignal, resolve bool) (UpdateResult, error) {
	req := &request{sig: sig, resolve: resolve}
	r.requests.Send(ctx, req)
	// Awaited on a disconnected context: a cancelled remediation still
	// answers (see cancelled).
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if err := workflow.Await(dctx, func() bool { return req.done }); err != nil {
		return UpdateResult{}, err
	}
	return req.result, nil
}

// validateUpdate rejects an ack or resolve that cannot be acted on, before
// it enters history.
func (r *remediation) validateUpdate(_ workflow.Context, sig AckSignal) error {
	switch {
	case strings.TrimSpace(sig.By) == "":
		return fmt.Errorf("who is acting is empty: set --by NAME")
	case sig.Fingerprint != "" && sig.Fingerprint != r.st.Fingerprint:
		return fmt.Errorf("unknown fingerprint %q: this remediation follows %q", sig.Fingerprint, r.st.Fingerprint)
	case r.st.Phase == PhaseResolved:
		return fmt.Errorf("the remediation of %s is closed: it was resolved", r.st.Fingerprint)
	}
	return nil
}

// reopen turns a resolved remediation back into an open one: the problem was
// detected again after the "Resolved:" email. The owners are told in the
// same thread and the reminder and escalation clocks start again.
func (r *remediation) reopen() {
	now := workflow.Now(r.ctx)
	r.st.Reopened++
	r.st.Acked, r.st.AckedBy, r.st.AckNote, r.st.AckedAt = false, "", "", time.Time{}
	r.st.Escalated, r.st.EscalationTriedAt = false, time.Time{}
	r.st.FirstSentAt, r.st.LastSentAt = now, now
	r.st.Phase = r.waitingPhase()
	r.setStatus(finding.StatusOpen, "detected again after it was resolved")
	r.send(activities.EmailUpdate, "detected again after it was resolved")
}

// describe keeps the search attributes and the UI's current details in step
// with the state. Search attributes hold no personal data: no addresses, no
// names, no notes.
func (r *remediation) describe() {
	st := r.st
	details := fmt.Sprintf("**%s** · severity %s · %d emails sent · %d detections", st.Phase, orDash(string(st.Severity)), st.EmailsSent, st.Detections)
	if st.LastError != "" {
		details += "\n\nlast error: " + email.RedactAddresses(st.LastError)
	}
	workflow.SetCurrentDetails(r.ctx, details)
	if !r.s.SearchAttributes {
		return
	}
	cur := searchState{phase: st.Phase, severity: string(st.Severity), acked: st.Acked, set: true}
	if cur == r.searched {
		return
	}
	updates := []temporal.SearchAttributeUpdate{search.Phase.ValueSet(cur.phase), search.Acked.ValueSet(cur.acked)}
	if cur.severity != "" {
		updates = append(updates, search.Severity.ValueSet(cur.severity))
	}
	if !r.searched.set {
		if box, rule, _, err := finding.ParseFingerprint(st.Fingerprint); err == nil {
			updates = append(updates, search.Box.ValueSet(box), search.Rule.ValueSet(rule))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(r.ctx, updates...); err != nil {
		r.st.LastError = "search attributes: " + err.Error()
		return
	}
	r.searched = cur
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
