package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/store"
)

// QueryProgress is the name of FleetScan's progress query.
const QueryProgress = "progress"

// scanHistoryLimit is the history length at which FleetScan continues as new;
// one page more stays far below Temporal's and our 10,000-event budget.
const scanHistoryLimit = 4000

// changeJudgeSilence is the GetVersion change id of scans judging silent boxes.
const changeJudgeSilence = "judge-silence"

// FleetScanInput starts FleetScan. Everything is optional: the zero value scans
// every box with the configured window, shard size and concurrency.
type FleetScanInput struct {
	Selector    activities.Selector `json:"selector,omitempty"`
	Window      string              `json:"window,omitempty"`
	PageSize    int                 `json:"page_size,omitempty"`
	ShardSize   int                 `json:"shard_size,omitempty"`
	MaxInFlight int                 `json:"max_in_flight,omitempty"`
	Remediate   *bool               `json:"remediate,omitempty"`
	// State is set by continue-as-new only.
	State *ScanState `json:"state,omitempty"`
}

// ScanState is what a scan carries across continue-as-new.
type ScanState struct {
	ScanID    string        `json:"scan_id"`
	StartedAt time.Time     `json:"started_at"`
	After     string        `json:"after,omitempty"`
	Total     int           `json:"total"`
	Result    AnalyzeResult `json:"result"`
	Runs      int           `json:"runs"`
}

// ScanProgress answers the progress query.
type ScanProgress struct {
	ScanID       string `json:"scan_id"`
	Selector     string `json:"selector"`
	Total        int    `json:"total"`
	Done         int    `json:"done"`
	InFlight     int    `json:"in_flight"`
	Findings     int    `json:"findings"`
	FailedShards int    `json:"failed_shards"`
	Runs         int    `json:"runs"`
}

// FleetScan analyses every box matching the selector: it lists boxes page by
// page from the store, keeps at most MaxInFlight shard activities running,
// hands findings to remediation, continues as new before its history grows
// large, answers the progress query and ends by storing a scan report. A shard
// that keeps failing is listed in the report; it does not fail the scan.
func FleetScan(ctx workflow.Context, in FleetScanInput) (store.ScanReport, error) {
	s, err := loadSettings(ctx)
	if err != nil {
		return store.ScanReport{}, err
	}
	window, err := parseDuration("window", in.Window, s.Window)
	if err != nil {
		return store.ScanReport{}, err
	}
	pageSize, size, inFlight := in.PageSize, s.ShardSize, s.MaxInFlight
	if pageSize <= 0 {
		pageSize = 500
	}
	if in.ShardSize > 0 {
		size = in.ShardSize
	}
	if in.MaxInFlight > 0 {
		inFlight = in.MaxInFlight
	}
	if workflow.GetVersion(ctx, changeBoundedPayloads, workflow.DefaultVersion, 1) >= 1 {
		return scanBounded(ctx, in, s, window, pageSize, size, inFlight)
	}
	mctx := workflow.WithActivityOptions(ctx, storeActivityOptions(s, false))

	var st ScanState
	if in.State != nil {
		st = *in.State
	} else {
		st = ScanState{ScanID: workflow.GetInfo(ctx).WorkflowExecution.ID, StartedAt: workflow.Now(ctx)}
		if err := workflow.ExecuteActivity(mctx, a.CountBoxes, in.Selector).Get(ctx, &st.Total); err != nil {
			return store.ScanReport{}, fmt.Errorf("count boxes: %w", err)
		}
	}
	st.Runs++
	remediate := in.Remediate == nil || *in.Remediate
	// Scans judge silent boxes against the fleet's clock from this version
	// on; runs that started before it keep their old shard inputs.
	silence := workflow.GetVersion(ctx, changeJudgeSilence, workflow.DefaultVersion, 1) >= 1
	r := newShardRunner(ctx, s, window, silence, inFlight, remediate, false, func(shard []string, sr activities.ShardResult, err error) {
		if err != nil {
			st.Result.FailedShards = append(st.Result.FailedShards, shardFailure(shard, err))
			st.Result.FailedBoxes += len(shard)
			return
		}
		st.Result.add(sr)
	})
	err = workflow.SetQueryHandler(ctx, QueryProgress, func() (ScanProgress, error) {
		return ScanProgress{
			ScanID: st.ScanID, Selector: in.Selector.String(), Total: st.Total,
			Done: st.Result.Analysed + st.Result.FailedBoxes, InFlight: r.inFlight,
			Findings: st.Result.Findings, FailedShards: len(st.Result.FailedShards), Runs: st.Runs,
		}, nil
	})
	if err != nil {
		return store.ScanReport{}, fmt.Errorf("set query handler: %w", err)
	}

	for {
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > scanHistoryLimit {
			r.drain()
			st.Result.Remediations += r.remediations
			st.Result.DispatchErrors = append(st.Result.DispatchErrors, r.dispatchErrors...)
			next := in
			next.State = &st
			return store.ScanReport{}, workflow.NewContinueAsNewError(ctx, FleetScan, next)
		}
		var page []string
		q := activities.ListBoxesInput{Selector: in.Selector, After: st.After, Limit: pageSize}
		if err := workflow.ExecuteActivity(mctx, a.ListBoxes, q).Get(ctx, &page); err != nil {
			return store.ScanReport{}, fmt.Errorf("list boxes after %q: %w", st.After, err)
		}
		for i := 0; i < len(page); i += size {
			r.submit(page[i:min(i+size, len(page))])
		}
		if len(page) > 0 {
			st.After = page[len(page)-1]
		}
		if len(page) < pageSize {
			break
		}
	}
	r.drain()
	st.Result.Remediations += r.remediations
	st.Result.DispatchErrors = append(st.Result.DispatchErrors, r.dispatchErrors...)
	sort.Strings(st.Result.FailedShards)
	report := store.ScanReport{
		ID: st.ScanID, Selector: in.Selector.String(), StartedAt: st.StartedAt, FinishedAt: workflow.Now(ctx),
		Boxes: st.Total, Analysed: st.Result.Analysed, Findings: st.Result.Findings,
		BySeverity: st.Result.BySeverity, FailedShards: st.Result.FailedShards, Runs: st.Runs,
		Remediations: st.Result.Remediations, DispatchErrors: st.Result.DispatchErrors,
	}
	if err := workflow.ExecuteActivity(mctx, a.SaveScanReport, report).Get(ctx, nil); err != nil {
		return report, fmt.Errorf("save scan report: %w", err)
	}
	return report, nil
}

// scanBounded is FleetScan from version bounded-payloads on: shards return
// counts and hand their findings to remediation themselves, a shard past
// analysis.shard_deadline is a failed shard, the store activities have a
// deadline, the report lists a bounded number of failures, and the run
// drains and continues as new when the server suggests it or its history
// passes scanHistoryLimit events or historySizeLimit bytes, carrying the
// last box handed to a shard.
func scanBounded(ctx workflow.Context, in FleetScanInput, s activities.Settings, window time.Duration, pageSize, size, inFlight int) (store.ScanReport, error) {
	mctx := workflow.WithActivityOptions(ctx, storeActivityOptions(s, true))
	var st ScanState
	if in.State != nil {
		st = *in.State
	} else {
		st = ScanState{ScanID: workflow.GetInfo(ctx).WorkflowExecution.ID, StartedAt: workflow.Now(ctx)}
		if err := workflow.ExecuteActivity(mctx, a.CountBoxes, in.Selector).Get(ctx, &st.Total); err != nil {
			return store.ScanReport{}, fmt.Errorf("count boxes: %w", err)
		}
	}
	st.Runs++
	remediate := in.Remediate == nil || *in.Remediate
	silence := workflow.GetVersion(ctx, changeJudgeSilence, workflow.DefaultVersion, 1) >= 1
	r := newShardRunner(ctx, s, window, silence, inFlight, remediate, true, func(shard []string, sr activities.ShardResult, err error) {
		if err != nil {
			st.Result.failShard(shard, err)
			return
		}
		st.Result.addCounts(shard, sr)
	})
	err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ScanProgress, error) {
		return ScanProgress{
			ScanID: st.ScanID, Selector: in.Selector.String(), Total: st.Total,
			Done: st.Result.Analysed + st.Result.FailedBoxes, InFlight: r.inFlight,
			Findings: st.Result.Findings, FailedShards: len(st.Result.FailedShards) + st.Result.MoreFailedShards, Runs: st.Runs,
		}, nil
	})
	if err != nil {
		return store.ScanReport{}, fmt.Errorf("set query handler: %w", err)
	}

	for {
		var page []string
		q := activities.ListBoxesInput{Selector: in.Selector, After: st.After, Limit: pageSize}
		if err := workflow.ExecuteActivity(mctx, a.ListBoxes, q).Get(ctx, &page); err != nil {
			r.drain()
			return store.ScanReport{}, fmt.Errorf("list boxes after %q: %w", st.After, err)
		}
		for i := 0; i < len(page); i += size {
			if continueAsNewDue(ctx, scanHistoryLimit) {
				r.drain()
				next := in
				next.State = &st
				return store.ScanReport{}, workflow.NewContinueAsNewError(ctx, FleetScan, next)
			}
			shard := page[i:min(i+size, len(page))]
			r.submit(shard)
			st.After = shard[len(shard)-1]
		}
		if len(page) < pageSize {
			break
		}
	}
	r.drain()
	sort.Strings(st.Result.FailedShards)
	res := st.Result
	report := store.ScanReport{
		ID: st.ScanID, Selector: in.Selector.String(), StartedAt: st.StartedAt, FinishedAt: workflow.Now(ctx),
		Boxes: st.Total, Analysed: res.Analysed, Findings: res.Findings,
		BySeverity: res.BySeverity, FailedShards: res.FailedShards, Runs: st.Runs,
		Remediations: res.Remediations, DispatchErrors: res.DispatchErrors,
		MoreFailedShards: res.MoreFailedShards, MoreDispatchErrors: res.MoreDispatchErrors,
	}
	if err := workflow.ExecuteActivity(mctx, a.SaveScanReport, report).Get(ctx, nil); err != nil {
		return report, fmt.Errorf("save scan report: %w", err)
	}
	return report, nil
}
