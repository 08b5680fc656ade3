package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// IngestInput starts IngestTelemetry. It names the batch (claim check) by
// its object key in the batch store (Blob), or by a path readable by the
// workers, inside ingest.roots (Path): exactly one of them.
type IngestInput struct {
	// Path is a batch file on the workers' hosts, inside ingest.roots: the
	// claim check for batches started by hand (temporal workflow start).
	Path string `json:"path,omitempty"`
	// Blob is the batch's object key in the batch store (batches.url, e.g.
	// "batches/<sha256>"), set instead of Path: the claim check that
	// workers on any host can read. The receiver and `starter ingest` set it.
	Blob string `json:"blob,omitempty"`
	// BatchID is the file's content hash (hex sha256, or a prefix of it). When
	// set, a file whose content no longer matches is refused.
	BatchID string `json:"batch_id,omitempty"`
	// Analyze is false to store without analysing; nil or true analyses.
	Analyze *bool `json:"analyze,omitempty"`
}

// IngestResult is what IngestTelemetry returns.
type IngestResult struct {
	Batch    activities.BatchSummary `json:"batch"`
	Analysis *AnalyzeResult          `json:"analysis,omitempty"`
}

// IngestTelemetry stores one telemetry batch, then analyses the boxes it touched
// in an AnalyzeBoxes child workflow. A malformed or mostly bad batch ends the
// workflow with a non-retryable error that names the problem.
func IngestTelemetry(ctx workflow.Context, in IngestInput) (IngestResult, error) {
	var out IngestResult
	// Accepting Blob as well as Path adds no command: histories of either
	// kind replay unchanged.
	if in.Path == "" && in.Blob == "" {
		return out, temporal.NewNonRetryableApplicationError("input path and blob are empty: set blob (an object key in batches.url) or path", activities.ErrTypeInvalidInput, nil)
	}
	batch := in.Path
	if in.Blob != "" {
		batch = in.Blob
	}
	s, err := loadSettings(ctx)
	if err != nil {
		return out, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           s.MainQueue,
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    10,
			NonRetryableErrorTypes: []string{
				activities.ErrTypeInvalidTelemetry, activities.ErrTypeQuarantined,
				activities.ErrTypePathNotAllowed, activities.ErrTypeBatchChanged, activities.ErrTypeInvalidInput,
			},
		},
	})
	// From bounded-payloads on, the batch's boxes stay in the store: the
	// summary counts them and the analysis pages them by batch id.
	bounded := workflow.GetVersion(ctx, changeBoundedPayloads, workflow.DefaultVersion, 1) >= 1
	err = workflow.ExecuteActivity(actx, a.StoreBatch, activities.StoreBatchInput{Path: in.Path, Blob: in.Blob, BatchID: in.BatchID, BoxesInStore: bounded}).Get(ctx, &out.Batch)
	if err != nil {
		return out, fmt.Errorf("store batch %s: %w", batch, err)
	}
	boxes := len(out.Batch.Boxes)
	if bounded {
		boxes = out.Batch.BoxCount
	}
	if (in.Analyze != nil && !*in.Analyze) || boxes == 0 {
		return out, nil
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: AnalyzeWorkflowID(workflow.GetInfo(ctx).WorkflowExecution.ID),
		TaskQueue:  s.MainQueue,
	})
	child := AnalyzeInput{Boxes: out.Batch.Boxes}
	if bounded {
		child = AnalyzeInput{Batch: out.Batch.BatchID}
	}
	var res AnalyzeResult
	if err := workflow.ExecuteChildWorkflow(cctx, AnalyzeBoxes, child).Get(ctx, &res); err != nil {
		return out, fmt.Errorf("analyse boxes of batch: %w", err)
	}
	out.Analysis = &res
	return out, nil
}
