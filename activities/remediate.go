package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/email"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/search"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Email kinds, as workflows name them (the values of email.Kind).
const (
	EmailNotify        = string(email.KindNotify)
	EmailReminder      = string(email.KindReminder)
	EmailUpdate        = string(email.KindUpdate)
	EmailEscalation    = string(email.KindEscalation)
	EmailResolved      = string(email.KindResolved)
	EmailUndeliverable = string(email.KindUndeliverable)
)

// Mailer sends one rendered message; *email.Sender is the real one.
type Mailer interface {
	// Send delivers r to m's recipients; errors are *email.SendError.
	Send(ctx context.Context, m email.Message, r email.Rendered) error
}

// MailOptions says who emails come from and where mail for ownerless boxes goes.
type MailOptions struct {
	From         string
	DefaultOwner string
	// Domain is the right-hand side of Message-IDs.
	Domain string
}

// RemediationOptions say which findings are followed up by email.
type RemediationOptions struct {
	// Disabled turns off starting Remediate workflows from analysis.
	Disabled bool
	// MinSeverity is the least severe finding that gets an email (default warning).
	MinSeverity finding.Severity
}

// Names shared with the Remediate workflow (activities cannot import workflows).
const (
	// RemediateWorkflowType is the registered name of the Remediate workflow.
	RemediateWorkflowType = "Remediate"
	// RemediateIDPrefix prefixes a fingerprint to make its workflow id.
	RemediateIDPrefix = "remediate-"
	// EvidenceSignalName is the signal that carries a repeat detection.
	EvidenceSignalName = "evidence"
)

// EvidenceSignal is a (repeat) detection of a finding, sent to its Remediate workflow.
type EvidenceSignal struct {
	Severity   finding.Severity `json:"severity"`
	DetectedAt time.Time        `json:"detected_at"`
}

// remediateStart is the JSON shape of the Remediate workflow's input.
type remediateStart struct {
	Fingerprint string `json:"fingerprint"`
}

// recordEmailTimeout bounds recording a sent email, which runs detached from
// the activity's own deadline.
const recordEmailTimeout = 30 * time.Second

// SendEmailInput names one email of a remediation thread.
type SendEmailInput struct {
	WorkflowID string `json:"workflow_id"`
	// ThreadKey identifies the thread (workflow id + first run id); Message-IDs derive from it.
	ThreadKey   string `json:"thread_key"`
	Fingerprint string `json:"fingerprint"`
	Kind        string `json:"kind"`
	Step        int    `json:"step"`
	Note        string `json:"note,omitempty"`
}

// SendEmailResult reports a sent (or already sent) email.
type SendEmailResult struct {
	MessageID string   `json:"message_id"`
	To        []string `json:"to"`
	Cc        []string `json:"cc,omitempty"`
	// Skipped is true when this Message-ID had been sent before (a retry after a crash).
	Skipped bool `json:"skipped,omitempty"`
}

// SendEmail renders and sends one email about a finding, with fresh evidence
// from the store. The Message-ID derives from the thread and step, and a
// Message-ID already recorded as sent is not sent again, so a retry after a
// crash does not duplicate the email. Permanent SMTP failures and unusable
// addresses are non-retryable (Undeliverable) and mark the finding.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) (SendEmailResult, error) {
	kind := email.Kind(in.Kind)
	if !kind.Valid() || in.ThreadKey == "" || in.Fingerprint == "" {
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("send email: bad input kind=%q thread=%q fingerprint=%q", in.Kind, in.ThreadKey, in.Fingerprint), ErrTypeInvalidInput, nil)
	}
	f, err := a.Store.Finding(ctx, in.Fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError("send email: no finding "+in.Fingerprint, ErrTypeUnknownFinding, nil)
	}
	if err != nil {
		return SendEmailResult{}, fmt.Errorf("read finding: %w", err)
	}
	box := a.box(f.Box)
	to, cc, note, err := a.recipients(box, kind)
	if err != nil {
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUndeliverable, nil)
	}
	if in.Note != "" {
		note = strings.TrimSpace(in.Note + ". " + note)
	}
	msg := email.Message{
		Kind: kind, Finding: f, Box: box, To: to, Cc: cc, From: a.Mail.From, WorkflowID: in.WorkflowID,
		MessageID: email.MessageID(in.ThreadKey, in.Step, kind, a.Mail.Domain), Step: in.Step, Note: note,
	}
	if in.Step > 0 {
		root := email.MessageID(in.ThreadKey, 0, email.KindNotify, a.Mail.Domain)
		msg.InReplyTo, msg.References = root, []string{root}
	}
	res := SendEmailResult{MessageID: msg.MessageID, To: to, Cc: cc}
	if sent, err := a.Store.EmailSent(ctx, msg.MessageID); err != nil {
		return res, fmt.Errorf("check sent emails: %w", err)
	} else if sent {
		res.Skipped = true
		return res, nil
	}
	if series, err := a.evidenceSeries(ctx, f); err == nil && len(series) > 0 {
		msg.Finding.Evidence.Series = series
	}
	if err := msg.Validate(); err != nil {
		return res, temporal.NewNonRetryableApplicationError("send email: "+err.Error(), ErrTypeUndeliverable, nil)
	}
	rendered, err := email.Render(msg)
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError("render email: "+err.Error(), ErrTypeInvalidInput, nil)
	}
	if err := a.Mailer.Send(ctx, msg, rendered); err != nil {
		if a.Metrics != nil {
			a.Metrics.EmailsFailed.WithLabelValues(in.Kind).Inc()
		}
		if email.IsPermanent(err) {
			return res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUndeliverable, nil)
		}
		return res, err
	}
	rec := store.EmailRecord{
		MessageID: msg.MessageID, Fingerprint: in.Fingerprint, Kind: in.Kind, To: append(append([]string{}, to...), cc...),
		Subject: rendered.Subject, SentAt: a.now().UTC(),
	}
	// The mail went out: record it even if the activity's deadline passed or
	// it was cancelled meanwhile, or the retry would send it again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordEmailTimeout)
	defer cancel()
	if err := a.Store.RecordEmail(rctx, rec); err != nil {
		// A failed record only risks a duplicate on a later retry.
		activity.GetLogger(ctx).Error("record sent email", "message_id", msg.MessageID, "error", err)
	}
	if a.Metrics != nil {
		a.Metrics.EmailsSent.WithLabelValues(in.Kind).Inc()
	}
	activity.GetLogger(ctx).Info("email sent", "fingerprint", in.Fingerprint, "kind", in.Kind, "message_id", msg.MessageID, "recipients", len(to)+len(cc))
	return res, nil
}

func (a *Activities) box(id string) fleet.Box {
	if a.Inventory != nil {
		if b, ok := a.Inventory.Box(id); ok {
			return b
		}
	}
	return fleet.Box{ID: id}
}

// recipients routes an email: owners for the thread, escalation contacts (and
// owners in copy) for escalations, escalation contacts for undeliverable
// notices; the default owner when the inventory names nobody.
func (a *Activities) recipients(box fleet.Box, kind email.Kind) (to, cc []string, note string, err error) {
	switch kind {
	case email.KindEscalation:
		to, cc = box.Escalation, box.Owners
	case email.KindUndeliverable:
		to = box.Escalation
	default:
		to = box.Owners
	}
	if len(to) == 0 {
		if a.Mail.DefaultOwner == "" {
			return nil, nil, "", fmt.Errorf("no recipient for %s email about box %s: the inventory names none and smtp.default_owner is not set", kind, box.ID)
		}
		to = []string{a.Mail.DefaultOwner}
		note = fmt.Sprintf("Box %s has no %s contact in the inventory; this was routed to the default owner.", box.ID, contactRole(kind))
	}
	return to, cc, note, nil
}

func contactRole(kind email.Kind) string {
	if kind == email.KindEscalation || kind == email.KindUndeliverable {
		return "escalation"
	}
	return "owner"
}

// evidenceSeries reads the offending series over the finding's window from
// the store (the email trims it to a small size).
func (a *Activities) evidenceSeries(ctx context.Context, f finding.Finding) ([]finding.Point, error) {
	ev := f.Evidence
	if ev.Metric == "" || ev.WindowStart.IsZero() || ev.WindowEnd.IsZero() {
		return nil, nil
	}
	samples, err := a.Store.Window(ctx, f.Box, ev.WindowStart, ev.WindowEnd)
	if err != nil {
		return nil, err
	}
	var pts []finding.Point
	for _, s := range samples {
		if s.Component == f.Component && s.Metric == ev.Metric {
			pts = append(pts, finding.Point{Time: s.Time, Value: s.Value})
		}
	}
	return pts, nil
}

// VerifyInput names the finding to re-check.
type VerifyInput struct {
	Fingerprint string `json:"fingerprint"`
}

// VerifyResult says whether the finding is still detected on fresh data.
type VerifyResult struct {
	Present  bool             `json:"present"`
	Severity finding.Severity `json:"severity,omitempty"`
	// Detail gives the numbers of a finding still present, e.g.
	// "Pool ssd_r6 fills in 5.2 days (used_pct 91.3 %, days_to_full 5.2)".
	Detail string `json:"detail,omitempty"`
}

// VerifyFinding re-analyses the finding's box on its newest data and reports
// whether the finding is still there (its stored evidence is refreshed). A
// window over samples.max_points is a non-retryable error, as in
// AnalyzeShard.
func (a *Activities) VerifyFinding(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	box, _, _, err := finding.ParseFingerprint(in.Fingerprint)
	if err != nil {
		return VerifyResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	refs, _, failed, err := a.analyzeBox(ctx, box, a.Settings.Window, true)
	if err != nil {
		return VerifyResult{}, permanentRead(fmt.Errorf("verify %s: %w", in.Fingerprint, err))
	}
	for _, r := range refs {
		if r.Fingerprint == in.Fingerprint {
			res := VerifyResult{Present: true, Severity: r.Severity}
			if f, err := a.Store.Finding(ctx, in.Fingerprint); err == nil {
				res.Detail = findingDetail(f)
			}
			return res, nil
		}
	}
	if names := a.failedOwners(ctx, in.Fingerprint, failed); len(names) > 0 {
		// Not found because not looked for: the finding is unknown, not
		// cleared. A retryable error leaves the remediation as it was.
		return VerifyResult{}, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: unknown: %s failed on box %s: %v", in.Fingerprint, analyzerNames(names), box, failed[names[0]]),
			ErrTypeAnalyzerFailed)
	}
	return VerifyResult{}, nil
}

// failedOwners returns the failed external analyzers (sorted) that may
// have produced the finding fp: those that have reported its rule before,
// or, when none is known to, every failed one. None for a built-in rule.
func (a *Activities) failedOwners(ctx context.Context, fp string, failed map[string]error) []string {
	_, rule, _, err := finding.ParseFingerprint(fp)
	if len(failed) == 0 || err != nil || slices.Contains(finding.Rules, rule) {
		return nil
	}
	all := slices.Sorted(maps.Keys(failed))
	statuses, err := a.Store.AnalyzerStatuses(ctx)
	if err != nil {
		activity.GetLogger(ctx).Warn("read external analyzers", "error", err)
		return all
	}
	var owners []string
	for _, s := range statuses {
		if slices.Contains(s.Rules, rule) {
			owners = append(owners, s.Analyzer)
		}
	}
	if len(owners) == 0 {
		return all
	}
	var out []string
	for _, name := range owners {
		if _, ok := failed[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// analyzerNames says `external analyzer "a"` or `external analyzers "a", "b"`.
func analyzerNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return "external analyzer " + q[0]
	}
	return "external analyzers " + strings.Join(q, ", ")
}

// SetStatusInput sets a finding's status.
type SetStatusInput struct {
	Fingerprint string         `json:"fingerprint"`
	Status      finding.Status `json:"status"`
	Note        string         `json:"note,omitempty"`
}

// SetFindingStatus records a finding's status (open, acknowledged, resolved, undeliverable).
func (a *Activities) SetFindingStatus(ctx context.Context, in SetStatusInput) error {
	err := a.Store.SetFindingStatus(ctx, in.Fingerprint, in.Status, in.Note)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("set status: no finding "+in.Fingerprint, ErrTypeUnknownFinding, nil)
	}
	return err
}

// DispatchInput lists findings that analysis just detected.
type DispatchInput struct {
	Findings []FindingRef `json:"findings"`
}

// DispatchResult counts the remediation workflows signalled (started or updated).
type DispatchResult struct {
	Signalled int `json:"signalled"`
	Skipped   int `json:"skipped,omitempty"`
}

// DispatchFindings hands each finding at or above the minimum severity to its
// Remediate workflow with signal-with-start: the first detection starts the
// workflow, a repeat one only updates its evidence.
func (a *Activities) DispatchFindings(ctx context.Context, in DispatchInput) (DispatchResult, error) {
	var res DispatchResult
	o := a.Remediation
	if o.Disabled || a.Client == nil {
		res.Skipped = len(in.Findings)
		return res, nil
	}
	min := o.MinSeverity
	if min == "" {
		min = finding.Warning
	}
	for i, f := range in.Findings {
		if f.Severity.Rank() < min.Rank() {
			res.Skipped++
			continue
		}
		opts := client.StartWorkflowOptions{
			ID:                    RemediateIDPrefix + f.Fingerprint,
			TaskQueue:             a.Settings.MainQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}
		a.describeRemediation(ctx, f, &opts)
		if _, err := a.Client.SignalWithStartWorkflow(ctx, opts.ID, EvidenceSignalName,
			EvidenceSignal{Severity: f.Severity, DetectedAt: f.DetectedAt}, opts, RemediateWorkflowType, remediateStart{Fingerprint: f.Fingerprint}); err != nil {
			return res, fmt.Errorf("signal-with-start %s: %w", opts.ID, err)
		}
		res.Signalled++
		activity.RecordHeartbeat(ctx, i)
	}
	return res, nil
}

// findingDetail is a one-line account of a finding: its title and numbers.
func findingDetail(f finding.Finding) string {
	var nums []string
	for _, n := range f.Evidence.Numbers {
		v := strconv.FormatFloat(n.Value, 'f', -1, 64)
		if math.Abs(n.Value) >= 100 || n.Value != math.Trunc(n.Value) {
			v = strconv.FormatFloat(n.Value, 'f', 1, 64)
		}
		if n.Unit != "" {
			v += " " + n.Unit
		}
		nums = append(nums, n.Name+" "+v)
	}
	if len(nums) == 0 {
		return f.Title
	}
	return f.Title + " (" + strings.Join(nums, ", ") + ")"
}

// describeRemediation gives a Remediate workflow that signal-with-start may
// start its user metadata (the UI's summary: severity, title, box) and its
// search attributes (box, site, rule, severity, phase). Neither holds an
// email address or any other personal data.
func (a *Activities) describeRemediation(ctx context.Context, ref FindingRef, opts *client.StartWorkflowOptions) {
	box, rule, component, err := finding.ParseFingerprint(ref.Fingerprint)
	if err != nil {
		return
	}
	title := rule + " on " + component
	if f, err := a.Store.Finding(ctx, ref.Fingerprint); err == nil && f.Title != "" {
		title = f.Title
	}
	opts.StaticSummary = fmt.Sprintf("%s: %s (box %s)", ref.Severity, title, box)
	opts.StaticDetails = fmt.Sprintf("**%s** on box `%s`, component `%s`, rule `%s`, first detected %s. "+
		"`starter findings --box %s` shows the evidence; `starter ack %s --by NAME` acknowledges.",
		ref.Severity, box, component, rule, ref.DetectedAt.UTC().Format(time.RFC3339), box, ref.Fingerprint)
	if !a.Settings.SearchAttributes {
		return
	}
	sa := []temporal.SearchAttributeUpdate{
		search.Box.ValueSet(box), search.Rule.ValueSet(rule), search.Severity.ValueSet(string(ref.Severity)),
		search.Phase.ValueSet("notifying"), search.Acked.ValueSet(false),
	}
	if site := a.box(box).Site; site != "" {
		sa = append(sa, search.Site.ValueSet(site))
	}
	opts.TypedSearchAttributes = temporal.NewSearchAttributes(sa...)
}
