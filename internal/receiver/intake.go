// Package receiver takes telemetry batches that boxes send home: over
// HTTPS (POST /v1/telemetry, authenticated per box by a bearer token or a
// client certificate) or, through Intake.Accept, from any other source such
// as a drop directory. A body is validated while it streams to a temporary
// file, written to the batch store and recorded in the intake before it is
// acknowledged; its ingest workflow is then started, or left in the outbox
// that Drain empties once the workflow service is reachable again.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Receipt status values: what happened to an accepted batch's workflow.
const (
	// StatusStarted: the ingest workflow is started (or ran before).
	StatusStarted = "started"
	// StatusQueued: the batch is stored and in the outbox; its workflow
	// starts when the workflow service is reachable.
	StatusQueued = "queued"
)

// Source says where a body comes from.
type Source struct {
	// Box is the authenticated box: every sample must be of it. Empty
	// allows samples of any box (a drop directory's files).
	Box string
	// Kind is store.SourceHTTP or store.SourceDrop (empty: drop).
	Kind string
	// Name names the source in errors and logs: a remote address, a file name.
	Name string
	// Gzip is set when the sender declared the body gzip-compressed
	// (Content-Encoding: gzip): a body that is not gzip is then refused.
	// Without it gzip is still detected by its magic bytes.
	Gzip bool
}

// Receipt is the answer to an accepted body.
type Receipt struct {
	BatchID    string `json:"batch_id"`    // hex sha256 of the body as sent
	WorkflowID string `json:"workflow_id"` // of the ingest workflow
	Status     string `json:"status"`      // StatusStarted or StatusQueued
	// Duplicate is true when the same body was accepted before: it is
	// stored once, and the ids are those of the first time.
	Duplicate bool  `json:"duplicate"`
	Size      int64 `json:"size"`     // bytes as sent
	Samples   int64 `json:"samples"`  // good lines
	Rejected  int64 `json:"rejected"` // bad lines (kept out when the batch is stored)
}

// RejectError is the error of a body that is refused for what it is: no
// retry helps. Status is the HTTP status that says why (400, 403, 413,
// 415, 422); Reason says it in words, naming where in the body.
type RejectError struct {
	Status int
	Reason string
}

func (e *RejectError) Error() string { return e.Reason }

// Rejected reports true: the body is refused for good, and offering it
// again cannot help (a drop directory quarantines such a file).
func (e *RejectError) Rejected() bool { return true }

func reject(status int, format string, args ...any) *RejectError {
	return &RejectError{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// UnavailableError is the error of a body that could not be stored (the
// batch store, the database or the temporary disk failed): nothing was
// accepted, and the sender should retry after RetryAfter.
type UnavailableError struct {
	Reason     string
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string { return e.Reason + ": " + e.Err.Error() }

// Unwrap returns the underlying failure.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Workflows starts and describes ingest workflows (Temporal's, in production:
// see app.IngestWorkflows).
type Workflows interface {
	// WorkflowID returns the id of the ingest workflow of a batch.
	WorkflowID(batchID string) string
	// StartIngest starts the ingest workflow of the batch stored under
	// blob. A workflow that is running or completed for the same batch
	// counts as started.
	StartIngest(ctx context.Context, batchID, blob string) error
	// IngestStatus returns the status of an ingest workflow as the
	// service names it (Running, Completed, Failed ...).
	IngestStatus(ctx context.Context, workflowID string) (string, error)
}

// Store is what the receiver needs of the store: tokens, the intake, and
// the records of stored batches.
type Store interface {
	store.IntakeStore
	// Batch returns the record of a stored or quarantined batch, or store.ErrNotFound.
	Batch(ctx context.Context, id string) (store.Batch, error)
}

// Limits bound what a body may be and how long its workflow start may take.
type Limits struct {
	MaxBody     int64 // bytes as sent
	MaxInflated int64 // bytes once gunzipped
	// MaxRejectRatio, MaxFutureSkew and MaxErrors are the ingest limits
	// (ingest.*): a body with more bad lines than MaxRejectRatio is refused.
	MaxRejectRatio float64
	MaxFutureSkew  time.Duration
	MaxErrors      int
	// StartTimeout bounds starting the workflow before answering; past it
	// the batch is queued.
	StartTimeout time.Duration
	// RetryAfter is what a sender is told to wait when the body could not
	// be stored (0: 30s).
	RetryAfter time.Duration
}

// Intake accepts batches: Accept validates and stores one, Drain starts the
// workflows of the outbox. The fields must be set before the first use.
type Intake struct {
	Store     Store
	Batches   *blobstore.Store
	Workflows Workflows
	Limits    Limits
	// TempDir holds bodies while they are validated ("" : the system's).
	TempDir string
	Logger  *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	drainMu sync.Mutex // one drain at a time per process
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Intake) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (in *Intake) retryAfter() time.Duration {
	if in.Limits.RetryAfter > 0 {
		return in.Limits.RetryAfter
	}
	return 30 * time.Second
}

func (in *Intake) unavailable(reason string, err error) *UnavailableError {
	return &UnavailableError{Reason: reason, RetryAfter: in.retryAfter(), Err: err}
}

// tempPrefix starts the names of the temporary files of bodies.
const tempPrefix = "post-"

// Accept validates a body from src, stores it in the batch store, tries to
// start its ingest workflow and records it in the intake. It returns a
// *RejectError for a body that is refused, an *UnavailableError when the
// body could not be stored, and otherwise a receipt: a batch whose workflow
// did not start in time is stored and queued, never lost.
func (in *Intake) Accept(ctx context.Context, src Source, body io.Reader) (Receipt, error) {
	if src.Kind == "" {
		src.Kind = store.SourceDrop
	}
	f, err := os.CreateTemp(in.TempDir, tempPrefix+"*")
	if err != nil {
		return Receipt{}, in.unavailable("cannot take the body: temporary file", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	v, err := in.validate(src, body, f)
	if err != nil {
		return Receipt{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Receipt{}, in.unavailable("cannot take the body: temporary file", err)
	}
	rec := store.Intake{
		BatchID: v.id, Box: src.Box, Blob: blobstore.BatchKey(v.id), Size: v.size,
		Source: src.Kind, SourceName: src.Name, ReceivedAt: in.now().UTC(), WorkflowID: in.Workflows.WorkflowID(v.id),
	}
	if err := in.putBlob(ctx, rec, f); err != nil {
		return Receipt{}, err
	}
	r := Receipt{BatchID: v.id, WorkflowID: rec.WorkflowID, Size: v.size,
		Samples: v.res.Accepted, Rejected: v.res.Rejected, Status: StatusStarted}
	prev, err := in.Store.Intake(ctx, v.id)
	switch {
	case err == nil:
		// Accepted before: the first record stands.
		r.Duplicate, r.WorkflowID = true, prev.WorkflowID
		if prev.StartedAt.IsZero() {
			r.Status = in.start(ctx, prev)
		}
		return r, nil
	case !errors.Is(err, store.ErrNotFound):
		return Receipt{}, in.unavailable("cannot read the batch's record: database", err)
	}
	// A new batch: its workflow is started first and the intake recorded
	// with the outcome, one write. The body is in the batch store already,
	// and until the intake is recorded no one has been told the batch was
	// accepted: a receiver that dies in between loses nothing the box
	// does not send again (and starting the workflow again is harmless).
	rec.Attempts = 1
	if err := in.startWorkflow(ctx, rec); err != nil {
		r.Status, rec.LastError = StatusQueued, err.Error()
	} else {
		rec.StartedAt = in.now().UTC()
	}
	// Recorded even when the caller has gone away: the workflow may run.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	created, err := in.Store.RecordIntake(rctx, rec)
	cancel()
	if err != nil {
		return Receipt{}, in.unavailable("cannot record the batch: database", err)
	}
	if !created {
		// The same body, posted at the same moment, was recorded first.
		r.Duplicate = true
		if r.Status == StatusStarted {
			in.markStarted(ctx, rec.BatchID)
		}
	}
	return r, nil
}

// putBlob writes the body to the batch store unless it is there already.
func (in *Intake) putBlob(ctx context.Context, rec store.Intake, f *os.File) error {
	ok, err := in.Batches.Exists(ctx, rec.Blob)
	if err != nil {
		return in.unavailable("cannot store the body: batch store", err)
	}
	if ok {
		return nil
	}
	meta := map[string]string{"box": rec.Box, "source": rec.Source}
	if _, err := in.Batches.Put(ctx, rec.Blob, f, meta); err != nil {
		return in.unavailable("cannot store the body: batch store", err)
	}
	return nil
}

// startWorkflow tries to start the workflow of an intake within the start
// timeout, even when the caller has gone away.
func (in *Intake) startWorkflow(ctx context.Context, rec store.Intake) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.Limits.StartTimeout)
	defer cancel()
	err := in.Workflows.StartIngest(sctx, rec.BatchID, rec.Blob)
	if err != nil {
		in.logger().Warn("ingest workflow not started: batch queued in the outbox",
			"batch", short(rec.BatchID), "workflow", rec.WorkflowID, "error", err)
	}
	return err
}

// markStarted records that an intake's workflow started.
func (in *Intake) markStarted(ctx context.Context, batchID string) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := in.Store.MarkIntakeStarted(mctx, batchID, in.now().UTC()); err != nil {
		// The drain starts it again, which is harmless: the start is idempotent.
		in.logger().Error("record started workflow", "batch", short(batchID), "error", err)
	}
}

// start tries to start the workflow of a recorded intake and records the
// outcome; it returns StatusStarted or StatusQueued.
func (in *Intake) start(ctx context.Context, rec store.Intake) string {
	if err := in.startWorkflow(ctx, rec); err != nil {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if merr := in.Store.MarkIntakeFailed(mctx, rec.BatchID, err.Error()); merr != nil {
			in.logger().Error("record failed workflow start", "batch", short(rec.BatchID), "error", merr)
		}
		return StatusQueued
	}
	in.markStarted(ctx, rec.BatchID)
	return StatusStarted
}

// DrainResult says what one Drain did.
type DrainResult struct {
	Started int `json:"started"`
	Failed  int `json:"failed"`
	// Pending counts what is left in the outbox afterwards.
	Pending int `json:"pending"`
}

// drainPage is how many intakes one pass of Drain reads; drainParallel how
// many workflow starts it has in flight.
const (
	drainPage     = 500
	drainParallel = 8
)

// Drain starts the workflows of the outbox, oldest first, page by page. The
// first failed start ends the pass once the starts in flight are done (the
// workflow service is likely down; the next pass tries again), so that a
// pass never waits out the start timeout for every queued batch. Receivers
// may drain at once: a start is idempotent.
func (in *Intake) Drain(ctx context.Context) (DrainResult, error) {
	in.drainMu.Lock()
	defer in.drainMu.Unlock()
	var res DrainResult
	for {
		page, err := in.Store.PendingIntakes(ctx, drainPage)
		if err != nil {
			return res, fmt.Errorf("drain outbox: %w", err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, drainParallel)
		failed := 0
		for _, rec := range page {
			mu.Lock()
			stop := failed > 0 // the service is likely down: no more waits this pass
			mu.Unlock()
			if stop || ctx.Err() != nil {
				break
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok := in.start(ctx, rec) == StatusStarted
				mu.Lock()
				defer mu.Unlock()
				if ok {
					res.Started++
				} else {
					failed++
				}
			}()
		}
		wg.Wait()
		res.Failed += failed
		if failed > 0 || len(page) < drainPage || ctx.Err() != nil {
			break
		}
	}
	n, err := in.Store.CountPendingIntakes(ctx)
	if err != nil {
		return res, fmt.Errorf("drain outbox: %w", err)
	}
	res.Pending = n
	return res, ctx.Err()
}

// RemoveStaleTemp deletes temporary bodies older than age left in TempDir
// by a receiver that was killed mid-post.
func (in *Intake) RemoveStaleTemp(age time.Duration) error {
	dir := in.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean temporary bodies in %s: %w", dir, err)
	}
	cutoff := in.now().Add(-age)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || e.IsDir() {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// BatchStatus is what GET /v1/batches/{id} reports.
type BatchStatus struct {
	BatchID    string `json:"batch_id"`
	WorkflowID string `json:"workflow_id"`
	Box        string `json:"box"`
	// Status is queued (in the outbox), started (being ingested), stored,
	// quarantined (refused by ingest: see Batch.Errors) or failed (the
	// workflow failed).
	Status     string    `json:"status"`
	Size       int64     `json:"size"`
	ReceivedAt time.Time `json:"received_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
	// Workflow is the workflow's status as Temporal reports it; empty when
	// it could not be asked.
	Workflow string       `json:"workflow,omitempty"`
	Batch    *BatchRecord `json:"batch,omitempty"`
}

// BatchRecord is the stored record of an ingested batch.
type BatchRecord struct {
	Status      string    `json:"status"`
	Format      string    `json:"format"`
	Accepted    int64     `json:"accepted"`
	Rejected    int64     `json:"rejected"`
	FirstSample time.Time `json:"first_sample,omitzero"`
	LastSample  time.Time `json:"last_sample,omitzero"`
	StoredAt    time.Time `json:"stored_at,omitzero"`
	Errors      []string  `json:"errors,omitempty"`
}

// Batch statuses BatchStatus reports beside store.BatchStored and
// store.BatchQuarantined.
const (
	BatchQueued  = StatusQueued
	BatchStarted = StatusStarted
	BatchFailed  = "failed"
)

// statusTimeout bounds asking the workflow service for a status.
const statusTimeout = 2 * time.Second

// Status reports an accepted batch: its intake, its stored record and its
// workflow. It returns store.ErrNotFound for a batch never accepted.
func (in *Intake) Status(ctx context.Context, batchID string) (BatchStatus, error) {
	rec, err := in.Store.Intake(ctx, batchID)
	if err != nil {
		return BatchStatus{}, err
	}
	st := BatchStatus{
		BatchID: rec.BatchID, WorkflowID: rec.WorkflowID, Box: rec.Box, Status: BatchQueued,
		Size: rec.Size, ReceivedAt: rec.ReceivedAt, StartedAt: rec.StartedAt,
		Attempts: rec.Attempts, LastError: rec.LastError,
	}
	if !rec.StartedAt.IsZero() {
		st.Status = BatchStarted
		wctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st.Workflow, err = in.Workflows.IngestStatus(wctx, rec.WorkflowID)
		cancel()
		if err != nil {
			st.Workflow = ""
		}
		switch st.Workflow {
		case "Failed", "Terminated", "TimedOut", "Canceled":
			st.Status = BatchFailed
		}
	}
	b, err := in.Store.Batch(ctx, batchID)
	switch {
	case err == nil:
		st.Status = b.Status
		st.Batch = &BatchRecord{Status: b.Status, Format: b.Format, Accepted: b.Accepted, Rejected: b.Rejected,
			FirstSample: b.FirstSample, LastSample: b.LastSample, StoredAt: b.StoredAt, Errors: b.Errors}
	case !errors.Is(err, store.ErrNotFound):
		return BatchStatus{}, fmt.Errorf("read batch %s: %w", short(batchID), err)
	}
	return st, nil
}

// short is the prefix of a batch id used in logs.
func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// httpStatus of an error of Accept: the reject's status, 503 when the
// body could not be stored, 500 otherwise.
func httpStatus(err error) int {
	var rej *RejectError
	var un *UnavailableError
	switch {
	case errors.As(err, &rej):
		return rej.Status
	case errors.As(err, &un):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
