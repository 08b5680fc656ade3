package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
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
}

// FindingRef is the small summary of one finding that travels back to the workflow.
type FindingRef struct {
	Fingerprint string           `json:"fingerprint"`
	Severity    finding.Severity `json:"severity"`
	New         bool             `json:"new,omitempty"`
	DetectedAt  time.Time        `json:"detected_at"`
}

// ShardResult is what AnalyzeShard reports.
type ShardResult struct {
	Analysed int          `json:"analysed"`
	NoData   int          `json:"no_data,omitempty"`
	Findings []FindingRef `json:"findings,omitempty"`
}

// AnalyzeShard runs every analyzer over each box of the shard and stores the
// findings by fingerprint (a repeat detection updates, never duplicates). It
// heartbeats after each box and resumes after the last box a previous attempt
// finished.
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
	for i := start; i < len(in.Boxes); i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		refs, hadData, err := a.analyzeBox(ctx, in.Boxes[i], window, in.JudgeSilence)
		if err != nil {
			return res, fmt.Errorf("analyze box %s: %w", in.Boxes[i], err)
		}
		res.Analysed++
		if !hadData {
			res.NoData++
		}
		res.Findings = append(res.Findings, refs...)
		activity.RecordHeartbeat(ctx, shardProgress{Next: i + 1, Result: res})
	}
	activity.GetLogger(ctx).Info("shard analysed", "first", in.Boxes[0], "boxes", len(in.Boxes),
		"resumed_at", start, "findings", len(res.Findings))
	return res, nil
}

type shardProgress struct {
	Next   int         `json:"next"`
	Result ShardResult `json:"result"`
}

func (a *Activities) analyzeBox(ctx context.Context, id string, window time.Duration, judgeSilence bool) ([]FindingRef, bool, error) {
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
		return nil, false, fmt.Errorf("latest sample: %w", err)
	}
	w := analysis.Window{Box: box, Start: end.Add(-window), End: end}
	if hadData && judgeSilence {
		if w.Now, err = a.Store.NewestSample(ctx); err != nil {
			return nil, false, fmt.Errorf("read the fleet's clock: %w", err)
		}
	}
	if hadData {
		if w.Samples, err = a.Store.Window(ctx, id, w.Start, w.End); err != nil {
			return nil, false, fmt.Errorf("read window: %w", err)
		}
		// Rules that need more history of some kinds of component (disks:
		// 30 days) get it, for those components alone.
		_, byKind := a.Engine.History(id)
		for _, kind := range slices.Sorted(maps.Keys(byKind)) {
			if h := byKind[kind]; h > window {
				older, err := a.Store.WindowKind(ctx, id, kind, end.Add(-h), w.Start)
				if err != nil {
					return nil, false, fmt.Errorf("read %s history: %w", kind, err)
				}
				w.Samples = append(w.Samples, older...) // the engine puts them in order
			}
		}
	}
	found, err := a.Engine.Analyze(ctx, w)
	if err != nil {
		if ctx.Err() != nil {
			return nil, hadData, ctx.Err()
		}
		// An external analyzer failed: its error names it; the built-in
		// findings and the other analyzers' still count.
		activity.GetLogger(ctx).Warn("external analyzer failed", "box", id, "error", err)
		if a.Metrics != nil {
			a.Metrics.ExternalFailures.WithLabelValues("any").Inc()
		}
	}
	refs := make([]FindingRef, 0, len(found))
	for _, f := range found {
		created, err := a.Store.UpsertFinding(ctx, f)
		if err != nil {
			return nil, hadData, fmt.Errorf("store finding %s: %w", f.Fingerprint(), err)
		}
		if a.Metrics != nil && created {
			a.Metrics.Findings.WithLabelValues(f.Rule, string(f.Severity)).Inc()
		}
		refs = append(refs, FindingRef{Fingerprint: f.Fingerprint(), Severity: f.Severity, New: created, DetectedAt: f.DetectedAt})
	}
	return refs, hadData, nil
}
