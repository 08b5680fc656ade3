package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// withBatchStore gives the fixture a file:// batch store in its directory.
func withBatchStore(t *testing.T, f *fixture) *blobstore.Store {
	t.Helper()
	bs, err := blobstore.Open(context.Background(), "file://"+filepath.Join(f.dir, "bucket"))
	require.NoError(t, err)
	t.Cleanup(func() { bs.Close() })
	f.acts.Batches = bs
	return bs
}

// putBatch writes body to batches/<sha256> with its file name, as `starter ingest` does.
func putBatch(t *testing.T, bs *blobstore.Store, name, body string) (key, id string) {
	t.Helper()
	id = sha256hex(body)
	key = blobstore.BatchKey(id)
	_, err := bs.Put(context.Background(), key, strings.NewReader(body), map[string]string{MetaName: name})
	require.NoError(t, err)
	return key, id
}

func sha256hex(s string) string {
	var src batchSource
	src.open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
	id, err := src.hash(context.Background())
	if err != nil {
		panic(err)
	}
	return id
}

func TestStoreBatchFromBlob(t *testing.T) {
	f := newFixture(t)
	bs := withBatchStore(t, f)
	ctx := context.Background()
	key, id := putBatch(t, bs, "good.csv", latencyCSV("box-0001")+"2026-11-01T00:00:00Z,box-0001,volume/vol0,volume.read_latency_ms,x\n")

	val, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: key, BatchID: id[:16]})
	require.NoError(t, err)
	var sum BatchSummary
	require.NoError(t, val.Get(&sum))
	require.Equal(t, int64(576), sum.Accepted)
	require.Equal(t, key, sum.Path, "the record shows the object key")
	require.Equal(t, []string{`good.csv:578: value "x" is not a number`}, sum.Errors, "lines are named by the file name in the object's metadata")
	b, err := f.acts.Store.Batch(ctx, id)
	require.NoError(t, err)
	require.Equal(t, key, b.Path)

	// Again: recognised, not stored twice; and once retention has deleted
	// the object, the batch is still known as stored.
	val, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: key})
	require.NoError(t, err)
	require.NoError(t, val.Get(&sum))
	require.True(t, sum.AlreadyStored)
	require.NoError(t, bs.Delete(ctx, key))
	val, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: key, BatchID: id})
	require.NoError(t, err)
	require.NoError(t, val.Get(&sum))
	require.True(t, sum.AlreadyStored)
	require.Equal(t, int64(576), sum.Accepted)
	stats, err := f.acts.Store.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(576), stats.Samples)

	cases := []struct {
		name, path, blob, errType, msg string
	}{
		{name: "quarantine key", blob: "quarantine/" + id, errType: ErrTypePathNotAllowed,
			msg: `store batch: object key "quarantine/` + id + `" is not a batch: a batch key starts with "batches/" and has no empty, "." or ".." segments`},
		{name: "dot-dot", blob: "batches/../quarantine/" + id, errType: ErrTypePathNotAllowed, msg: "is not a batch"},
		{name: "prefix only", blob: "batches/", errType: ErrTypePathNotAllowed, msg: "is not a batch"},
		{name: "empty segment", blob: "batches//x", errType: ErrTypePathNotAllowed, msg: "is not a batch"},
		{name: "control character", blob: "batches/a\nb", errType: ErrTypePathNotAllowed, msg: "is not a batch"},
		{name: "missing object", blob: "batches/0123", errType: ErrTypeInvalidInput,
			msg: "store batch: object batches/0123 not found in file://" + filepath.Join(f.dir, "bucket") + ": it was never written there, or it was quarantined or deleted by retention (retention.batches)"},
		{name: "path and blob", path: "/etc/hostname", blob: key, errType: ErrTypeInvalidInput, msg: "both path"},
		{name: "neither", errType: ErrTypeInvalidInput, msg: "store batch: path and blob are empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: tc.path, Blob: tc.blob})
			require.Error(t, err)
			require.Equal(t, tc.errType, appErrType(err))
			require.Contains(t, err.Error(), tc.msg)
			var app *temporal.ApplicationError
			require.True(t, errors.As(err, &app) && app.NonRetryable(), "%v", err)
		})
	}
}

// TestStoreBatchQuarantinesABlob: a refused batch object moves to
// quarantine/<id> with the reason in its metadata; batches/ keeps only
// batches that can be stored.
func TestStoreBatchQuarantinesABlob(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(latencyCSV("box-0002")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	cases := []struct {
		name, file, body, errType, reason string
	}{
		{"mostly bad", "bad.csv", "time,box,component,metric,value\n2026-11-01T00:00:00Z,b,c/1,m,1\n2026-11-01T00:00:00Z,b,c/1,m,x\n2026-11-01T00:00:00Z,b,c/1,m,y\n",
			ErrTypeQuarantined, "bad.csv: quarantined: 2 of 3 lines rejected"},
		{"not telemetry", "h.csv", "a,b\n1,2\n", ErrTypeInvalidTelemetry, "h.csv:1: header is not time,box,component,metric,value"},
		{"only a header", "hdr.csv", "time,box,component,metric,value\n", ErrTypeInvalidTelemetry, "hdr.csv: no samples, only a header"},
		{"truncated gzip", "t.csv.gz", gz.String()[:gz.Len()/2], ErrTypeInvalidTelemetry, "t.csv.gz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bs := withBatchStore(t, f)
			ctx := context.Background()
			key, id := putBatch(t, bs, tc.file, tc.body)
			_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: key})
			require.Equal(t, tc.errType, appErrType(err), "%v", err)
			require.Contains(t, err.Error(), tc.reason)

			ok, err := bs.Exists(ctx, key)
			require.NoError(t, err)
			require.False(t, ok, "the batch object left batches/")
			obj, meta, err := bs.Stat(ctx, blobstore.QuarantineKey(id))
			require.NoError(t, err)
			require.EqualValues(t, len(tc.body), obj.Size)
			require.Contains(t, meta[MetaReason], tc.reason)
			require.Equal(t, tc.file, meta[MetaName])
			b, err := f.acts.Store.Batch(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.BatchQuarantined, b.Status)
			require.Equal(t, blobstore.QuarantineKey(id), b.Path)
			require.Zero(t, b.Accepted)
		})
	}
}

// TestStoreBatchStoreDownIsRetryable: a batch store that does not answer
// is an ordinary (retryable) error, not a verdict on the batch.
func TestStoreBatchStoreDownIsRetryable(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	f := newFixture(t)
	bs, err := blobstore.Open(context.Background(), fmt.Sprintf("s3://sanwatch?endpoint=http://%s&region=us-east-1&use_path_style=true", addr))
	require.NoError(t, err)
	defer bs.Close()
	f.acts.Batches = bs
	_, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: "batches/abc"})
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app))
	require.False(t, app.NonRetryable(), "%v", err)
	require.Contains(t, err.Error(), "store batch: stat batches/abc in s3://sanwatch")
	require.NotContains(t, err.Error(), "test-secret")
}

// TestCutStreamIsNotCorruptContent: a connection cut in the middle of an
// object ends the read with io.ErrUnexpectedEOF, as a truncated gzip stream
// does; only the latter is the batch's fault and quarantines it.
func TestCutStreamIsNotCorruptContent(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(latencyCSV("box-0002")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	half := gz.Bytes()[:gz.Len()/2]
	cases := []struct {
		name    string
		r       io.Reader
		corrupt bool
	}{
		{"truncated gzip file", bytes.NewReader(half), true},
		{"connection cut", io.MultiReader(bytes.NewReader(half), errAfter{io.ErrUnexpectedEOF}), false},
		{"connection reset", io.MultiReader(bytes.NewReader(half), errAfter{errors.New("connection reset by peer")}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := telemetry.Parse(sourceReader{tc.r}, telemetry.Options{Name: "t.csv.gz"}, func([]telemetry.Sample) error { return nil })
			require.Error(t, err)
			require.Equal(t, tc.corrupt, corruptContent(err), "%v", err)
		})
	}
}

type errAfter struct{ err error }

func (e errAfter) Read([]byte) (int, error) { return 0, e.err }

// TestStoreBatchKeepsAPostedBatchToItsBox: a batch box-0001 posted (its
// object says so) that holds samples of box-0002 (lines the receiver
// refused as being from the future, accepted by the worker's later clock)
// is quarantined, and nothing of it is stored; one with only its own
// samples, or a drop file (no box), is stored.
func TestStoreBatchKeepsAPostedBatchToItsBox(t *testing.T) {
	f := newFixture(t)
	bs := withBatchStore(t, f)
	ctx := context.Background()
	cases := []struct {
		name, owner, body, wantErr string
	}{
		{name: "foreign samples", owner: "box-0001", body: latencyCSV("box-0001") + latencyCSV("box-0002")[len("time,box,component,metric,value\n"):],
			wantErr: `posted by box "box-0001", yet it holds samples of box "box-0002"`},
		{name: "own samples", owner: "box-0001", body: latencyCSV("box-0001")},
		{name: "drop file, any box", body: latencyCSV("box-0003") + latencyCSV("box-0004")[len("time,box,component,metric,value\n"):]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := sha256hex(tc.body)
			key := blobstore.BatchKey(id)
			meta := map[string]string{MetaName: tc.name + ".csv"}
			if tc.owner != "" {
				meta[MetaBox] = tc.owner
			}
			_, err := bs.Put(ctx, key, strings.NewReader(tc.body), meta)
			require.NoError(t, err)
			_, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Blob: key, BatchID: id})
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			b, err := f.acts.Store.Batch(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.BatchQuarantined, b.Status)
			latest, err := f.acts.Store.LatestSample(ctx, "box-0002")
			require.ErrorIs(t, err, store.ErrNotFound, "nothing of box-0002 stored (latest %s)", latest)
		})
	}
}
