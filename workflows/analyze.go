package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// AnalyzeInput starts AnalyzeBoxes.
type AnalyzeInput struct {
	Boxes []string `json:"boxes"`
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

// AnalyzeBoxes runs every analyzer over the given boxes, a shard of boxes per
// activity on the analysis task queue, with at most MaxInFlight shards running.
// A shard that keeps failing is reported in FailedShards; it does not fail the
// whole analysis.
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
	boxes := append([]string(nil), in.Boxes...)
	sort.Strings(boxes)
	out.Boxes = len(boxes)

	remediate := in.Remediate == nil || *in.Remediate
	r := newShardRunner(ctx, s, window, in.JudgeSilence, inFlight, remediate, func(shard []string, sr activities.ShardResult, err error) {
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
	done      func(shard []string, sr activities.ShardResult, err error)

	dispatches     []workflow.Future
	remediations   int
	dispatchErrors []string
}

func newShardRunner(ctx workflow.Context, s activities.Settings, window time.Duration, silence bool, max int, remediate bool,
	done func([]string, activities.ShardResult, error)) *shardRunner {
	dctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           s.MainQueue,
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
	})
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
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
	})
	return &shardRunner{ctx: actx, dctx: dctx, sel: workflow.NewSelector(ctx), window: window, silence: silence, max: max, remediate: remediate, done: done}
}

// submit starts a shard, first waiting for a slot when max are in flight.
func (r *shardRunner) submit(shard []string) {
	for r.inFlight >= r.max {
		r.sel.Select(r.ctx)
		r.inFlight--
	}
	f := workflow.ExecuteActivity(r.ctx, a.AnalyzeShard, activities.AnalyzeShardInput{Boxes: shard, Window: r.window, JudgeSilence: r.silence})
	r.inFlight++
	r.sel.AddFuture(f, func(f workflow.Future) {
		var sr activities.ShardResult
		err := f.Get(r.ctx, &sr)
		r.done(shard, sr, err)
		if err == nil && r.remediate && len(sr.Findings) > 0 {
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
