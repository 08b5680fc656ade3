package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// RetentionScheduleID is the id of the Temporal Schedule that runs
// Retention every retention.every (`starter retention`).
const RetentionScheduleID = "sanwatch-retention"

// RetentionWorkflowID returns the workflow id of a retention run that
// `starter retention --now` starts; the schedule's runs get the schedule id
// with the scheduled time appended.
func RetentionWorkflowID(at time.Time) string {
	return "retention-" + at.UTC().Format("20060102T150405Z")
}

// RetentionInput is the input of Retention.
type RetentionInput struct {
	// Samples is how long samples are kept (retention.samples), as a
	// duration such as 720h.
	Samples string `json:"samples"`
	// PageSize is the samples deleted per transaction (0: 10000).
	PageSize int `json:"page_size,omitempty"`
	// Before is the cutoff a continued run carries over; empty on the
	// first run, which computes it as its start time minus Samples.
	Before time.Time `json:"before,omitzero"`
	// Deleted is what earlier runs of a continued retention deleted.
	Deleted int64 `json:"deleted,omitempty"`
}

// RetentionResult is what a retention run freed.
type RetentionResult struct {
	Before         time.Time `json:"before"` // samples older than this were deleted
	SamplesDeleted int64     `json:"samples_deleted"`
	Calls          int       `json:"calls"` // ApplyRetention calls of the last run
}

// Limits of Retention.
const (
	defaultRetentionPageSize = 10000
	// retentionPagesPerCall is how many pages one ApplyRetention call
	// deletes before it returns to the workflow (bounded activity time).
	retentionPagesPerCall = 100
	// retentionCallsPerRun is how many ApplyRetention calls one run makes
	// before it continues as new (bounded history).
	retentionCallsPerRun = 500
)

// Retention deletes the samples older than in.Samples (measured from the
// run's start) by calling ApplyRetention until nothing older is left, then
// returns what it freed. Each call deletes in pages and heartbeats; a
// retried call deletes what is still there, so the run is idempotent. Batch
// records, batch files and quarantined files are not touched: sanwatch
// reads batches in place and keeps no copies of its own.
func Retention(ctx workflow.Context, in RetentionInput) (RetentionResult, error) {
	keep, err := parseDuration("samples", in.Samples, 0)
	if err != nil {
		return RetentionResult{}, err
	}
	if keep == 0 {
		return RetentionResult{}, temporal.NewNonRetryableApplicationError(
			"input samples is empty: want how long samples are kept, such as 720h", activities.ErrTypeInvalidInput, nil)
	}
	pageSize := in.PageSize
	if pageSize <= 0 {
		pageSize = defaultRetentionPageSize
	}
	res := RetentionResult{Before: in.Before, SamplesDeleted: in.Deleted}
	if res.Before.IsZero() {
		res.Before = workflow.Now(ctx).Add(-keep).UTC()
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Minute,
		ScheduleToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 5 * time.Minute},
	})
	for calls := 0; ; calls++ {
		if calls == retentionCallsPerRun {
			return res, workflow.NewContinueAsNewError(ctx, Retention, RetentionInput{
				Samples: in.Samples, PageSize: pageSize, Before: res.Before, Deleted: res.SamplesDeleted,
			})
		}
		var r activities.ApplyRetentionResult
		if err := workflow.ExecuteActivity(ctx, a.ApplyRetention, activities.ApplyRetentionInput{
			Before: res.Before, PageSize: pageSize, MaxPages: retentionPagesPerCall,
		}).Get(ctx, &r); err != nil {
			return res, fmt.Errorf("apply retention before %s: %w", res.Before.Format(time.RFC3339), err)
		}
		res.Calls++
		res.SamplesDeleted += r.SamplesDeleted
		if r.Done {
			return res, nil
		}
	}
}
