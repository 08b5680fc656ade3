package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

// versions are the branches of bounded-payloads that workflow tests run on:
// the old one must keep behaving as it did, for histories still running.
var versions = []struct {
	name string
	v    workflow.Version
}{
	{"old", workflow.DefaultVersion},
	{"bounded", 1},
}

// pinVersion makes GetVersion(bounded-payloads) return v.
func pinVersion(env *testsuite.TestWorkflowEnvironment, v workflow.Version) {
	env.OnGetVersion(changeBoundedPayloads, workflow.DefaultVersion, 1).Return(v)
}

// shardResult is what the real AnalyzeShard returns for a shard of analysed
// boxes with these findings, under in's options: references to the findings,
// or counts of them (CountsOnly) and remediations (Dispatch).
func shardResult(in activities.AnalyzeShardInput, analysed int, refs []activities.FindingRef) activities.ShardResult {
	res := activities.ShardResult{Analysed: analysed}
	if !in.CountsOnly {
		res.Findings = refs
		return res
	}
	for _, f := range refs {
		res.FindingCount++
		if f.New {
			res.NewFindings++
		}
		if res.BySeverity == nil {
			res.BySeverity = map[string]int{}
		}
		res.BySeverity[string(f.Severity)]++
	}
	if in.Dispatch {
		res.Remediations = len(refs)
	}
	return res
}

// pageOf returns the page of sorted ids after after, at most limit of them.
func pageOf(ids []string, after string, limit int) []string {
	i, found := slices.BinarySearch(ids, after)
	if found {
		i++
	}
	return ids[i:min(i+limit, len(ids))]
}

// TestFleetScanShardPastItsDeadlineFails runs scans where one shard's
// activity never finishes, as when no worker polls the analysis queue: the
// shard fails at analysis.shard_deadline and the scan completes and saves
// its report. Without the deadline the scan waits forever (here: until the
// test's timeout).
func TestFleetScanShardPastItsDeadlineFails(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration
		hang     bool          // the shard of box-0003 never finishes
		want     time.Duration // every shard's ScheduleToClose
	}{
		{"a hung shard fails at its deadline", time.Second, true, time.Second},
		{"zero is one hour", 0, false, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(FleetScan)
			env.RegisterActivity(a)
			s := testSettings
			s.ShardDeadline = tc.deadline
			env.OnActivity(a.GetSettings, mock.Anything).Return(s, nil)
			ids := newFakeFleet(6).ids
			env.OnActivity(a.CountBoxes, mock.Anything, mock.Anything).Return(len(ids), nil)
			env.OnActivity(a.ListBoxes, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.ListBoxesInput) ([]string, error) {
					return pageOf(ids, in.After, in.Limit), nil
				})
			env.OnActivity(a.AnalyzeShard, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.AnalyzeShardInput) (activities.ShardResult, error) {
					require.Equal(t, tc.want, activity.GetInfo(ctx).ScheduleToCloseTimeout)
					if tc.hang && in.Boxes[0] == "box-0003" {
						<-ctx.Done() // a worker that never answers
						return activities.ShardResult{}, ctx.Err()
					}
					return activities.ShardResult{Analysed: len(in.Boxes)}, nil
				})
			var saved []store.ScanReport
			env.OnActivity(a.SaveScanReport, mock.Anything, mock.Anything).Return(
				func(_ context.Context, r store.ScanReport) error { saved = append(saved, r); return nil })
			env.SetTestTimeout(20 * time.Second)
			env.ExecuteWorkflow(FleetScan, FleetScanInput{ShardSize: 2})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var rep store.ScanReport
			require.NoError(t, env.GetWorkflowResult(&rep))
			require.Equal(t, []store.ScanReport{rep}, saved, "the report is saved")
			if !tc.hang {
				require.Equal(t, 6, rep.Analysed)
				return
			}
			require.Equal(t, 4, rep.Analysed)
			require.Len(t, rep.FailedShards, 1)
			require.Contains(t, rep.FailedShards[0], "box-0003..box-0004 (2 boxes)")
		})
	}
}

// TestAnalyzeBoxesPagesABatchAndContinuesAsNew analyses a batch's boxes paged
// from the store; when the server suggests continuing as new the run drains
// its shards and carries its cursor and counts, and the next run finishes
// the rest: every box once, the failures capped with a count of the rest.
func TestAnalyzeBoxesPagesABatchAndContinuesAsNew(t *testing.T) {
	var ids []string
	for i := range 60 {
		ids = append(ids, fmt.Sprintf("box-%03d", i))
	}
	analysed := map[string]int{}
	var mu sync.Mutex // mocked activities run concurrently
	register := func(env *testsuite.TestWorkflowEnvironment, suggestAfter int) {
		env.OnActivity(a.ListBoxes, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.ListBoxesInput) ([]string, error) {
				require.Equal(t, "batch-1", in.Batch)
				return pageOf(ids, in.After, in.Limit), nil
			})
		shards := 0
		env.OnActivity(a.AnalyzeShard, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.AnalyzeShardInput) (activities.ShardResult, error) {
				require.True(t, in.CountsOnly)
				require.True(t, in.Dispatch)
				mu.Lock()
				defer mu.Unlock()
				if shards++; shards == suggestAfter {
					env.SetContinueAsNewSuggested(true)
				}
				if in.Boxes[0] >= "box-010" && in.Boxes[0] < "box-036" {
					return activities.ShardResult{}, errors.New("disk on fire") // 13 shards fail
				}
				for _, b := range in.Boxes {
					analysed[b]++
				}
				refs := []activities.FindingRef{{Fingerprint: in.Boxes[0] + "/r/c", Severity: finding.Warning, New: true}}
				return shardResult(in, len(in.Boxes), refs), nil
			})
	}
	env := newEnv(t)
	register(env, 10)
	env.ExecuteWorkflow(AnalyzeBoxes, AnalyzeInput{Batch: "batch-1", PageSize: 8, ShardSize: 2, MaxInFlight: 3})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next AnalyzeInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	require.Equal(t, "batch-1", next.Batch)
	require.Equal(t, 1, next.State.Runs)
	require.Equal(t, next.State.Result.Boxes, next.State.Result.Analysed+next.State.Result.FailedBoxes, "in-flight shards drained first")
	require.Equal(t, fmt.Sprintf("box-%03d", next.State.Result.Boxes-1), next.State.After)

	for i := 0; next.State != nil && i < 10; i++ { // runs until done, each continuing as new after 10 shards
		env = newEnv(t)
		register(env, 10)
		env.ExecuteWorkflow(AnalyzeBoxes, next)
		if !errors.As(env.GetWorkflowError(), &can) {
			break
		}
		next = AnalyzeInput{}
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	}
	require.NoError(t, env.GetWorkflowError())
	var out AnalyzeResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Equal(t, 60, out.Boxes)
	require.Equal(t, 34, out.Analysed)
	require.Equal(t, 26, out.FailedBoxes)
	require.Equal(t, 17, out.Findings)
	require.Equal(t, 17, out.Remediations)
	require.Len(t, out.FailedShards, 13)
	for _, id := range ids {
		if id < "box-010" || id >= "box-036" {
			require.Equal(t, 1, analysed[id], id)
		}
	}
}

// TestFailureListsAreCapped checks that a result lists at most
// activities.MaxListed failed shards and dispatch errors and counts the rest.
func TestFailureListsAreCapped(t *testing.T) {
	var r AnalyzeResult
	for i := range 25 {
		shard := []string{fmt.Sprintf("b%02da", i), fmt.Sprintf("b%02db", i)}
		r.failShard(shard, errors.New("deadline"))
		r.addCounts(shard, activities.ShardResult{Analysed: 2, DispatchErrors: 1, FirstDispatchError: "unavailable"})
	}
	require.Len(t, r.FailedShards, activities.MaxListed)
	require.Equal(t, 5, r.MoreFailedShards)
	require.Equal(t, 50, r.FailedBoxes)
	require.Len(t, r.DispatchErrors, activities.MaxListed)
	require.Equal(t, 5, r.MoreDispatchErrors)
	require.Equal(t, "b00a..b00b: 1 hand-offs failed, first: unavailable", r.DispatchErrors[0])
}

// TestFleetScanContinuesAsNewWhenSuggested checks that a bounded scan
// continues as new on the server's suggestion, not only on its event count.
func TestFleetScanContinuesAsNewWhenSuggested(t *testing.T) {
	env := scanEnv(t)
	pinVersion(env, 1)
	fleet := newFakeFleet(30)
	fleet.register(env, "")
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(FleetScan, FleetScanInput{PageSize: 10, ShardSize: 5, State: &ScanState{
		ScanID: "scan-1", After: "box-0010", Total: 30, Runs: 1, Result: AnalyzeResult{Analysed: 10},
	}})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next FleetScanInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, "box-0010", next.State.After)
	require.Equal(t, 2, next.State.Runs)
}
