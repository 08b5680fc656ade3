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
	// Batches is how long batch objects are kept in the batch store
	// (retention.batches), as a duration; empty keeps them all.
	Batches string `json:"batches,omitempty"`
	// Quarantine is how long quarantined batch objects are kept
	// (retention.quarantine), as a duration; empty keeps them all.
	Quarantine string `json:"quarantine,omitempty"`
	// PageSize is the samples deleted per transaction (0: 10000).
	PageSize int `json:"page_size,omitempty"`
	// Before is the cutoff a continued run carries over; empty on the
	// first run, which computes it as its start time minus Samples.
	Before time.Time `json:"before,omitzero"`
	// Deleted is what earlier runs of a continued retention deleted.
	Deleted int64 `json:"deleted,omitempty"`
	// BatchesBefore and QuarantineBefore are the object cutoffs a
	// continued run carries over, SamplesDone whether the samples were
	// done, and Freed what earlier runs freed in the batch store.
	BatchesBefore    time.Time               `json:"batches_before,omitzero"`
	QuarantineBefore time.Time               `json:"quarantine_before,omitzero"`
	SamplesDone      bool                    `json:"samples_done,omitempty"`
	Freed            activities.ObjectsFreed `json:"freed,omitzero"`
}

// RetentionResult is what a retention run freed.
type RetentionResult struct {
	Before         time.Time `json:"before"` // samples older than this were deleted
	SamplesDeleted int64     `json:"samples_deleted"`
	Calls          int       `json:"calls"` // ApplyRetention calls of the last run
	// BatchesBefore and QuarantineBefore are the cutoffs of the batch
	// store's objects (zero: none deleted); the counts and bytes are what
	// was deleted there.
	BatchesBefore    time.Time `json:"batches_before,omitzero"`
	QuarantineBefore time.Time `json:"quarantine_before,omitzero"`
	activities.ObjectsFreed
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
// run's start), then the batch store's objects older than in.Batches
// (batches/) and in.Quarantine (quarantine/), by calling ApplyRetention
// until nothing older is left, and returns what it freed. Each call deletes
// in pages and heartbeats; a retried call deletes what is still there, so
// the run is idempotent. Batch records are kept: they are small, and they
// say that a batch was stored after its object is gone.
//
// An input without Batches and Quarantine (schedules made before they
// existed) gives exactly the calls it always did: histories replay.
func Retention(ctx workflow.Context, in RetentionInput) (RetentionResult, error) {
	keep, err := parseDuration("samples", in.Samples, 0)
	if err != nil {
		return RetentionResult{}, err
	}
	if keep == 0 {
		return RetentionResult{}, temporal.NewNonRetryableApplicationError(
			"input samples is empty: want how long samples are kept, such as 720h", activities.ErrTypeInvalidInput, nil)
	}
	keepBatches, err := parseDuration("batches", in.Batches, 0)
	if err != nil {
		return RetentionResult{}, err
	}
	keepQuarantine, err := parseDuration("quarantine", in.Quarantine, 0)
	if err != nil {
		return RetentionResult{}, err
	}
	pageSize := in.PageSize
	if pageSize <= 0 {
		pageSize = defaultRetentionPageSize
	}
	res := RetentionResult{Before: in.Before, SamplesDeleted: in.Deleted,
		BatchesBefore: in.BatchesBefore, QuarantineBefore: in.QuarantineBefore, ObjectsFreed: in.Freed}
	now := workflow.Now(ctx)
	if res.Before.IsZero() {
		res.Before = now.Add(-keep).UTC()
	}
	if res.BatchesBefore.IsZero() && keepBatches > 0 {
		res.BatchesBefore = now.Add(-keepBatches).UTC()
	}
	if res.QuarantineBefore.IsZero() && keepQuarantine > 0 {
		res.QuarantineBefore = now.Add(-keepQuarantine).UTC()
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Minute,
		ScheduleToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 5 * time.Minute},
	})
	samplesDone := in.SamplesDone
	for calls := 0; ; calls++ {
		if calls == retentionCallsPerRun {
			next := in
			next.PageSize, next.Before, next.Deleted = pageSize, res.Before, res.SamplesDeleted
			next.BatchesBefore, next.QuarantineBefore = res.BatchesBefore, res.QuarantineBefore
			next.SamplesDone, next.Freed = samplesDone, res.ObjectsFreed
			return res, workflow.NewContinueAsNewError(ctx, Retention, next)
		}
		var r activities.ApplyRetentionResult
		if err := workflow.ExecuteActivity(ctx, a.ApplyRetention, activities.ApplyRetentionInput{
			Before: res.Before, PageSize: pageSize, MaxPages: retentionPagesPerCall, SkipSamples: samplesDone,
			BatchesBefore: res.BatchesBefore, QuarantineBefore: res.QuarantineBefore,
		}).Get(ctx, &r); err != nil {
			return res, fmt.Errorf("apply retention before %s: %w", res.Before.Format(time.RFC3339), err)
		}
		res.Calls++
		res.SamplesDeleted += r.SamplesDeleted
		res.ObjectsFreed.Add(r.ObjectsFreed)
		samplesDone = samplesDone || r.SamplesDone
		if r.Done {
			return res, nil
		}
	}
}
