package workflows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/blobstore"
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

// oldObjects fills a file:// batch store with n batch objects and n
// quarantined ones per age (days before start), each of size bytes, their
// times set back with os.Chtimes as if written then.
func oldObjects(t *testing.T, start time.Time, ages []int, n, size int) *blobstore.Store {
	t.Helper()
	dir := t.TempDir()
	bs, err := blobstore.Open(context.Background(), "file://"+dir)
	require.NoError(t, err)
	t.Cleanup(func() { bs.Close() })
	for _, age := range ages {
		at := start.Add(-time.Duration(age) * 24 * time.Hour)
		for i := range n {
			for _, key := range []string{blobstore.BatchKey(fmt.Sprintf("d%03d-%d", age, i)), blobstore.QuarantineKey(fmt.Sprintf("d%03d-%d", age, i))} {
				_, err := bs.Put(context.Background(), key, strings.NewReader(strings.Repeat("x", size)), nil)
				require.NoError(t, err)
				require.NoError(t, os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), at, at))
			}
		}
	}
	return bs
}

// TestRetentionDeletesOldObjects: after the samples, batch objects older
// than Batches and quarantined ones older than Quarantine are deleted, and
// the result says how many and how many bytes; objects within their window
// stay.
func TestRetentionDeletesOldObjects(t *testing.T) {
	start := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   RetentionInput
		want RetentionResult
		left []string
	}{
		{name: "both windows", in: RetentionInput{Samples: "720h", Batches: "240h", Quarantine: "72h"},
			want: RetentionResult{Before: start.Add(-720 * time.Hour), SamplesDeleted: 5, Calls: 1,
				BatchesBefore: start.Add(-240 * time.Hour), QuarantineBefore: start.Add(-72 * time.Hour),
				ObjectsFreed: activities.ObjectsFreed{BatchesDeleted: 2, BatchBytes: 20, QuarantineDeleted: 4, QuarantineBytes: 40}},
			left: []string{"batches/d001-0", "batches/d001-1", "batches/d005-0", "batches/d005-1", "quarantine/d001-0", "quarantine/d001-1"}},
		{name: "samples only (a schedule made before object retention)", in: RetentionInput{Samples: "720h"},
			want: RetentionResult{Before: start.Add(-720 * time.Hour), SamplesDeleted: 5, Calls: 1},
			left: []string{"batches/d001-0", "batches/d001-1", "batches/d005-0", "batches/d005-1", "batches/d040-0", "batches/d040-1",
				"quarantine/d001-0", "quarantine/d001-1", "quarantine/d005-0", "quarantine/d005-1", "quarantine/d040-0", "quarantine/d040-1"}},
		{name: "continued run keeps its cutoffs and counts",
			in: RetentionInput{Samples: "720h", Batches: "240h", Quarantine: "72h", SamplesDone: true,
				BatchesBefore: start.Add(-30 * 24 * time.Hour), QuarantineBefore: start.Add(-30 * 24 * time.Hour),
				Before: start.Add(-720 * time.Hour), Deleted: 9, Freed: activities.ObjectsFreed{BatchesDeleted: 1, BatchBytes: 1}},
			want: RetentionResult{Before: start.Add(-720 * time.Hour), SamplesDeleted: 9, Calls: 1,
				BatchesBefore: start.Add(-30 * 24 * time.Hour), QuarantineBefore: start.Add(-30 * 24 * time.Hour),
				ObjectsFreed: activities.ObjectsFreed{BatchesDeleted: 3, BatchBytes: 21, QuarantineDeleted: 2, QuarantineBytes: 20}},
			left: []string{"batches/d001-0", "batches/d001-1", "batches/d005-0", "batches/d005-1",
				"quarantine/d001-0", "quarantine/d001-1", "quarantine/d005-0", "quarantine/d005-1"}},
		{name: "bad batches duration", in: RetentionInput{Samples: "720h", Batches: "a month"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.SetStartTime(start)
			env.RegisterWorkflow(Retention)
			st := &retentionStore{old: 5}
			if tc.in.SamplesDone {
				st.old = 0
			}
			bs := oldObjects(t, start, []int{1, 5, 40}, 2, 10)
			env.RegisterActivity(&activities.Activities{Store: st, Batches: bs})
			env.ExecuteWorkflow(Retention, tc.in)
			require.True(t, env.IsWorkflowCompleted())
			if tc.left == nil {
				require.ErrorContains(t, env.GetWorkflowError(), `input batches = "a month": want a positive duration`)
				return
			}
			require.NoError(t, env.GetWorkflowError())
			var got RetentionResult
			require.NoError(t, env.GetWorkflowResult(&got))
			require.Equal(t, tc.want, got)
			var left []string
			require.NoError(t, bs.List(context.Background(), "", func(o blobstore.Object) (bool, error) {
				left = append(left, o.Key)
				return false, nil
			}))
			require.Equal(t, tc.left, left)
		})
	}
}
