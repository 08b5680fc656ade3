package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/tsdb"
)

// AnalyzeShardInput names a shard of boxes to analyse: ids, never data.
type AnalyzeShardInput struct {
	Boxes []string `json:"boxes"`
	// Window is how much history ends at each box's newest sample (0: configured).
	Window time.Duration `json:"window,omitempty"`
	// JudgeSilence checks each box against the fleet's clock (silent_box).
	// Scans set it; analysis right after a box's own batch does not, since
	// that box has just been heard from (and batches of a backlog arrive
	// out of order).
	JudgeSilence bool `json:"judge_silence,omitempty"`
	// CountsOnly returns counts of findings instead of a reference per
	// finding (the findings are in the store), so that a result stays small
	// however many findings a shard has. Workflows set it from their
	// bounded-payloads version on.
	CountsOnly bool `json:"counts_only,omitempty"`
	// Dispatch hands each finding to remediation as soon as its box is
	// analysed (what DispatchFindings does), so that findings need not
	// travel through the workflow.
	Dispatch bool `json:"dispatch,omitempty"`
}

// FindingRef is the small summary of one finding that travels back to the workflow.
type FindingRef struct {
	Fingerprint string           `json:"fingerprint"`
	Severity    finding.Severity `json:"severity"`
	New         bool             `json:"new,omitempty"`
	DetectedAt  time.Time        `json:"detected_at"`
}

// ShardResult is what AnalyzeShard reports: with CountsOnly the counts
// below and no Findings.
type ShardResult struct {
	Analysed int          `json:"analysed"`
	NoData   int          `json:"no_data,omitempty"`
	Findings []FindingRef `json:"findings,omitempty"`

	// FindingCount counts the findings, NewFindings those not seen before,
	// BySeverity both by severity (CountsOnly).
	FindingCount int            `json:"finding_count,omitempty"`
	NewFindings  int            `json:"new_findings,omitempty"`
	BySeverity   map[string]int `json:"by_severity,omitempty"`
	// Remediations counts findings handed to their Remediate workflows,
	// DispatchErrors the hand-offs that failed, FirstDispatchError says
	// why the first one failed (Dispatch).
	Remediations       int    `json:"remediations,omitempty"`
	DispatchErrors     int    `json:"dispatch_errors,omitempty"`
	FirstDispatchError string `json:"first_dispatch_error,omitempty"`
}

// count folds one box's findings and their hand-off into the counts.
func (r *ShardResult) count(refs []FindingRef, d DispatchResult, derr error) {
	for _, f := range refs {
		r.FindingCount++
		if f.New {
			r.NewFindings++
		}
		if r.BySeverity == nil {
			r.BySeverity = map[string]int{}
		}
		r.BySeverity[string(f.Severity)]++
	}
	r.Remediations += d.Signalled
	if derr != nil {
		// The hand-off stops at the first failure: the findings neither
		// signalled nor skipped failed.
		r.DispatchErrors += len(refs) - d.Signalled - d.Skipped
		if r.FirstDispatchError == "" {
			r.FirstDispatchError = derr.Error()
		}
	}
}

// AnalyzeShard runs every analyzer over each box of the shard and stores the
// findings by fingerprint (a repeat detection updates, never duplicates). It
// heartbeats after each box and resumes after the last box a previous attempt
// finished. A box whose window holds more samples than samples.max_points
// lets a read return fails the shard with a non-retryable error of type
// ErrTypeTooManyPoints: retrying reads the same window.
func (a *Activities) AnalyzeShard(ctx context.Context, in AnalyzeShardInput) (ShardResult, error) {
	if len(in.Boxes) == 0 {
		return ShardResult{}, nil
	}
	window := in.Window
	if window <= 0 {
		window = a.Settings.Window
	}
	if window <= 0 {
		return ShardResult{}, temporal.NewNonRetryableApplicationError("analyze shard: window must be positive", ErrTypeInvalidInput, nil)
	}
	var res ShardResult
	start := 0
	if activity.HasHeartbeatDetails(ctx) {
		var prev shardProgress
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.Next <= len(in.Boxes) {
			start, res = prev.Next, prev.Result
		}
	}
	// An external analyzer may run for longer than the heartbeat timeout
	// on one box: a ticker heartbeats the progress so far while it does.
	alive := keepAlive(ctx, shardProgress{Next: start, Result: res.snapshot()})
	defer alive.stop()
	for i := start; i < len(in.Boxes); i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		refs, hadData, _, err := a.analyzeBox(ctx, in.Boxes[i], window, in.JudgeSilence)
		if err != nil {
			return res, permanentRead(fmt.Errorf("analyze box %s: %w", in.Boxes[i], err))
		}
		res.Analysed++
		if !hadData {
			res.NoData++
		}
		if in.CountsOnly || in.Dispatch {
			var d DispatchResult
			var derr error
			if in.Dispatch && len(refs) > 0 {
				d, derr = a.DispatchFindings(ctx, DispatchInput{Findings: refs})
			}
			res.count(refs, d, derr)
		}
		if !in.CountsOnly {
			res.Findings = append(res.Findings, refs...)
		}
		// A copy: the ticker's goroutine encodes it while this one counts on.
		p := shardProgress{Next: i + 1, Result: res.snapshot()}
		alive.set(p)
		activity.RecordHeartbeat(ctx, p)
	}
	activity.GetLogger(ctx).Info("shard analysed", "first", in.Boxes[0], "boxes", len(in.Boxes),
		"resumed_at", start, "findings", max(len(res.Findings), res.FindingCount), "remediations", res.Remediations)
	return res, nil
}

// permanentRead returns err as a non-retryable error when no retry can fix
// it: a window of more samples than samples.max_points lets a read return
// (tsdb.ErrTooManyPoints; its message names the key). Other errors are
// returned as they are.
func permanentRead(err error) error {
	if errors.Is(err, tsdb.ErrTooManyPoints) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeTooManyPoints, nil)
	}
	return err
}

// liveness heartbeats the latest progress of an activity on a ticker.
type liveness struct {
	mu   sync.Mutex
	last any
	done chan struct{}
}

// keepAlive heartbeats details every half heartbeat timeout (at most every
// 10 s) until stop, with the details of the latest set. It does nothing for
// an activity without a heartbeat timeout.
func keepAlive(ctx context.Context, details any) *liveness {
	l := &liveness{last: details, done: make(chan struct{})}
	every := min(activity.GetInfo(ctx).HeartbeatTimeout/2, 10*time.Second)
	if every <= 0 {
		close(l.done)
		return l
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				l.mu.Lock()
				d := l.last
				l.mu.Unlock()
				activity.RecordHeartbeat(ctx, d)
			}
		}
	}()
	return l
}

// set replaces the details the ticker heartbeats.
func (l *liveness) set(details any) {
	l.mu.Lock()
	l.last = details
	l.mu.Unlock()
}

// stop ends the ticker; calling it again does nothing.
func (l *liveness) stop() {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
}

// snapshot is a copy of r that shares no map with it.
func (r ShardResult) snapshot() ShardResult {
	r.BySeverity = maps.Clone(r.BySeverity)
	return r
}

type shardProgress struct {
	Next   int         `json:"next"`
	Result ShardResult `json:"result"`
}

// analyzeBox analyses one box and stores its findings. It returns their
// references, whether the box had data, and the external analyzers that
// failed on it (by name): what those would have found is unknown.
func (a *Activities) analyzeBox(ctx context.Context, id string, window time.Duration, judgeSilence bool) ([]FindingRef, bool, map[string]error, error) {
	box := fleet.Box{ID: id}
	if a.Inventory != nil {
		if b, ok := a.Inventory.Box(id); ok {
			box = b
		}
	}
	end := a.now().UTC()
	hadData := true
	latest, err := a.Store.LatestSample(ctx, id)
	switch {
	case err == nil:
		end = latest.Add(time.Nanosecond)
	case errors.Is(err, store.ErrNotFound):
		hadData = false
	default:
		return nil, false, nil, fmt.Errorf("latest sample: %w", err)
	}
	w := analysis.Window{Box: box, Start: end.Add(-window), End: end}
	if hadData && judgeSilence {
		if w.Now, err = a.Store.NewestSample(ctx); err != nil {
			return nil, false, nil, fmt.Errorf("read the fleet's clock: %w", err)
		}
	}
	if hadData {
		if w.Samples, err = a.Store.Window(ctx, id, w.Start, w.End); err != nil {
			return nil, false, nil, fmt.Errorf("read window: %w", err)
		}
		// Rules that need more history of some kinds of component (disks:
		// 30 days) get it, for those components alone.
		_, byKind := a.Engine.History(id)
		for _, kind := range slices.Sorted(maps.Keys(byKind)) {
			if h := byKind[kind]; h > window {
				older, err := a.Store.WindowKind(ctx, id, kind, end.Add(-h), w.Start)
				if err != nil {
					return nil, false, nil, fmt.Errorf("read %s history: %w", kind, err)
				}
				w.Samples = append(w.Samples, older...) // the engine puts them in order
			}
		}
	}
	res, err := a.Engine.Run(ctx, w)
	if err != nil {
		if ctx.Err() != nil {
			return nil, hadData, nil, ctx.Err()
		}
		return nil, hadData, nil, err
	}
	// A failed external analyzer: its error names it; the built-in
	// findings and the other analyzers' still count, and its own findings
	// are left as they are (unknown, not cleared).
	for _, name := range slices.Sorted(maps.Keys(res.Failed)) {
		activity.GetLogger(ctx).Warn("external analyzer failed", "box", id, "analyzer", name, "error", res.Failed[name])
		if a.Metrics != nil {
			a.Metrics.ExternalFailures.WithLabelValues(name).Inc()
		}
	}
	a.recordAnalyzerRuns(ctx, id, res)
	refs := make([]FindingRef, 0, len(res.Findings))
	for _, f := range res.Findings {
		created, err := a.Store.UpsertFinding(ctx, f)
		if err != nil {
			return nil, hadData, nil, fmt.Errorf("store finding %s: %w", f.Fingerprint(), err)
		}
		if a.Metrics != nil && created {
			a.Metrics.Findings.WithLabelValues(f.Rule, string(f.Severity)).Inc()
		}
		refs = append(refs, FindingRef{Fingerprint: f.Fingerprint(), Severity: f.Severity, New: created, DetectedAt: f.DetectedAt})
	}
	return refs, hadData, res.Failed, nil
}

// analyzerRecordEvery is how often at most one worker records the same
// outcome (failure, success) of one external analyzer: a scan of many boxes
// writes it about once a minute, not once per box. New rules are recorded
// at once.
const analyzerRecordEvery = time.Minute

// analyzerLog remembers what this worker last recorded of each external
// analyzer, for analyzerRecordEvery.
type analyzerLog struct {
	mu    sync.Mutex
	ok    map[string]time.Time // analyzer -> last success recorded
	fail  map[string]time.Time // analyzer -> last failure recorded
	rules map[string]bool      // analyzer + "\x00" + rule recorded
}

// due reports whether an outcome of analyzer at now should be recorded, and
// which of rules are new; it notes them as recorded.
func (l *analyzerLog) due(analyzer string, failed bool, now time.Time, rules []string) (bool, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok == nil {
		l.ok, l.fail, l.rules = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
	}
	last := l.ok
	if failed {
		last = l.fail
	}
	var fresh []string
	for _, r := range rules {
		if k := analyzer + "\x00" + r; !l.rules[k] {
			l.rules[k] = true
			fresh = append(fresh, r)
		}
	}
	if t, seen := last[analyzer]; seen && now.Sub(t) < analyzerRecordEvery && len(fresh) == 0 {
		return false, nil
	}
	last[analyzer] = now
	return true, fresh
}

// forget drops what was noted of analyzer, so that a record that failed is
// tried again.
func (l *analyzerLog) forget(analyzer string, rules []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ok, analyzer)
	delete(l.fail, analyzer)
	for _, r := range rules {
		delete(l.rules, analyzer+"\x00"+r)
	}
}

// recordAnalyzerRuns stores each external analyzer's outcome on box (for
// `starter check` and to know which analyzer a rule belongs to). A store
// error is logged: it must not fail the analysis.
func (a *Activities) recordAnalyzerRuns(ctx context.Context, box string, res analysis.Result) {
	now := a.now().UTC()
	record := func(r store.AnalyzerRun, failed bool) {
		due, fresh := a.analyzers.due(r.Analyzer, failed, now, r.Rules)
		if !due {
			return
		}
		r.Rules = fresh
		if err := a.Store.RecordAnalyzerRun(ctx, r); err != nil {
			a.analyzers.forget(r.Analyzer, fresh)
			activity.GetLogger(ctx).Warn("record external analyzer run", "analyzer", r.Analyzer, "error", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(res.Failed)) {
		record(store.AnalyzerRun{Analyzer: name, Box: box, At: now, Err: res.Failed[name].Error()}, true)
	}
	for _, name := range slices.Sorted(maps.Keys(res.Rules)) {
		record(store.AnalyzerRun{Analyzer: name, Box: box, At: now, Rules: res.Rules[name]}, false)
	}
}
