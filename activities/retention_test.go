package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// TestApplyRetentionDeletesObjectsInPages: a call deletes at most
// MaxObjects old objects and says it is not done; the next calls go on
// until none is left; young objects stay.
func TestApplyRetentionDeletesObjectsInPages(t *testing.T) {
	f := newFixture(t)
	bs := withBatchStore(t, f)
	ctx := context.Background()
	now := f.acts.now()
	put := func(key string, age time.Duration) {
		_, err := bs.Put(ctx, key, strings.NewReader("0123456789"), nil)
		require.NoError(t, err)
		at := now.Add(-age)
		require.NoError(t, os.Chtimes(filepath.Join(f.dir, "bucket", filepath.FromSlash(key)), at, at))
	}
	for i := range 7 {
		put(fmt.Sprintf("batches/old%d", i), 40*24*time.Hour)
		put(fmt.Sprintf("quarantine/old%d", i), 40*24*time.Hour)
	}
	put("batches/young", time.Hour)
	put("quarantine/young", time.Hour)

	in := ApplyRetentionInput{Before: now.Add(-720 * time.Hour), PageSize: 100, MaxPages: 1,
		BatchesBefore: now.Add(-720 * time.Hour), QuarantineBefore: now.Add(-720 * time.Hour), MaxObjects: 5}
	var total ObjectsFreed
	var calls int
	for {
		val, err := f.env.ExecuteActivity(f.acts.ApplyRetention, in)
		require.NoError(t, err)
		var r ApplyRetentionResult
		require.NoError(t, val.Get(&r))
		calls++
		require.True(t, r.SamplesDone)
		require.LessOrEqual(t, r.BatchesDeleted+r.QuarantineDeleted, int64(5))
		total.Add(r.ObjectsFreed)
		in.SkipSamples = true
		if r.Done {
			break
		}
		require.Less(t, calls, 10)
	}
	require.Equal(t, 3, calls, "14 objects, 5 a call")
	require.Equal(t, ObjectsFreed{BatchesDeleted: 7, BatchBytes: 70, QuarantineDeleted: 7, QuarantineBytes: 70}, total)
	var left []string
	require.NoError(t, bs.List(ctx, "", func(o blobstore.Object) (bool, error) {
		left = append(left, o.Key)
		return false, nil
	}))
	require.Equal(t, []string{"batches/young", "quarantine/young"}, left)

	// Without a batch store: retryable, said plainly.
	f.acts.Batches = nil
	_, err := f.env.ExecuteActivity(f.acts.ApplyRetention, in)
	require.ErrorContains(t, err, "apply retention: this worker has no batch store (batches.url)")
}

// TestApplyRetentionDeletesIntakes: the receiver's records of accepted
// batches older than the batch cutoff go; one still in the outbox (its
// workflow never started) stays whatever its age, as do young ones.
func TestApplyRetentionDeletesIntakes(t *testing.T) {
	f := newFixture(t)
	withBatchStore(t, f)
	ctx := context.Background()
	now := f.acts.now()
	is, ok := f.acts.Store.(store.IntakeStore)
	require.True(t, ok)
	for _, in := range []struct {
		id      string
		age     time.Duration
		started bool
	}{{"old-started", 40 * 24 * time.Hour, true}, {"old-pending", 40 * 24 * time.Hour, false}, {"young-started", time.Hour, true}} {
		at := now.Add(-in.age)
		_, err := is.RecordIntake(ctx, store.Intake{BatchID: in.id, Box: "a1", Blob: "batches/" + in.id, Source: store.SourceHTTP, ReceivedAt: at, WorkflowID: "ingest-" + in.id})
		require.NoError(t, err)
		if in.started {
			require.NoError(t, is.MarkIntakeStarted(ctx, in.id, at))
		}
	}
	val, err := f.env.ExecuteActivity(f.acts.ApplyRetention, ApplyRetentionInput{Before: now.Add(-720 * time.Hour), PageSize: 100, MaxPages: 1,
		BatchesBefore: now.Add(-720 * time.Hour)})
	require.NoError(t, err)
	var r ApplyRetentionResult
	require.NoError(t, val.Get(&r))
	require.True(t, r.Done)
	require.EqualValues(t, 1, r.IntakesDeleted)
	for id, want := range map[string]bool{"old-started": false, "old-pending": true, "young-started": true} {
		_, err := is.Intake(ctx, id)
		require.Equal(t, want, err == nil, id)
	}
}

// TestApplyRetentionKeepsQueuedBatches: the object of a batch still in the
// outbox stays whatever its age (its workflow has yet to read it); the one
// of a started batch of the same age goes.
func TestApplyRetentionKeepsQueuedBatches(t *testing.T) {
	f := newFixture(t)
	bs := withBatchStore(t, f)
	ctx := context.Background()
	now := f.acts.now()
	is := f.acts.Store.(store.IntakeStore)
	old := now.Add(-40 * 24 * time.Hour)
	for _, id := range []string{"queued", "started"} {
		key := blobstore.BatchKey(id)
		_, err := bs.Put(ctx, key, strings.NewReader("0123456789"), nil)
		require.NoError(t, err)
		require.NoError(t, os.Chtimes(filepath.Join(f.dir, "bucket", filepath.FromSlash(key)), old, old))
		_, err = is.RecordIntake(ctx, store.Intake{BatchID: id, Box: "a1", Blob: key, Source: store.SourceHTTP, ReceivedAt: old, WorkflowID: "ingest-" + id})
		require.NoError(t, err)
	}
	require.NoError(t, is.MarkIntakeStarted(ctx, "started", old))
	val, err := f.env.ExecuteActivity(f.acts.ApplyRetention, ApplyRetentionInput{Before: now.Add(-720 * time.Hour), PageSize: 100, MaxPages: 1,
		BatchesBefore: now.Add(-720 * time.Hour)})
	require.NoError(t, err)
	var r ApplyRetentionResult
	require.NoError(t, val.Get(&r))
	require.EqualValues(t, 1, r.BatchesDeleted)
	ok, err := bs.Exists(ctx, blobstore.BatchKey("queued"))
	require.NoError(t, err)
	require.True(t, ok, "the queued batch's object stays")
	ok, err = bs.Exists(ctx, blobstore.BatchKey("started"))
	require.NoError(t, err)
	require.False(t, ok)
}

// TestApplyRetentionSealsClosedDays: samples that came one post at a time
// (rows) are sealed into a chunk per series and closed day by the
// retention run, page by page over calls; today's stay rows; reads are
// the same after.
func TestApplyRetentionSealsClosedDays(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.acts.now() // 2026-11-02T00:00Z
	start := now.Add(-50 * time.Hour)
	for i := range 50 * 12 { // every 5 minutes for 50 hours: 3 UTC days, the last within SealGrace
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		var post []telemetry.Sample
		for d := range 3 {
			post = append(post, telemetry.Sample{Box: "box-0001", Component: fmt.Sprintf("disk/%d", d),
				Metric: telemetry.DiskTemperatureC, Time: at, Value: float64(30 + d + i%4)})
		}
		_, err := f.acts.Store.AppendSamples(ctx, post)
		require.NoError(t, err)
	}
	before, err := f.acts.Store.Window(ctx, "box-0001", start, now)
	require.NoError(t, err)
	require.Len(t, before, 3*600)

	// Days of 2026-10-30 (2 h) and 10-31 are closed; 11-01 ended 0 h ago,
	// within the grace. 6 series-days, one seal page, which follows the
	// (empty) delete page in the same turn.
	in := ApplyRetentionInput{Before: now.Add(-720 * time.Hour), PageSize: 1000, MaxPages: 1}
	val, err := f.env.ExecuteActivity(f.acts.ApplyRetention, in)
	require.NoError(t, err)
	var r ApplyRetentionResult
	require.NoError(t, val.Get(&r))
	require.Equal(t, ApplyRetentionResult{DaysSealed: 6, Pages: 2, SamplesDone: true, Done: true}, r)

	after, err := f.acts.Store.Window(ctx, "box-0001", start, now)
	require.NoError(t, err)
	require.Equal(t, before, after)
	left, err := f.acts.Store.(store.Sealer).SealSamples(ctx, now, 0, 100)
	require.NoError(t, err)
	require.Equal(t, 3, left.Days, "only the day within the grace was left")
}
