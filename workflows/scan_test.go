package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

// fakeFleet serves ListBoxes pages over n boxes and records analysed boxes.
type fakeFleet struct {
	mu       sync.Mutex
	ids      []string
	analysed map[string]int
	reports  []store.ScanReport
	// failErr is the error of the failing shard (nil: "store
	// unreachable"); failAttempts counts its attempts.
	failErr      error
	failAttempts int
}

func newFakeFleet(n int) *fakeFleet {
	f := &fakeFleet{analysed: map[string]int{}}
	for i := 1; i <= n; i++ {
		f.ids = append(f.ids, fmt.Sprintf("box-%04d", i))
	}
	return f
}

func (f *fakeFleet) register(env *testsuite.TestWorkflowEnvironment, fail string) {
	env.OnActivity(a.CountBoxes, mock.Anything, mock.Anything).Return(len(f.ids), nil)
	env.OnActivity(a.ListBoxes, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ListBoxesInput) ([]string, error) {
			i := sort.SearchStrings(f.ids, in.After)
			if i < len(f.ids) && f.ids[i] == in.After {
				i++
			}
			return f.ids[i:min(i+in.Limit, len(f.ids))], nil
		})
	env.OnActivity(a.AnalyzeShard, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AnalyzeShardInput) (activities.ShardResult, error) {
			if !in.JudgeSilence {
				return activities.ShardResult{}, errors.New("a scan must judge silent boxes")
			}
			if in.Boxes[0] == fail {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.failAttempts++
				if f.failErr != nil {
					return activities.ShardResult{}, f.failErr
				}
				return activities.ShardResult{}, errors.New("store unreachable")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var refs []activities.FindingRef
			for _, b := range in.Boxes {
				f.analysed[b]++
				if b == "box-0002" {
					refs = append(refs, activities.FindingRef{Fingerprint: b + "/port_errors/port/0:1:1", Severity: finding.Warning})
				}
			}
			return shardResult(in, len(in.Boxes), refs), nil
		})
	env.OnActivity(a.DispatchFindings, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DispatchInput) (activities.DispatchResult, error) {
			return activities.DispatchResult{Signalled: len(in.Findings)}, nil
		})
	env.OnActivity(a.SaveScanReport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, r store.ScanReport) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reports = append(f.reports, r)
			return nil
		})
}

func scanEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(FleetScan)
	env.RegisterActivity(a)
	env.OnActivity(a.GetSettings, mock.Anything).Return(testSettings, nil)
	return env
}

func TestFleetScanAnalysesEveryBoxOnceAndReportsFailedShards(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { testFleetScanAnalysesEveryBoxOnce(t, v.v) })
	}
}

func testFleetScanAnalysesEveryBoxOnce(t *testing.T, v workflow.Version) {
	env := scanEnv(t)
	pinVersion(env, v)
	fleet := newFakeFleet(23)
	fleet.register(env, "box-0007")
	env.ExecuteWorkflow(FleetScan, FleetScanInput{PageSize: 10, ShardSize: 3, MaxInFlight: 2,
		Selector: activities.Selector{Site: "par1"}})
	require.NoError(t, env.GetWorkflowError())
	var rep store.ScanReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	require.Equal(t, 23, rep.Boxes)
	require.Equal(t, 20, rep.Analysed)
	require.Equal(t, 1, rep.Findings)
	require.Equal(t, 1, rep.Remediations, "the finding was handed to remediation")
	require.Equal(t, "site=par1", rep.Selector)
	require.Len(t, rep.FailedShards, 1)
	require.Contains(t, rep.FailedShards[0], "box-0007..box-0009 (3 boxes): ")
	require.Contains(t, rep.FailedShards[0], "store unreachable")
	require.Equal(t, 1, rep.Runs)
	for _, id := range fleet.ids {
		want := 1
		if id >= "box-0007" && id <= "box-0009" {
			want = 0
		}
		require.Equal(t, want, fleet.analysed[id], id)
	}
	require.Len(t, fleet.reports, 1)
	require.Equal(t, rep, fleet.reports[0])

	q, err := env.QueryWorkflow(QueryProgress)
	require.NoError(t, err)
	var p ScanProgress
	require.NoError(t, q.Get(&p))
	require.Equal(t, ScanProgress{ScanID: rep.ID, Selector: "site=par1", Total: 23, Done: 23, Findings: 1, FailedShards: 1, Runs: 1}, p)
}

// TestFleetScanTooManyPoints: a shard whose window is over
// samples.max_points (a non-retryable TooManyPoints error) fails on its first
// attempt and is reported failed with the message that names the key; the
// other shards are analysed.
func TestFleetScanTooManyPoints(t *testing.T) {
	const msg = "analyze box box-0004: read window: window of box-0004: 2026-10-30T00:00:00Z to 2026-11-01T00:00:00Z " +
		"holds more than samples.max_points = 100 points: shorten analysis.window or raise samples.max_points: too many points"
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			env := scanEnv(t)
			pinVersion(env, v.v)
			fleet := newFakeFleet(9)
			fleet.failErr = temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeTooManyPoints, nil)
			fleet.register(env, "box-0004")
			env.ExecuteWorkflow(FleetScan, FleetScanInput{PageSize: 10, ShardSize: 3, MaxInFlight: 2})
			require.NoError(t, env.GetWorkflowError())
			var rep store.ScanReport
			require.NoError(t, env.GetWorkflowResult(&rep))
			require.Equal(t, 1, fleet.failAttempts, "not retried")
			require.Equal(t, 6, rep.Analysed)
			require.Len(t, rep.FailedShards, 1)
			require.Contains(t, rep.FailedShards[0], "box-0004..box-0006 (3 boxes): ")
			require.Contains(t, rep.FailedShards[0], msg)
		})
	}
}

func TestFleetScanContinuesAsNewWithItsCursor(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { testFleetScanContinuesAsNew(t, v.v) })
	}
}

func testFleetScanContinuesAsNew(t *testing.T, v workflow.Version) {
	env := scanEnv(t)
	pinVersion(env, v)
	fleet := newFakeFleet(30)
	fleet.register(env, "")
	env.SetCurrentHistoryLength(scanHistoryLimit + 1)
	env.ExecuteWorkflow(FleetScan, FleetScanInput{PageSize: 10, ShardSize: 5, State: &ScanState{
		ScanID: "scan-1", After: "box-0010", Total: 30, Runs: 1, Result: AnalyzeResult{Analysed: 10},
	}})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next FleetScanInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	require.Equal(t, "box-0010", next.State.After, "nothing analysed twice or skipped")
	require.Equal(t, 2, next.State.Runs)
	require.Equal(t, 10, next.State.Result.Analysed)
	require.Equal(t, 5, next.ShardSize)

	// The next run finishes the remaining 20 boxes.
	env2 := scanEnv(t)
	pinVersion(env2, v)
	fleet.register(env2, "")
	env2.ExecuteWorkflow(FleetScan, next)
	require.NoError(t, env2.GetWorkflowError())
	var rep store.ScanReport
	require.NoError(t, env2.GetWorkflowResult(&rep))
	require.Equal(t, 30, rep.Analysed)
	require.Equal(t, 3, rep.Runs)
	require.Equal(t, "scan-1", rep.ID)
	for i, id := range fleet.ids {
		require.Equal(t, map[bool]int{true: 0, false: 1}[i < 10], fleet.analysed[id], id)
	}
}
