package workflows

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// AnalyzeInput starts AnalyzeBoxes: the boxes of a stored batch (Batch) or
// an explicit, small list of boxes (Boxes).
type AnalyzeInput struct {
	Boxes []string `json:"boxes"`
	// Batch names a stored batch (its id) whose boxes are paged from the
	// store, PageSize at a time; Boxes is then ignored (bounded-payloads on).
	Batch string `json:"batch,omitempty"`
	// PageSize is boxes per page of a batch (0: 500).
	PageSize int `json:"page_size,omitempty"`
	// Window of history to analyse per box, e.g. "48h" (empty: analysis.window).
	Window string `json:"window,omitempty"`
	// ShardSize is boxes per activity (0: analysis.shard_size).
	ShardSize int `json:"shard_size,omitempty"`
	// MaxInFlight bounds concurrent shard activities (0: analysis.max_in_flight).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Remediate is false to store findings without starting remediation; nil or true starts it.
	Remediate *bool `json:"remediate,omitempty"`
	// JudgeSilence also checks the boxes against the fleet's clock
	// (silent_box), as scans do; ingest leaves it off.
	JudgeSilence bool `json:"judge_silence,omitempty"`
	// State is set by continue-as-new only.
	State *AnalyzeState `json:"state,omitempty"`
}

// AnalyzeState is what AnalyzeBoxes carries across continue-as-new: the last
// box handed to a shard and the counts so far.
type AnalyzeState struct {
	After  string        `json:"after,omitempty"`
	Result AnalyzeResult `json:"result"`
	Runs   int           `json:"runs"`
}

// AnalyzeResult summarises an analysis: counts, never the findings themselves
// (they are in the store; `starter findings` shows them).
type AnalyzeResult struct {
	Boxes        int            `json:"boxes"`
	Analysed     int            `json:"analysed"`
	NoData       int            `json:"no_data,omitempty"`
	Findings     int            `json:"findings"`
	NewFindings  int            `json:"new_findings"`
	BySeverity   map[string]int `json:"by_severity,omitempty"`
	FailedShards []string       `json:"failed_shards,omitempty"`
	FailedBoxes  int            `json:"failed_boxes,omitempty"`
	// Remediations counts findings handed to Remediate workflows.
	Remediations   int      `json:"remediations"`
	DispatchErrors []string `json:"dispatch_errors,omitempty"`
	// MoreFailedShards and MoreDispatchErrors count the entries beyond the
	// activities.MaxListed that FailedShards and DispatchErrors keep
	// (bounded-payloads on).
	MoreFailedShards   int `json:"more_failed_shards,omitempty"`
	MoreDispatchErrors int `json:"more_dispatch_errors,omitempty"`
}

// add folds one shard's result in.
func (r *AnalyzeResult) add(sr activities.ShardResult) {
	r.Analysed += sr.Analysed
	r.NoData += sr.NoData
	for _, f := range sr.Findings {
		r.Findings++
		if f.New {
			r.NewFindings++
		}
		if r.BySeverity == nil {
			r.BySeverity = map[string]int{}
		}
		r.BySeverity[string(f.Severity)]++
	}
}

// addCounts folds in the counts of a shard that ran with CountsOnly and
// Dispatch (bounded-payloads on).
func (r *AnalyzeResult) addCounts(shard []string, sr activities.ShardResult) {
	r.Analysed += sr.Analysed
	r.NoData += sr.NoData
	r.Findings += sr.FindingCount
	r.NewFindings += sr.NewFindings
	for sev, n := range sr.BySeverity { // sums: the order does not matter
		if r.BySeverity == nil {
			r.BySeverity = map[string]int{}
		}
		r.BySeverity[sev] += n
	}
	r.Remediations += sr.Remediations
	if sr.DispatchErrors > 0 {
		msg := fmt.Sprintf("%s..%s: %d hand-offs failed, first: %s", shard[0], shard[len(shard)-1], sr.DispatchErrors, sr.FirstDispatchError)
		if len(r.DispatchErrors) < activities.MaxListed {
			r.DispatchErrors = append(r.DispatchErrors, msg)
		} else {
			r.MoreDispatchErrors++
		}
	}
}

// failShard records a shard that failed, listing at most
// activities.MaxListed of them (bounded-payloads on).
func (r *AnalyzeResult) failShard(shard []string, err error) {
	r.FailedBoxes += len(shard)
	if len(r.FailedShards) < activities.MaxListed {
		r.FailedShards = append(r.FailedShards, shardFailure(shard, err))
	} else {
		r.MoreFailedShards++
	}
}

// AnalyzeBoxes runs every analyzer over the given boxes, a shard of boxes per
// activity on the analysis task queue, with at most MaxInFlight shards running.
// A shard that keeps failing is reported in FailedShards; it does not fail the
// whole analysis.
//
// From version bounded-payloads on, the boxes of a batch are paged from the
// store, shards return counts and hand their findings to remediation
// themselves, the lists of failures are bounded, a shard has a deadline, and
// the workflow continues as new before its history grows large.
func AnalyzeBoxes(ctx workflow.Context, in AnalyzeInput) (AnalyzeResult, error) {
	var out AnalyzeResult
	s, err := loadSettings(ctx)
	if err != nil {
		return out, err
	}
	window, err := parseDuration("window", in.Window, s.Window)
	if err != nil {
		return out, err
	}
	size, inFlight := s.ShardSize, s.MaxInFlight
	if in.ShardSize > 0 {
		size = in.ShardSize
	}
	if in.MaxInFlight > 0 {
		inFlight = in.MaxInFlight
	}
	if workflow.GetVersion(ctx, changeBoundedPayloads, workflow.DefaultVersion, 1) >= 1 {
		return analyzeBounded(ctx, in, s, window, size, inFlight)
	}
	boxes := append([]string(nil), in.Boxes...)
	sort.Strings(boxes)
	out.Boxes = len(boxes)

	remediate := in.Remediate == nil || *in.Remediate
	r := newShardRunner(ctx, s, window, in.JudgeSilence, inFlight, remediate, false, func(shard []string, sr activities.ShardResult, err error) {
		if err != nil {
			out.FailedShards = append(out.FailedShards, shardFailure(shard, err))
			out.FailedBoxes += len(shard)
			return
		}
		out.add(sr)
	})
	for i := 0; i < len(boxes); i += size {
		r.submit(boxes[i:min(i+size, len(boxes))])
	}
	r.drain()
	out.Remediations, out.DispatchErrors = r.remediations, r.dispatchErrors
	sort.Strings(out.FailedShards)
	return out, nil
}

// analyzeBounded is AnalyzeBoxes from version bounded-payloads on.
func analyzeBounded(ctx workflow.Context, in AnalyzeInput, s activities.Settings, window time.Duration, size, inFlight int) (AnalyzeResult, error) {
	var st AnalyzeState
	if in.State != nil {
		st = *in.State
	}
	st.Runs++
	pageSize := in.PageSize
	if pageSize <= 0 {
		pageSize = 500
	}
	remediate := in.Remediate == nil || *in.Remediate
	r := newShardRunner(ctx, s, window, in.JudgeSilence, inFlight, remediate, true, func(shard []string, sr activities.ShardResult, err error) {
		if err != nil {
			st.Result.failShard(shard, err)
			return
		}
		st.Result.addCounts(shard, sr)
	})
	// An explicit list is paged in memory, a batch's boxes from the store.
	var boxes []string
	if in.Batch == "" {
		boxes = slices.Compact(slices.Sorted(slices.Values(in.Boxes)))
	}
	mctx := workflow.WithActivityOptions(ctx, storeActivityOptions(s, true))
	for {
		var page []string
		if in.Batch != "" {
			q := activities.ListBoxesInput{Batch: in.Batch, After: st.After, Limit: pageSize}
			if err := workflow.ExecuteActivity(mctx, a.ListBoxes, q).Get(ctx, &page); err != nil {
				r.drain()
				return st.Result, fmt.Errorf("list boxes of batch %s after %q: %w", in.Batch, st.After, err)
			}
		} else {
			i, _ := slices.BinarySearch(boxes, st.After)
			if i < len(boxes) && boxes[i] == st.After {
				i++
			}
			page = boxes[i:min(i+pageSize, len(boxes))]
		}
		for i := 0; i < len(page); i += size {
			if continueAsNewDue(ctx, analyzeHistoryLimit) {
				r.drain()
				next := in
				next.State = &st
				return AnalyzeResult{}, workflow.NewContinueAsNewError(ctx, AnalyzeBoxes, next)
			}
			shard := page[i:min(i+size, len(page))]
			r.submit(shard)
			st.After = shard[len(shard)-1]
			st.Result.Boxes += len(shard)
		}
		if len(page) < pageSize {
			break
		}
	}
	r.drain()
	sort.Strings(st.Result.FailedShards)
	return st.Result, nil
}

// continueAsNewDue reports whether a run should drain and continue as new:
// the server suggests it, or its history passed events events or
// historySizeLimit bytes.
func continueAsNewDue(ctx workflow.Context, events int) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > events ||
		info.GetCurrentHistorySize() > historySizeLimit
}

// storeActivityOptions are the options of the short store activities
// (ListBoxes, CountBoxes, SaveScanReport). From bounded-payloads on they
// also have a deadline, so that a scan whose main queue no worker serves
// ends instead of waiting forever.
func storeActivityOptions(s activities.Settings, bounded bool) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		TaskQueue:           s.MainQueue,
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
	}
	if bounded {
		o.ScheduleToCloseTimeout = storeActivityDeadline
	}
	return o
}

// shardFailure describes a failed shard by its first and last box.
func shardFailure(shard []string, err error) string {
	return fmt.Sprintf("%s..%s (%d boxes): %v", shard[0], shard[len(shard)-1], len(shard), err)
}

// shardRunner keeps at most max AnalyzeShard activities in flight: a new shard
// starts as soon as one finishes (sliding window). With remediate set, the
// findings of each finished shard are handed to their Remediate workflows.
type shardRunner struct {
	ctx       workflow.Context
	dctx      workflow.Context
	sel       workflow.Selector
	window    time.Duration
	silence   bool // judge boxes against the fleet's clock (scans)
	max       int
	inFlight  int
	remediate bool
	bounded   bool // bounded-payloads: counts-only shards that dispatch their findings
	done      func(shard []string, sr activities.ShardResult, err error)

	dispatches     []workflow.Future
	remediations   int
	dispatchErrors []string
}

func newShardRunner(ctx workflow.Context, s activities.Settings, window time.Duration, silence bool, max int, remediate, bounded bool,
	done func([]string, activities.ShardResult, error)) *shardRunner {
	dctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           s.MainQueue,
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
	})
	ao := workflow.ActivityOptions{
		TaskQueue:           s.AnalysisQueue,
		StartToCloseTimeout: 15 * time.Minute,
		// AnalyzeShard heartbeats after every box (well under a second each), so
		// a dead worker's shard moves to another worker after this.
		HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput},
		},
	}
	if bounded {
		// A shard that no worker takes (none polls the analysis queue, or
		// queues.analysis names the wrong one) fails at its deadline
		// instead of holding the analysis forever.
		ao.ScheduleToCloseTimeout = s.ShardDeadline
		if ao.ScheduleToCloseTimeout <= 0 {
			ao.ScheduleToCloseTimeout = defaultShardDeadline
		}
	}
	actx := workflow.WithActivityOptions(ctx, ao)
	return &shardRunner{ctx: actx, dctx: dctx, sel: workflow.NewSelector(ctx), window: window, silence: silence, max: max,
		remediate: remediate, bounded: bounded, done: done}
}

// submit starts a shard, first waiting for a slot when max are in flight.
func (r *shardRunner) submit(shard []string) {
	for r.inFlight >= r.max {
		r.sel.Select(r.ctx)
		r.inFlight--
	}
	in := activities.AnalyzeShardInput{Boxes: shard, Window: r.window, JudgeSilence: r.silence}
	actx := r.ctx
	if r.bounded {
		in.CountsOnly, in.Dispatch = true, r.remediate
		// The UI's label of the activity: which boxes it analyses.
		opts := workflow.GetActivityOptions(r.ctx)
		opts.Summary = fmt.Sprintf("analyse %d boxes %s..%s", len(shard), shard[0], shard[len(shard)-1])
		actx = workflow.WithActivityOptions(r.ctx, opts)
	}
	f := workflow.ExecuteActivity(actx, a.AnalyzeShard, in)
	r.inFlight++
	r.sel.AddFuture(f, func(f workflow.Future) {
		var sr activities.ShardResult
		err := f.Get(r.ctx, &sr)
		r.done(shard, sr, err)
		if err == nil && !r.bounded && r.remediate && len(sr.Findings) > 0 {
			r.dispatches = append(r.dispatches, workflow.ExecuteActivity(r.dctx, a.DispatchFindings, activities.DispatchInput{Findings: sr.Findings}))
		}
	})
}

// drain waits for every shard in flight and every remediation hand-off.
func (r *shardRunner) drain() {
	for r.inFlight > 0 {
		r.sel.Select(r.ctx)
		r.inFlight--
	}
	for _, f := range r.dispatches {
		var dr activities.DispatchResult
		if err := f.Get(r.ctx, &dr); err != nil {
			r.dispatchErrors = append(r.dispatchErrors, ErrorMessage(err))
			continue
		}
		r.remediations += dr.Signalled
	}
	r.dispatches = nil
}
