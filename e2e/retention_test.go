package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestRetention stores a year of daily samples on each store, and a year
// of daily batch and quarantined objects in the file:// batch store (their
// times set back with os.Chtimes), runs `starter retention --now`, and
// checks that only the last 30 days (retention.samples, .batches and
// .quarantine 720h) are left; then `starter retention` creates the
// sanwatch-retention schedule and, run again, updates it.
func TestRetention(t *testing.T) {
	tests := []struct {
		name     string
		postgres bool
	}{
		{"sqlite", false},
		{"postgres", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{postgres: tc.postgres})
			acts := h.inProcess(nil)
			ctx := context.Background()

			const days, kept = 365, 30
			boxes := []string{"box-1", "box-2", "box-3"}
			now := time.Now().UTC().Truncate(time.Second)
			var in []telemetry.Sample
			for _, b := range boxes {
				for d := range days {
					at := now.Add(-time.Duration(d*24+1) * time.Hour)
					in = append(in, telemetry.Sample{Time: at, Box: b, Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: float64(d)},
						telemetry.Sample{Time: at, Box: b, Component: "disk/0", Metric: telemetry.DiskTemperatureC, Value: 40})
				}
			}
			_, err := acts.Store.AppendSamples(ctx, in)
			require.NoError(t, err)
			const size = 1000
			backdateObjects(t, h, now, days, size)

			out := h.starter("retention", "--now")
			want := fmt.Sprintf("deleted %d samples older than", len(boxes)*2*(days-kept))
			require.Contains(t, out, want)
			require.Contains(t, out, "(kept 720h0m0s)")
			// Day d's object is d days and an hour old: days 30..364 go.
			require.Contains(t, out, fmt.Sprintf("deleted %d batch objects (%s) written before", days-kept, "327.1 KiB"))
			require.Contains(t, out, fmt.Sprintf("deleted %d quarantined objects (%s) written before", days-kept, "327.1 KiB"))
			require.Equal(t, kept, countObjects(t, h, blobstore.BatchPrefix))
			require.Equal(t, kept, countObjects(t, h, blobstore.QuarantinePrefix))
			for _, b := range boxes {
				w, err := acts.Store.Window(ctx, b, time.Time{}, now.Add(time.Hour))
				require.NoError(t, err)
				require.Len(t, w, 2*kept, "box %s", b)
				for _, s := range w {
					require.Less(t, now.Sub(s.Time), 720*time.Hour, "sample %+v outside the window", s)
				}
			}
			if !tc.postgres {
				resp, err := h.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'Retention'"})
				require.NoError(t, err)
				require.NotEmpty(t, resp.GetExecutions())
				recordHistory(t, h, resp.GetExecutions()[0].GetExecution().GetWorkflowId(), "Retention-now") // the run that freed samples and objects
			}
			out = h.starter("retention", "--now")
			require.Contains(t, out, "deleted 0 samples older than", "a second run finds nothing")
			require.Contains(t, out, "deleted 0 batch objects (0 B)")
			require.Contains(t, out, "deleted 0 quarantined objects (0 B)")

			if !tc.postgres {
				sqliteStaysBounded(t, h, acts, boxes, now)
			}

			out = h.starter("retention")
			require.Contains(t, out, "schedule sanwatch-retention created: Retention every 24h0m0s, samples kept 720h0m0s, batch objects kept 720h0m0s, quarantined kept 720h0m0s")
			out = h.starter("retention", "--set", "retention.every=12h")
			require.Contains(t, out, "schedule sanwatch-retention updated: Retention every 12h0m0s, samples kept 720h0m0s")
			d, err := h.c.ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID).Describe(ctx)
			require.NoError(t, err)
			require.Equal(t, []client.ScheduleIntervalSpec{{Every: 12 * time.Hour}}, d.Schedule.Spec.Intervals)
			action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
			require.True(t, ok)
			require.Equal(t, "Retention", action.Workflow)
		})
	}
}

// backdateObjects writes one batch object and one quarantined object per
// day of the past days days, d days and an hour old, into the harness's
// file:// batch store, setting their times back with os.Chtimes (fileblob
// reports a file's mtime as the object's ModTime).
func backdateObjects(t *testing.T, h *harness, now time.Time, days, size int) {
	t.Helper()
	ctx := context.Background()
	u := h.config().Batches.URL
	dir, ok := strings.CutPrefix(u, "file://")
	require.True(t, ok, "backdating needs a file:// store, not %s", u)
	bs, err := blobstore.Open(ctx, u)
	require.NoError(t, err)
	defer bs.Close()
	body := strings.Repeat("x", size)
	for d := range days {
		at := now.Add(-time.Duration(d*24+1) * time.Hour)
		for _, key := range []string{blobstore.BatchKey(fmt.Sprintf("day-%03d", d)), blobstore.QuarantineKey(fmt.Sprintf("day-%03d", d))} {
			_, err := bs.Put(ctx, key, strings.NewReader(body), nil)
			require.NoError(t, err)
			require.NoError(t, os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), at, at))
		}
	}
}

// countObjects counts the objects under prefix in the harness's batch store.
func countObjects(t *testing.T, h *harness, prefix string) int {
	t.Helper()
	bs, err := blobstore.Open(context.Background(), h.config().Batches.URL)
	require.NoError(t, err)
	defer bs.Close()
	n := 0
	require.NoError(t, bs.List(context.Background(), prefix, func(blobstore.Object) (bool, error) {
		n++
		return false, nil
	}))
	return n
}

// sqliteStaysBounded fills the SQLite store with a year of hourly samples
// (those older than the window at new times each cycle), trims it with
// `starter retention --now`, five times over, and checks that the database
// file (with its WAL) does not keep growing: after the first trim it grows
// by less than a tenth of what one fill adds.
func sqliteStaysBounded(t *testing.T, h *harness, acts *activities.Activities, boxes []string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	db := h.config().Store.Path
	size := func() int64 {
		var n int64
		for _, f := range []string{db, db + "-wal"} {
			if fi, err := os.Stat(f); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	var afterTrim []int64
	var fillGrowth int64
	for c := range 5 {
		before := size()
		var in []telemetry.Sample
		for _, b := range boxes {
			for hr := range 365 * 24 {
				at := now.Add(-time.Duration(hr) * time.Hour)
				if hr > 31*24 {
					// Older than the window: new samples each cycle. The
					// window's samples are the same each time (stored once).
					at = at.Add(-time.Duration(c+1) * time.Minute)
				}
				in = append(in, telemetry.Sample{Time: at, Box: b, Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: float64(hr)},
					telemetry.Sample{Time: at, Box: b, Component: "disk/0", Metric: telemetry.DiskTemperatureC, Value: 40})
			}
		}
		_, err := acts.Store.AppendSamples(ctx, in)
		require.NoError(t, err)
		if c == 0 {
			fillGrowth = size() - before
		}
		h.starter("retention", "--now")
		afterTrim = append(afterTrim, size())
	}
	t.Logf("sqlite file: one fill of %d samples adds %d bytes; after each trim: %v bytes", len(boxes)*2*365*24, fillGrowth, afterTrim)
	require.Positive(t, fillGrowth)
	require.Less(t, afterTrim[len(afterTrim)-1]-afterTrim[0], fillGrowth/10, "the database file keeps growing: %v after trims, a fill adds %d", afterTrim, fillGrowth)
}

// TestWorkerCreatesRetentionSchedule: a fresh worker serving the main queue
// leaves the sanwatch-retention schedule (retention.schedule defaults to
// true) with the configured retention, and a second start updates it to a
// changed configuration; workers that do not serve the main queue, or run
// with retention.schedule false, leave none; a schedule the server refuses
// leaves a warning and a running worker.
func TestWorkerCreatesRetentionSchedule(t *testing.T) {
	ctx := context.Background()
	describe := func(h *harness) (*client.ScheduleDescription, error) {
		return h.c.ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID).Describe(ctx)
	}
	for _, tc := range []struct {
		name   string
		queues string
		args   []string
	}{
		{"analysis and email only", "analysis,email", nil},
		{"retention.schedule false", "main", []string{"--set", "retention.schedule=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			w := h.startWorker(tc.queues, tc.args...)
			require.Eventually(t, func() bool { return strings.Contains(w.Output(), "worker started") }, 60*time.Second, 100*time.Millisecond, w.Output())
			_, err := describe(h)
			require.Error(t, err, "no schedule expected")
		})
	}

	// A schedule the server refuses (an interval under its 1 s minimum) is
	// a warning that says how to fix it; the worker serves all the same.
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		w := h.startWorker("main", "--set", "retention.every=500ms")
		require.Eventually(t, func() bool { return strings.Contains(w.Output(), "worker started") }, 60*time.Second, 100*time.Millisecond, w.Output())
		require.Contains(t, w.Output(), "retention schedule not created: nothing is pruned until it is; run `starter retention`")
		require.Contains(t, w.Output(), "interval is too small")
		select {
		case <-w.done:
			t.Fatalf("the worker exited:\n%s", w.Output())
		case <-time.After(time.Second):
		}
		_, err := describe(h)
		require.Error(t, err)
	})

	h := newHarness(t, harnessOptions{})
	w := h.startWorker("main")
	require.Eventually(t, func() bool { return strings.Contains(w.Output(), "worker started") }, 60*time.Second, 100*time.Millisecond, w.Output())
	require.Contains(t, w.Output(), "retention schedule created")
	d, err := describe(h)
	require.NoError(t, err)
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: 24 * time.Hour}}, d.Schedule.Spec.Intervals)
	action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	require.Equal(t, "Retention", action.Workflow)
	require.Len(t, action.Args, 1)
	var in workflows.RetentionInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(action.Args[0].(*commonpb.Payload), &in))
	require.Equal(t, workflows.RetentionInput{Samples: "720h0m0s", Batches: "720h0m0s", Quarantine: "720h0m0s"}, in)

	// Restarted with another retention: the schedule follows.
	w2 := h.startWorker("main", "--set", "retention.batches=240h", "--set", "retention.every=6h")
	require.Eventually(t, func() bool { return strings.Contains(w2.Output(), "retention schedule updated") }, 60*time.Second, 100*time.Millisecond, w2.Output())
	d, err = describe(h)
	require.NoError(t, err)
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: 6 * time.Hour}}, d.Schedule.Spec.Intervals)
	action = d.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(action.Args[0].(*commonpb.Payload), &in))
	require.Equal(t, "240h0m0s", in.Batches)
}
