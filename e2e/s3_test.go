package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/blobstore/s3test"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// s3Harness is a harness whose batch store is a bucket of a real
// S3-compatible server (SeaweedFS) on loopback; subprocesses get its
// credentials in their environment, never in the URL.
func s3Harness(t *testing.T) (*harness, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t, "sanwatch")
	t.Logf("SeaweedFS ready in %s", srv.StartTime)
	h := newHarness(t, harnessOptions{batchesURL: srv.URL("sanwatch"), env: srv.Env()})
	return h, srv
}

// TestIngestThroughS3: `starter ingest` uploads the batch to the S3 bucket
// and the worker (a subprocess, as on another host) reads it from there;
// the same file again is neither uploaded nor stored twice.
func TestIngestThroughS3(t *testing.T) {
	h, srv := s3Harness(t)
	writeFleet(t, h)
	batch := faultyBatch(t, h)
	id := mustHash(t, batch)
	h.startWorker("main,analysis,email")
	out := h.starter("ingest", batch)
	require.Contains(t, out, "accepted=576 rejected=0")
	require.Contains(t, out, "findings=1 new=1")
	require.NotContains(t, out, srv.SecretKey)

	srv.SetEnv(t)
	ctx := context.Background()
	bs, err := blobstore.Open(ctx, srv.URL("sanwatch"))
	require.NoError(t, err)
	defer bs.Close()
	obj, meta, err := bs.Stat(ctx, blobstore.BatchKey(id))
	require.NoError(t, err)
	fi, err := os.Stat(batch)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), obj.Size)
	require.Equal(t, "fault.csv", meta[activities.MetaName])
	st := h.openStore()
	b, err := st.Batch(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.BatchStored, b.Status)
	require.Equal(t, blobstore.BatchKey(id), b.Path)

	out = h.starter("ingest", batch)
	require.Contains(t, out, "(already ingested)")
	obj2, _, err := bs.Stat(ctx, blobstore.BatchKey(id))
	require.NoError(t, err)
	require.Equal(t, obj.ModTime, obj2.ModTime, "the object was not uploaded again")
}

// TestStoreBatchWaitsForS3: with the object store down, StoreBatch fails
// with a retryable error and is retried; once the store is back the batch
// is stored. The object was written before (as the receiver does), and the
// workflow names it by key.
func TestStoreBatchWaitsForS3(t *testing.T) {
	h, srv := s3Harness(t)
	writeFleet(t, h)
	srv.SetEnv(t) // the in-process worker's client
	ctx := context.Background()
	batch := healedBatch(t, h)
	id := mustHash(t, batch)
	bs, err := blobstore.Open(ctx, srv.URL("sanwatch"))
	require.NoError(t, err)
	defer bs.Close()
	_, err = bs.PutFile(ctx, blobstore.BatchKey(id), batch, nil)
	require.NoError(t, err)

	srv.Stop()
	acts := h.inProcess(nil)
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.IngestWorkflowID(id), TaskQueue: h.config().Queues.Main},
		workflows.IngestTelemetry, workflows.IngestInput{Blob: blobstore.BatchKey(id), BatchID: id, Analyze: new(bool)})
	require.NoError(t, err)
	// Wait until StoreBatch has failed at least once against the dead store.
	var lastFailure string
	require.Eventually(t, func() bool {
		d, err := h.c.DescribeWorkflowExecution(ctx, run.GetID(), "")
		if err != nil || len(d.GetPendingActivities()) == 0 {
			return false
		}
		pa := d.GetPendingActivities()[0]
		lastFailure = pa.GetLastFailure().GetMessage()
		return pa.GetActivityType().GetName() == "StoreBatch" && pa.GetAttempt() >= 2
	}, time.Minute, 100*time.Millisecond)
	require.Contains(t, lastFailure, "stat "+blobstore.BatchKey(id)+" in s3://sanwatch")
	require.NotContains(t, lastFailure, srv.SecretKey)

	srv.Restart()
	t.Logf("SeaweedFS back in %s", srv.StartTime)
	var res workflows.IngestResult
	require.NoError(t, run.Get(ctx, &res))
	require.EqualValues(t, 24, res.Batch.Accepted)
	b, err := acts.Store.Batch(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.BatchStored, b.Status)
	d, err := h.c.DescribeWorkflowExecution(ctx, run.GetID(), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.GetWorkflowExecutionInfo().GetStatus())
}

// TestRetentionOnS3 trims an S3 bucket: S3 sets an object's time when it is
// written and no API sets it back, so the objects here are minutes apart,
// not days, and the windows seconds (retention.batches and .quarantine
// 5s): those written before the window go, the ones written after stay.
func TestRetentionOnS3(t *testing.T) {
	h, srv := s3Harness(t)
	srv.SetEnv(t)
	h.inProcess(nil)
	ctx := context.Background()
	bs, err := blobstore.Open(ctx, srv.URL("sanwatch"))
	require.NoError(t, err)
	defer bs.Close()
	put := func(keys ...string) {
		for _, k := range keys {
			_, err := bs.Put(ctx, k, strings.NewReader(strings.Repeat("x", 100)), nil)
			require.NoError(t, err)
		}
	}
	put("batches/old-1", "batches/old-2", "batches/old-3", "quarantine/old-1", "quarantine/old-2")
	time.Sleep(7 * time.Second)
	put("batches/new-1", "quarantine/new-1")
	out := h.starter("retention", "--now", "--set", "retention.batches=5s", "--set", "retention.quarantine=5s")
	require.Contains(t, out, "deleted 3 batch objects (300 B) written before")
	require.Contains(t, out, "deleted 2 quarantined objects (200 B) written before")
	var left []string
	require.NoError(t, bs.List(ctx, "", func(o blobstore.Object) (bool, error) {
		left = append(left, o.Key)
		return false, nil
	}))
	require.Equal(t, []string{"batches/new-1", "quarantine/new-1"}, left)
}
