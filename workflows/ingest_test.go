package workflows

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
)

// testSettings are small settings so shard logic is visible in tests.
var testSettings = activities.Settings{
	MainQueue: TaskQueue, AnalysisQueue: AnalysisTaskQueue, EmailQueue: EmailTaskQueue,
	ShardSize: 2, MaxInFlight: 2, Window: 48 * time.Hour,
	Reminder: 24 * time.Hour, EscalateAfter: 48 * time.Hour, ResolveAfter: 6 * time.Hour, VerifyEvery: time.Hour,
	SMTPRetryFor: time.Hour,
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(IngestTelemetry)
	env.RegisterWorkflow(AnalyzeBoxes)
	env.RegisterActivity(a)
	env.OnActivity(a.GetSettings, mock.Anything).Return(testSettings, nil)
	return env
}

func TestIngestTelemetryStoresThenAnalyses(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			env := newEnv(t)
			pinVersion(env, v.v)
			summary := activities.BatchSummary{BatchID: "abc", Path: "/d/b.csv", Format: "csv", Status: "stored",
				Accepted: 100, Rejected: 2, Boxes: []string{"box-3", "box-1", "box-2"}, UnknownBoxes: []string{"box-3"}}
			in := activities.StoreBatchInput{Path: "/d/b.csv", BatchID: "abc"}
			if v.v >= 1 {
				// The boxes stay in the store: the summary counts them, the
				// analysis pages them by batch id.
				summary.Boxes, summary.BoxCount, summary.UnknownBoxCount = nil, 3, 1
				in.BoxesInStore = true
				env.OnActivity(a.ListBoxes, mock.Anything, mock.Anything).Return(
					func(_ context.Context, q activities.ListBoxesInput) ([]string, error) {
						require.Equal(t, "abc", q.Batch)
						return pageOf([]string{"box-1", "box-2", "box-3"}, q.After, q.Limit), nil
					})
			}
			env.OnActivity(a.StoreBatch, mock.Anything, in).Return(summary, nil).Once()
			var shards [][]string
			var mu sync.Mutex // mocked activities run concurrently
			env.OnActivity(a.AnalyzeShard, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.AnalyzeShardInput) (activities.ShardResult, error) {
					mu.Lock()
					shards = append(shards, in.Boxes)
					mu.Unlock()
					require.Equal(t, 48*time.Hour, in.Window)
					require.False(t, in.JudgeSilence, "a box that just sent its batch is not judged silent")
					var refs []activities.FindingRef
					for _, b := range in.Boxes {
						refs = append(refs, activities.FindingRef{Fingerprint: b + "/capacity_forecast/pool/p0", Severity: finding.Critical, New: b == "box-1"})
					}
					return shardResult(in, len(in.Boxes), refs), nil
				})
			dispatched := 0
			env.OnActivity(a.DispatchFindings, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DispatchInput) (activities.DispatchResult, error) {
					mu.Lock()
					dispatched += len(in.Findings)
					mu.Unlock()
					return activities.DispatchResult{Signalled: len(in.Findings)}, nil
				})

			env.ExecuteWorkflow(IngestTelemetry, IngestInput{Path: "/d/b.csv", BatchID: "abc"})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var out IngestResult
			require.NoError(t, env.GetWorkflowResult(&out))
			require.Equal(t, summary, out.Batch)
			require.NotNil(t, out.Analysis)
			require.Equal(t, AnalyzeResult{Boxes: 3, Analysed: 3, Findings: 3, NewFindings: 1, BySeverity: map[string]int{"critical": 3}, Remediations: 3}, *out.Analysis)
			require.ElementsMatch(t, [][]string{{"box-1", "box-2"}, {"box-3"}}, shards)
			if v.v >= 1 {
				require.Zero(t, dispatched, "shards hand their findings to remediation themselves")
			} else {
				require.Equal(t, 3, dispatched)
			}
		})
	}
}

func TestIngestTelemetryBadBatchFailsWithoutRetry(t *testing.T) {
	env := newEnv(t)
	calls := 0
	env.OnActivity(a.StoreBatch, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.StoreBatchInput) (activities.BatchSummary, error) {
			calls++
			return activities.BatchSummary{}, temporal.NewNonRetryableApplicationError(
				`bad.csv:1: header "a,b,c" is not time,box,component,metric,value`, activities.ErrTypeInvalidTelemetry, nil)
		})
	env.ExecuteWorkflow(IngestTelemetry, IngestInput{Path: "/d/bad.csv"})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var inner *temporal.ApplicationError
	for e := err; e != nil; e = errors.Unwrap(e) {
		if app, ok := e.(*temporal.ApplicationError); ok {
			inner = app
		}
	}
	require.NotNil(t, inner)
	require.Equal(t, activities.ErrTypeInvalidTelemetry, inner.Type())
	require.Contains(t, err.Error(), `bad.csv:1: header "a,b,c"`)
	require.Equal(t, 1, calls, "a malformed batch must not be retried")
}

func TestIngestTelemetryRejectsEmptyInput(t *testing.T) {
	env := newEnv(t)
	env.ExecuteWorkflow(IngestTelemetry, IngestInput{})
	require.ErrorContains(t, env.GetWorkflowError(), "input path and blob are empty")
}

// TestIngestTelemetryPassesTheBlobKey: a batch named by its object key
// reaches StoreBatch as that key, and a failure names it.
func TestIngestTelemetryPassesTheBlobKey(t *testing.T) {
	env := newEnv(t)
	in := activities.StoreBatchInput{Blob: "batches/abc", BatchID: "abc", BoxesInStore: true}
	env.OnActivity(a.StoreBatch, mock.Anything, in).Return(activities.BatchSummary{},
		temporal.NewNonRetryableApplicationError("object batches/abc not found", activities.ErrTypeInvalidInput, nil)).Once()
	env.ExecuteWorkflow(IngestTelemetry, IngestInput{Blob: "batches/abc", BatchID: "abc"})
	require.ErrorContains(t, env.GetWorkflowError(), "store batch batches/abc: ")
	env.AssertExpectations(t)
}

func TestIngestTelemetryWithoutAnalysis(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.StoreBatch, mock.Anything, mock.Anything).Return(activities.BatchSummary{Boxes: []string{"b"}}, nil)
	no := false
	env.ExecuteWorkflow(IngestTelemetry, IngestInput{Path: "/x.csv", Analyze: &no})
	require.NoError(t, env.GetWorkflowError())
	var out IngestResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Nil(t, out.Analysis)
}

func TestAnalyzeBoxesSlidingWindowAndFailedShard(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { testAnalyzeBoxesSlidingWindow(t, v.v) })
	}
}

func testAnalyzeBoxesSlidingWindow(t *testing.T, v workflow.Version) {
	env := newEnv(t)
	pinVersion(env, v)
	var running, peak atomic.Int32
	env.OnActivity(a.AnalyzeShard, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AnalyzeShardInput) (activities.ShardResult, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			if in.Boxes[0] == "b05" {
				return activities.ShardResult{}, errors.New("disk on fire")
			}
			return activities.ShardResult{Analysed: len(in.Boxes)}, nil
		})
	boxes := []string{"b01", "b02", "b03", "b04", "b05", "b06", "b07"}
	env.ExecuteWorkflow(AnalyzeBoxes, AnalyzeInput{Boxes: boxes, ShardSize: 2, MaxInFlight: 3, Window: "24h"})
	require.NoError(t, env.GetWorkflowError())
	var out AnalyzeResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Equal(t, 7, out.Boxes)
	require.Equal(t, 5, out.Analysed)
	require.Len(t, out.FailedShards, 1)
	require.Contains(t, out.FailedShards[0], "b05..b06 (2 boxes)")
	require.Contains(t, out.FailedShards[0], "disk on fire")
	require.LessOrEqual(t, peak.Load(), int32(3))
}

func TestAnalyzeBoxesBadWindow(t *testing.T) {
	env := newEnv(t)
	env.ExecuteWorkflow(AnalyzeBoxes, AnalyzeInput{Boxes: []string{"b"}, Window: "two days"})
	require.ErrorContains(t, env.GetWorkflowError(), `input window = "two days": want a positive duration`)
}
