package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
)

// fakeWorkflows is a hand-written Workflows: start and status say what the
// workflow service answers; starts records the batches started.
type fakeWorkflows struct {
	mu     sync.Mutex
	start  func(batchID, blob string) error
	status func(workflowID string) (string, error)
	starts []string // batch ids, in order
}

func (f *fakeWorkflows) WorkflowID(batchID string) string { return "ingest-" + short(batchID) }

func (f *fakeWorkflows) StartIngest(_ context.Context, batchID, blob string) error {
	f.mu.Lock()
	start := f.start
	f.mu.Unlock()
	if start != nil {
		if err := start(batchID, blob); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, batchID)
	return nil
}

func (f *fakeWorkflows) IngestStatus(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	status := f.status
	f.mu.Unlock()
	if status == nil {
		return "Running", nil
	}
	return status(id)
}

func (f *fakeWorkflows) setStart(fn func(batchID, blob string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start = fn
}

func (f *fakeWorkflows) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.starts...)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is one test's receiver: a real SQLite store, a file batch store, the
// fake workflows, and a server on loopback.
type rig struct {
	t       *testing.T
	st      *store.SQLite
	batches *blobstore.Store
	wf      *fakeWorkflows
	in      *Intake
	srv     *Server
	url     string // http(s)://127.0.0.1:port
	client  *http.Client
	logs    *syncBuffer
}

// newIntake returns an intake over a fresh store and batch store in dir.
func newIntake(t *testing.T, dir string) (*Intake, *store.SQLite, *fakeWorkflows, *syncBuffer) {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(dir, "sanwatch.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	batches, err := blobstore.Open(context.Background(), filepath.Join(dir, "batches"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = batches.Close() })
	wf := &fakeWorkflows{}
	logs := &syncBuffer{}
	in := &Intake{
		Store: st, Batches: batches, Workflows: wf,
		Limits: Limits{
			MaxBody: 1 << 20, MaxInflated: 4 << 20, MaxRejectRatio: 0.5,
			MaxFutureSkew: time.Hour, MaxErrors: 20, StartTimeout: time.Second, RetryAfter: 7 * time.Second,
		},
		TempDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return in, st, wf, logs
}

// newRig starts a receiver with opts (Addr and timeouts defaulted) on a
// loopback listener; mutate may change the intake first.
func newRig(t *testing.T, opts Options, mutate func(*Intake)) *rig {
	t.Helper()
	dir := t.TempDir()
	in, st, wf, logs := newIntake(t, dir)
	if mutate != nil {
		mutate(in)
	}
	if opts.BoxRate == 0 {
		opts.BoxRate, opts.BoxBurst = 1000, 1000
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 5 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	srv := NewServer(in, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	return &rig{t: t, st: st, batches: in.Batches, wf: wf, in: in, srv: srv,
		url: scheme + "://" + ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second}, logs: logs}
}

// token makes a token for box and returns it.
func (r *rig) token(box string) string {
	r.t.Helper()
	tok, rec, err := NewToken(box, "test", 0, time.Now())
	require.NoError(r.t, err)
	require.NoError(r.t, r.st.PutToken(context.Background(), rec))
	return tok
}

// answer is a decoded reply.
type answer struct {
	status  int
	header  http.Header
	receipt Receipt
	err     errorBody
	raw     string
}

// do sends a request and decodes the answer.
func (r *rig) do(req *http.Request) answer {
	r.t.Helper()
	resp, err := r.client.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if resp.StatusCode == http.StatusAccepted {
		require.NoError(r.t, json.Unmarshal(b, &a.receipt), string(b))
	} else if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && resp.StatusCode >= 400 {
		require.NoError(r.t, json.Unmarshal(b, &a.err), string(b))
	}
	return a
}

// post posts body with token (none when empty) and extra headers.
func (r *rig) post(token string, body io.Reader, header ...string) answer {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+"/v1/telemetry", body)
	require.NoError(r.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return r.do(req)
}

// get fetches a batch's status with token.
func (r *rig) get(token, id string) (int, BatchStatus, errorBody) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+"/v1/batches/"+id, nil)
	require.NoError(r.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.client.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	var st BatchStatus
	var eb errorBody
	b, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	if resp.StatusCode == http.StatusOK {
		require.NoError(r.t, json.Unmarshal(b, &st))
	} else {
		require.NoError(r.t, json.Unmarshal(b, &eb), string(b))
	}
	return resp.StatusCode, st, eb
}

// t0 is the time of the first sample of generated batches: in the past,
// so that no sample is refused as from the future.
var t0 = time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Minute)

// csvBatch returns a CSV batch of n samples of box, starting at minute seq
// (different seq, different content).
func csvBatch(box string, seq, n int) []byte {
	var b bytes.Buffer
	b.WriteString("time,box,component,metric,value\n")
	for i := range n {
		at := t0.Add(time.Duration(seq*n+i) * time.Minute)
		fmt.Fprintf(&b, "%s,%s,pool/p0,pool.used_bytes,%d\n", at.Format(time.RFC3339), box, 1000+i)
	}
	return b.Bytes()
}

// jsonlBatch is csvBatch as JSON Lines.
func jsonlBatch(box string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		fmt.Fprintf(&b, `{"time":%q,"box":%q,"component":"port/0:1:1","metric":"port.crc_errors","value":%d}`+"\n", at.Format(time.RFC3339), box, i)
	}
	return b.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return out.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blobs lists the keys of the batch store.
func (r *rig) blobs() []string {
	r.t.Helper()
	var keys []string
	require.NoError(r.t, r.batches.List(context.Background(), "", func(o blobstore.Object) (bool, error) {
		keys = append(keys, o.Key)
		return false, nil
	}))
	return keys
}
