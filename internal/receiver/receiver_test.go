package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
)

func TestPostStoresAndStarts(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0"}, nil)
	tok := r.token("b1")
	for _, tc := range []struct {
		name string
		body []byte
		hdr  []string
	}{
		{"csv", csvBatch("b1", 0, 10), nil},
		{"jsonl", jsonlBatch("b1", 10), nil},
		{"gzip by magic", gzipped(t, csvBatch("b1", 1, 10)), nil},
		{"gzip declared", gzipped(t, csvBatch("b1", 2, 10)), []string{"Content-Encoding", "gzip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.post(tok, bytes.NewReader(tc.body), tc.hdr...)
			require.Equal(t, http.StatusAccepted, a.status, a.raw)
			id := sha(tc.body)
			require.Equal(t, Receipt{BatchID: id, WorkflowID: "ingest-" + id[:16], Status: StatusStarted,
				Size: int64(len(tc.body)), Samples: 10}, a.receipt)
			require.Equal(t, "/v1/batches/"+id, a.header.Get("Location"))

			// The batch store keeps the bytes as sent, with the box.
			rd, err := r.batches.Open(context.Background(), blobstore.BatchKey(id))
			require.NoError(t, err)
			got, err := io.ReadAll(rd)
			require.NoError(t, err)
			require.NoError(t, rd.Close())
			require.Equal(t, tc.body, got)
			_, meta, err := r.batches.Stat(context.Background(), blobstore.BatchKey(id))
			require.NoError(t, err)
			require.Equal(t, "b1", meta["box"])

			rec, err := r.st.Intake(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, "b1", rec.Box)
			require.Equal(t, store.SourceHTTP, rec.Source)
			require.Equal(t, 1, rec.Attempts)
			require.False(t, rec.StartedAt.IsZero())
			require.Contains(t, r.wf.started(), id)

			code, st, _ := r.get(tok, id)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, BatchStarted, st.Status)
			require.Equal(t, "Running", st.Workflow)
			require.Nil(t, st.Batch)
		})
	}
	entries, err := os.ReadDir(r.in.TempDir)
	require.NoError(t, err)
	require.Empty(t, entries, "temporary bodies are removed")
}

func TestDuplicatePostIsStoredOnce(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0"}, nil)
	tok := r.token("b1")
	body := csvBatch("b1", 0, 20)
	first := r.post(tok, bytes.NewReader(body))
	require.Equal(t, http.StatusAccepted, first.status, first.raw)
	require.False(t, first.receipt.Duplicate)
	second := r.post(tok, bytes.NewReader(body))
	require.Equal(t, http.StatusAccepted, second.status, second.raw)
	require.True(t, second.receipt.Duplicate)
	require.Equal(t, first.receipt.BatchID, second.receipt.BatchID)
	require.Equal(t, first.receipt.WorkflowID, second.receipt.WorkflowID)
	require.Equal(t, StatusStarted, second.receipt.Status)
	require.Equal(t, []string{blobstore.BatchKey(sha(body))}, r.blobs())
	require.Equal(t, []string{sha(body)}, r.wf.started(), "the workflow is started once")
}

func TestBatchStatus(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0"}, nil)
	tok, other := r.token("b1"), r.token("b2")
	body := csvBatch("b1", 0, 5)
	a := r.post(tok, bytes.NewReader(body))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
	id := a.receipt.BatchID

	// Once the workflow stored it, the record is reported.
	stored := time.Now().UTC().Truncate(time.Millisecond)
	require.NoError(t, r.st.PutBatch(context.Background(), store.Batch{ID: id, Path: blobstore.BatchKey(id), Format: "csv",
		Status: store.BatchStored, Accepted: 5, Rejected: 0, Boxes: []string{"b1"}, StoredAt: stored}))
	r.wf.mu.Lock()
	r.wf.status = func(string) (string, error) { return "Completed", nil }
	r.wf.mu.Unlock()
	code, st, _ := r.get(tok, id)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, store.BatchStored, st.Status)
	require.Equal(t, "Completed", st.Workflow)
	require.Equal(t, &BatchRecord{Status: store.BatchStored, Format: "csv", Accepted: 5, StoredAt: stored}, st.Batch)
	require.Equal(t, "b1", st.Box)
	require.Equal(t, a.receipt.WorkflowID, st.WorkflowID)

	// Another box, an unknown id and a malformed one: 404; no token: 401.
	code, _, eb := r.get(other, id)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, fmt.Sprintf("no batch %q of box %q", id, "b2"), eb.Error)
	code, _, _ = r.get(tok, strings.Repeat("0", 64))
	require.Equal(t, http.StatusNotFound, code)
	code, _, eb = r.get(tok, "nothex")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, eb.Error, "64 hex digits")
	code, _, _ = r.get("", id)
	require.Equal(t, http.StatusUnauthorized, code)

	// A failed workflow with no record says so.
	b2 := csvBatch("b1", 1, 5)
	a = r.post(tok, bytes.NewReader(b2))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
	r.wf.mu.Lock()
	r.wf.status = func(string) (string, error) { return "Failed", nil }
	r.wf.mu.Unlock()
	code, st, _ = r.get(tok, a.receipt.BatchID)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, BatchFailed, st.Status)
}

// bomb returns a gzip stream of about size bytes of CSV lines of box once
// inflated: repetitive lines deflate about a thousandfold.
func bomb(t *testing.T, box string, size int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write([]byte("time,box,component,metric,value\n"))
	require.NoError(t, err)
	line := []byte(t0.Format(time.RFC3339) + "," + box + ",pool/p0,pool.used_bytes,1\n")
	chunk := bytes.Repeat(line, 64<<10/len(line))
	for n := 0; n < size; n += len(chunk) {
		_, err = zw.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// endless is a body that never ends: n bytes of CSV lines served lazily.
type endless struct {
	line []byte
	n    int64
	off  int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	w := 0
	for w < len(p) && e.n > 0 {
		c := copy(p[w:], e.line[e.off:])
		w += c
		e.off = (e.off + c) % len(e.line)
		e.n -= int64(c)
	}
	return w, nil
}

func TestRefusals(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0"}, nil)
	ctx := context.Background()
	tok := r.token("b1")
	revoked := r.token("b1")
	_, err := r.st.RevokeTokens(ctx, "", mustTokenID(t, r, revoked), time.Now())
	require.NoError(t, err)
	expired, rec, err := NewToken("b1", "", time.Hour, time.Now().Add(-2*time.Hour))
	require.NoError(t, err)
	require.NoError(t, r.st.PutToken(ctx, rec))

	good := csvBatch("b1", 0, 10)
	zeros := gzipped(t, make([]byte, 10<<20))
	csvBomb := bomb(t, "b1", 64<<20)
	require.Less(t, len(csvBomb), 1<<20, "the bomb is small as sent")
	corrupt := gzipped(t, csvBatch("b1", 3, 100))
	corrupt = corrupt[:len(corrupt)/2]
	mostlyBad := []byte("time,box,component,metric,value\n" + t0.Format(time.RFC3339) + ",b1,pool/p0,pool.used_bytes,1\nnot,a,line\nbad,bad,bad,bad,bad\n")
	line := []byte(t0.Format(time.RFC3339) + ",b1,pool/p0,pool.used_bytes,1\n")

	for _, tc := range []struct {
		name   string
		token  string
		body   io.Reader
		hdr    []string
		status int
		reason string // the error, or a prefix of it when it ends with "..."
	}{
		{"no credentials", "", bytes.NewReader(good), nil, http.StatusUnauthorized, errUnauthorized},
		{"unknown token", "swt_forged", bytes.NewReader(good), nil, http.StatusUnauthorized, "unauthorised: unknown token"},
		{"revoked token", revoked, bytes.NewReader(good), nil, http.StatusUnauthorized, "unauthorised: token " + mustTokenID(t, r, revoked) + " was revoked"},
		{"expired token", expired, bytes.NewReader(good), nil, http.StatusUnauthorized, "unauthorised: token " + rec.ID + " expired at ..."},
		{"basic auth", "", bytes.NewReader(good), []string{"Authorization", "Basic Zm9vOmJhcg=="}, http.StatusUnauthorized, `unauthorised: Authorization must be "Bearer <token>"`},
		{"another box's samples", tok, bytes.NewReader(csvBatch("b2", 0, 10)), nil, http.StatusForbidden,
			`wrong box: the body has samples of box "b2"; this credential is for box "b1"`},
		{"too large, declared", tok, bytes.NewReader(make([]byte, 2<<20)), nil, http.StatusRequestEntityTooLarge,
			"body too large: 2097152 bytes, more than 1048576 (receiver.max_body)"},
		{"too large, streamed (2 GB)", tok, io.MultiReader(strings.NewReader("time,box,component,metric,value\n"), &endless{line: line, n: 2 << 30}), nil, http.StatusRequestEntityTooLarge,
			"body too large: more than 1048576 bytes (receiver.max_body)"},
		{"gzip bomb of CSV", tok, bytes.NewReader(csvBomb), nil, http.StatusRequestEntityTooLarge,
			"body too large once gunzipped: more than 4194304 bytes (receiver.max_inflated)"},
		{"gzip bomb of zeros", tok, bytes.NewReader(zeros), nil, http.StatusUnsupportedMediaType,
			"unsupported format: body: binary data (NUL byte at offset 0), not CSV or JSON Lines (CSV or JSON Lines, gzip or not)"},
		{"gzip in gzip", tok, bytes.NewReader(gzipped(t, gzipped(t, good))), nil, http.StatusUnsupportedMediaType,
			"unsupported format: body: gzip inside gzip"},
		{"not telemetry", tok, strings.NewReader("hello,world\n1,2\n"), nil, http.StatusUnsupportedMediaType, "unsupported format: ..."},
		{"a JSON array", tok, strings.NewReader(`[{"box":"b1"}]`), nil, http.StatusUnsupportedMediaType, "unsupported format: ..."},
		{"empty", tok, strings.NewReader(""), nil, http.StatusUnsupportedMediaType, "unsupported format: body: empty file (CSV or JSON Lines, gzip or not)"},
		{"unknown encoding", tok, bytes.NewReader(good), []string{"Content-Encoding", "br"}, http.StatusUnsupportedMediaType,
			`unsupported Content-Encoding "br": send gzip or none`},
		{"declared gzip, plain body", tok, bytes.NewReader(good), []string{"Content-Encoding", "gzip"}, http.StatusBadRequest,
			"body: Content-Encoding is gzip, but the body is not gzip"},
		{"corrupt gzip", tok, bytes.NewReader(corrupt), nil, http.StatusBadRequest, "body truncated: ..."},
		{"header only", tok, strings.NewReader("time,box,component,metric,value\n"), nil, http.StatusUnprocessableEntity,
			"body: no samples, only a header"},
		{"mostly bad lines", tok, bytes.NewReader(mostlyBad), nil, http.StatusUnprocessableEntity,
			"body: 2 of 3 lines rejected (67% > 50% allowed); first: body:3: ..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.post(tc.token, tc.body, tc.hdr...)
			require.Equal(t, tc.status, a.status, a.raw)
			require.Equal(t, tc.status, a.err.Status)
			if prefix, ok := strings.CutSuffix(tc.reason, "..."); ok {
				require.True(t, strings.HasPrefix(a.err.Error, prefix), "%q does not start with %q", a.err.Error, prefix)
			} else {
				require.Equal(t, tc.reason, a.err.Error)
			}
			if tc.status == http.StatusUnauthorized {
				require.Equal(t, `Bearer realm="sanwatch"`, a.header.Get("WWW-Authenticate"))
			}
		})
	}
	// Nothing refused was stored, started or recorded.
	require.Empty(t, r.blobs())
	require.Empty(t, r.wf.started())
	n, err := r.st.CountPendingIntakes(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	entries, err := os.ReadDir(r.in.TempDir)
	require.NoError(t, err)
	require.Empty(t, entries, "temporary bodies are removed")
	// The tokens never reach the log.
	for _, secret := range []string{tok, revoked, expired} {
		require.NotContains(t, r.logs.String(), secret)
	}
	require.Contains(t, r.logs.String(), "post refused")
}

func mustTokenID(t *testing.T, r *rig, tok string) string {
	t.Helper()
	rec, err := r.st.TokenByHash(context.Background(), HashToken(tok))
	require.NoError(t, err)
	return rec.ID
}

func TestRateLimitPerBox(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0", BoxRate: 0.5, BoxBurst: 2}, nil)
	b1, b2 := r.token("b1"), r.token("b2")
	for i := range 2 {
		a := r.post(b1, bytes.NewReader(csvBatch("b1", i, 5)))
		require.Equal(t, http.StatusAccepted, a.status, a.raw)
	}
	a := r.post(b1, bytes.NewReader(csvBatch("b1", 2, 5)))
	require.Equal(t, http.StatusTooManyRequests, a.status, a.raw)
	require.Equal(t, "2", a.header.Get("Retry-After"), "one post per 2 s")
	require.Equal(t, `too many posts from box "b1": at most 0.5 a second, 2 at once (receiver.box_rate, receiver.box_burst)`, a.err.Error)
	// Another box has its own budget.
	a = r.post(b2, bytes.NewReader(csvBatch("b2", 0, 5)))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
}

func TestTemporalDownQueuesThenDrains(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0"}, nil)
	ctx := context.Background()
	tok := r.token("b1")
	down := errors.New("dial tcp 127.0.0.1:7233: connect: connection refused")
	r.wf.setStart(func(string, string) error { return down })
	var ids []string
	for i := range 3 {
		a := r.post(tok, bytes.NewReader(csvBatch("b1", i, 5)))
		require.Equal(t, http.StatusAccepted, a.status, a.raw)
		require.Equal(t, StatusQueued, a.receipt.Status)
		ids = append(ids, a.receipt.BatchID)
	}
	rec, err := r.st.Intake(ctx, ids[0])
	require.NoError(t, err)
	require.True(t, rec.StartedAt.IsZero())
	require.Equal(t, 1, rec.Attempts)
	require.Equal(t, down.Error(), rec.LastError)
	code, st, _ := r.get(tok, ids[0])
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, BatchQueued, st.Status)
	require.Equal(t, down.Error(), st.LastError)

	// A drain while it is still down leaves them queued.
	res, err := r.in.Drain(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Started)
	require.GreaterOrEqual(t, res.Failed, 1)
	require.Equal(t, 3, res.Pending)

	// Temporal is back: the next drain starts them all, oldest first.
	r.wf.setStart(nil)
	res, err = r.in.Drain(ctx)
	require.NoError(t, err)
	require.Equal(t, DrainResult{Started: 3, Pending: 0}, res)
	require.ElementsMatch(t, ids, r.wf.started())
	code, st, _ = r.get(tok, ids[0])
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, BatchStarted, st.Status)
	require.Equal(t, 3, st.Attempts)
	require.Empty(t, st.LastError)
}

func TestSweepDrainsTheOutbox(t *testing.T) {
	down := errors.New("temporal unreachable")
	var wf *fakeWorkflows
	r := newRig(t, Options{Addr: "127.0.0.1:0", SweepEvery: 50 * time.Millisecond}, func(in *Intake) {
		wf = in.Workflows.(*fakeWorkflows)
		wf.setStart(func(string, string) error { return down })
	})
	tok := r.token("b1")
	a := r.post(tok, bytes.NewReader(csvBatch("b1", 0, 5)))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
	require.Equal(t, StatusQueued, a.receipt.Status)
	wf.setStart(nil)
	require.Eventually(t, func() bool {
		rec, err := r.st.Intake(context.Background(), a.receipt.BatchID)
		return err == nil && !rec.StartedAt.IsZero()
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{a.receipt.BatchID}, wf.started())
}

// failingStore is the real store whose RecordIntake fails, as a database
// that went down during a post.
type failingStore struct {
	Store
	err error
}

func (f failingStore) RecordIntake(context.Context, store.Intake) (bool, error) { return false, f.err }

func TestCannotStoreAnswers503(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, in *Intake)
		reason string
		// started: the workflow was started before the database failed
		// (harmless: the box sends the batch again, and the start is idempotent).
		started bool
	}{
		{"batch store gone", func(t *testing.T, in *Intake) {
			// The batch directory is replaced by a file: every write fails.
			dir := filepath.Join(filepath.Dir(in.TempDir), "gone")
			b, err := blobstore.Open(context.Background(), dir)
			require.NoError(t, err)
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.WriteFile(dir, []byte("x"), 0o600))
			in.Batches = b
		}, "cannot store the body: batch store: try again later", false},
		{"database down", func(t *testing.T, in *Intake) {
			in.Store = failingStore{Store: in.Store, err: errors.New("connection refused")}
		}, "cannot record the batch: database: try again later", true},
		{"no temporary space", func(t *testing.T, in *Intake) {
			in.TempDir = filepath.Join(in.TempDir, "missing")
		}, "cannot take the body: temporary file: try again later", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{Addr: "127.0.0.1:0"}, func(in *Intake) { tc.break_(t, in) })
			tok := r.token("b1")
			a := r.post(tok, bytes.NewReader(csvBatch("b1", 0, 5)))
			require.Equal(t, http.StatusServiceUnavailable, a.status, a.raw)
			require.Equal(t, "7", a.header.Get("Retry-After"))
			require.Equal(t, tc.reason, a.err.Error)
			require.Equal(t, tc.started, len(r.wf.started()) == 1)
			n, err := r.st.CountPendingIntakes(context.Background())
			require.NoError(t, err)
			require.Zero(t, n, "nothing recorded as accepted")
		})
	}
}

func TestAcceptWithoutHTTP(t *testing.T) {
	in, st, wf, _ := newIntake(t, t.TempDir())
	ctx := context.Background()
	// A drop file may hold several boxes.
	body := append(csvBatch("b1", 0, 3), bytes.TrimPrefix(csvBatch("b2", 0, 3), []byte("time,box,component,metric,value\n"))...)
	rc, err := in.Accept(ctx, Source{Name: "fleet-0001.csv"}, bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, StatusStarted, rc.Status)
	require.EqualValues(t, 6, rc.Samples)
	rec, err := st.Intake(ctx, rc.BatchID)
	require.NoError(t, err)
	require.Equal(t, store.Intake{BatchID: sha(body), Box: "", Blob: blobstore.BatchKey(sha(body)), Size: int64(len(body)),
		Source: store.SourceDrop, SourceName: "fleet-0001.csv", ReceivedAt: rec.ReceivedAt, WorkflowID: wf.WorkflowID(sha(body)),
		StartedAt: rec.StartedAt, Attempts: 1}, rec)

	// A refusal is a *RejectError naming the file and the line.
	_, err = in.Accept(ctx, Source{Kind: store.SourceDrop, Name: "notes.txt"}, strings.NewReader("dear operator,\n"))
	var rej *RejectError
	require.ErrorAs(t, err, &rej)
	require.Equal(t, http.StatusUnsupportedMediaType, rej.Status)
	require.Contains(t, rej.Reason, "notes.txt")
	var refused interface{ Rejected() bool }
	require.ErrorAs(t, err, &refused)
	require.True(t, refused.Rejected())

	// A store failure is an *UnavailableError, not a refusal.
	in.TempDir = filepath.Join(t.TempDir(), "missing")
	_, err = in.Accept(ctx, Source{Kind: store.SourceDrop, Name: "x.csv"}, bytes.NewReader(body))
	var un *UnavailableError
	require.ErrorAs(t, err, &un)
	require.False(t, errors.As(err, &rej))
	require.False(t, errors.As(err, &refused), "a transient failure is not a refusal")
}

func TestNewToken(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tok, rec, err := NewToken("b1", "rack 4", 720*time.Hour, now)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, TokenPrefix))
	require.Len(t, tok, len(TokenPrefix)+43, "32 random bytes, base64url")
	require.Equal(t, HashToken(tok), rec.Hash)
	require.NotContains(t, rec.Hash, tok)
	require.Equal(t, now.Add(720*time.Hour), rec.ExpiresAt)
	require.Equal(t, "b1", rec.Box)
	require.True(t, strings.HasPrefix(rec.ID, "tok_"))
	tok2, rec2, err := NewToken("b1", "", 0, now)
	require.NoError(t, err)
	require.NotEqual(t, tok, tok2)
	require.NotEqual(t, rec.ID, rec2.ID)
	require.True(t, rec2.ExpiresAt.IsZero())
	_, _, err = NewToken("", "", 0, now)
	require.EqualError(t, err, "new token: box is required")
}

func TestMetrics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	down := errors.New("temporal unreachable")
	r := newRig(t, Options{Addr: "127.0.0.1:0", Metrics: m, SweepEvery: time.Hour}, func(in *Intake) {
		in.Workflows.(*fakeWorkflows).setStart(func(string, string) error { return down })
	})
	tok := r.token("b1")
	body := csvBatch("b1", 0, 7)
	for range 2 {
		a := r.post(tok, bytes.NewReader(body))
		require.Equal(t, http.StatusAccepted, a.status, a.raw)
	}
	require.Equal(t, http.StatusUnauthorized, r.post("", bytes.NewReader(body)).status)
	require.Equal(t, http.StatusForbidden, r.post(tok, bytes.NewReader(csvBatch("b2", 0, 7))).status)
	require.Equal(t, 2.0, testutil.ToFloat64(m.Posts.WithLabelValues("202")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Posts.WithLabelValues("401")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Posts.WithLabelValues("403")))
	require.Equal(t, float64(2*len(body)), testutil.ToFloat64(m.Bytes))
	require.Equal(t, 14.0, testutil.ToFloat64(m.Samples))
	// The outbox gauge follows the drains of the server's loop.
	r.srv.drainOnce(context.Background())
	require.Equal(t, 1.0, testutil.ToFloat64(m.Outbox))
	r.wf.setStart(nil)
	r.srv.drainOnce(context.Background())
	require.Equal(t, 0.0, testutil.ToFloat64(m.Outbox))
}

// TestDrainStopsAtTheFirstFailure queues many batches while starts time
// out: a drain pass gives up after the starts in flight, instead of
// waiting out the timeout for every batch.
func TestDrainStopsAtTheFirstFailure(t *testing.T) {
	in, _, wf, _ := newIntake(t, t.TempDir())
	ctx := context.Background()
	wf.setStart(func(string, string) error { return errors.New("down") })
	for i := range 40 {
		rc, err := in.Accept(ctx, Source{Box: "b1", Kind: store.SourceHTTP}, bytes.NewReader(csvBatch("b1", i, 3)))
		require.NoError(t, err)
		require.Equal(t, StatusQueued, rc.Status)
	}
	wf.setStart(func(string, string) error {
		time.Sleep(100 * time.Millisecond)
		return context.DeadlineExceeded
	})
	res, err := in.Drain(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, res.Failed, drainParallel+1, "only the starts in flight at the first failure are tried")
	require.Equal(t, 40, res.Pending)
}
