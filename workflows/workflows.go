// Package workflows holds sanwatch's Temporal workflow definitions:
// deterministic orchestration only. All I/O happens in activities.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// Default task queue names; the configured ones (queues.*) win and reach
// workflows through the Settings local activity.
const (
	// TaskQueue serves workflows and ingest activities.
	TaskQueue = "sanwatch"
	// AnalysisTaskQueue serves the CPU-bound analysis activities.
	AnalysisTaskQueue = "sanwatch-analysis"
	// EmailTaskQueue serves email activities, rate-limited to what the relay accepts.
	EmailTaskQueue = "sanwatch-email"
)

// IngestWorkflowID returns the workflow id of ingesting the batch whose content
// hash is batchID: the same content always maps to the same id, so a batch sent
// twice is processed once.
func IngestWorkflowID(batchID string) string {
	if len(batchID) > 16 {
		batchID = batchID[:16]
	}
	return "ingest-" + batchID
}

// AnalyzeWorkflowID returns the id of the analysis child of an ingest workflow.
func AnalyzeWorkflowID(parentID string) string { return parentID + "-analyze" }

// changeBoundedPayloads is the GetVersion change id of bounded payloads and
// history in IngestTelemetry, AnalyzeBoxes and FleetScan: a batch's boxes
// paged from the store, shards that return counts and dispatch their own
// findings, bounded failure lists, deadlines on shards and store
// activities, and continue-as-new on the server's suggestion or history size.
const changeBoundedPayloads = "bounded-payloads"

// Limits of bounded-payloads.
const (
	// analyzeHistoryLimit is the history length at which AnalyzeBoxes
	// drains and continues as new (FleetScan's is scanHistoryLimit).
	analyzeHistoryLimit = 4000
	// historySizeLimit is the history size in bytes at which a run drains
	// and continues as new.
	historySizeLimit = 4 << 20
	// defaultShardDeadline is AnalyzeShard's ScheduleToClose when
	// analysis.shard_deadline is 0.
	defaultShardDeadline = time.Hour
	// storeActivityDeadline is the ScheduleToClose of the store activities.
	storeActivityDeadline = 10 * time.Minute
)

// a is the typed nil pointer through which workflows name activities.
var a *activities.Activities

// loadSettings runs the Settings local activity: configured values recorded in
// history, so a replay sees what the first run saw.
func loadSettings(ctx workflow.Context) (activities.Settings, error) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var s activities.Settings
	if err := workflow.ExecuteLocalActivity(ctx, a.GetSettings).Get(ctx, &s); err != nil {
		return s, fmt.Errorf("load settings: %w", err)
	}
	if s.MainQueue == "" {
		s.MainQueue = TaskQueue
	}
	if s.AnalysisQueue == "" {
		s.AnalysisQueue = AnalysisTaskQueue
	}
	if s.EmailQueue == "" {
		s.EmailQueue = EmailTaskQueue
	}
	if s.ShardSize <= 0 {
		s.ShardSize = 100
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 4
	}
	if s.Window <= 0 {
		s.Window = 48 * time.Hour
	}
	return s, nil
}

// parseDuration parses an optional duration field of a workflow input.
func parseDuration(field, v string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("input %s = %q: want a positive duration such as 48h", field, v), activities.ErrTypeInvalidInput, nil)
	}
	return d, nil
}
