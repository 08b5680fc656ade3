package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/store"
)

// retentionStore is a store holding old samples that DeleteSamplesBefore
// deletes; the rest of store.Store is not used by ApplyRetention.
type retentionStore struct {
	store.Store
	mu        sync.Mutex
	old       int         // samples older than every cutoff
	failOnce  bool        // the first delete fails
	cutoffs   []time.Time // distinct cutoffs asked for
	compacted int
}

func (s *retentionStore) DeleteSamplesBefore(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOnce {
		s.failOnce = false
		return 0, errors.New("database is locked")
	}
	if len(s.cutoffs) == 0 || !s.cutoffs[len(s.cutoffs)-1].Equal(before) {
		s.cutoffs = append(s.cutoffs, before)
	}
	n := min(limit, s.old)
	s.old -= n
	return n, nil
}

func (s *retentionStore) Compact(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted++
	return nil
}

func TestRetention(t *testing.T) {
	start := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		in        RetentionInput
		old       int
		failOnce  bool
		want      RetentionResult
		wantErr   string
		wantCAN   bool // continues as new
		wantLeft  int
		compacted int
	}{
		{name: "pages until nothing is left", in: RetentionInput{Samples: "720h"}, old: 2_500_000,
			want: RetentionResult{Before: start.Add(-720 * time.Hour), SamplesDeleted: 2_500_000, Calls: 3}, compacted: 1},
		{name: "nothing to delete", in: RetentionInput{Samples: "720h"},
			want: RetentionResult{Before: start.Add(-720 * time.Hour), Calls: 1}, compacted: 1},
		{name: "a failed page is retried", in: RetentionInput{Samples: "48h", PageSize: 10}, old: 25, failOnce: true,
			want: RetentionResult{Before: start.Add(-48 * time.Hour), SamplesDeleted: 25, Calls: 1}, compacted: 1},
		{name: "continued run keeps its cutoff and count",
			in:  RetentionInput{Samples: "720h", Before: start.Add(-1000 * time.Hour), Deleted: 7},
			old: 5, want: RetentionResult{Before: start.Add(-1000 * time.Hour), SamplesDeleted: 12, Calls: 1}, compacted: 1},
		{name: "continues as new after its calls", in: RetentionInput{Samples: "720h", PageSize: 1},
			old: retentionCallsPerRun*retentionPagesPerCall + 10, wantCAN: true, wantLeft: 10},
		{name: "no samples duration", in: RetentionInput{},
			wantErr: "input samples is empty: want how long samples are kept, such as 720h"},
		{name: "bad samples duration", in: RetentionInput{Samples: "30 days"},
			wantErr: `input samples = "30 days": want a positive duration such as 48h`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.SetStartTime(start)
			env.RegisterWorkflow(Retention)
			st := &retentionStore{old: tc.old, failOnce: tc.failOnce}
			env.RegisterActivity(&activities.Activities{Store: st})
			env.ExecuteWorkflow(Retention, tc.in)
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			switch {
			case tc.wantErr != "":
				require.ErrorContains(t, err, tc.wantErr)
				return
			case tc.wantCAN:
				var can *workflow.ContinueAsNewError
				require.ErrorAs(t, err, &can)
				require.Equal(t, tc.wantLeft, st.old)
				require.Zero(t, st.compacted, "compacted before the end")
				return
			}
			require.NoError(t, err)
			var got RetentionResult
			require.NoError(t, env.GetWorkflowResult(&got))
			require.Equal(t, tc.want, got)
			require.Zero(t, st.old, "samples left")
			require.Equal(t, tc.compacted, st.compacted)
			if tc.old > 0 {
				require.Equal(t, []time.Time{tc.want.Before}, st.cutoffs, "one cutoff for every page")
			}
		})
	}
}
