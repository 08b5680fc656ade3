package activities

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// StoreBatchInput names the batch to store (claim check: a path or an
// object key, never the data). Exactly one of Path and Blob is set.
type StoreBatchInput struct {
	// Path is a batch file inside ingest.roots, on the worker's host.
	Path string `json:"path,omitempty"`
	// Blob is the batch's object key in the batch store (batches.url), set
	// instead of Path: the claim check workers on any host can read.
	Blob string `json:"blob,omitempty"`
	// BatchID is the expected content hash; empty means "whatever the file holds".
	BatchID string `json:"batch_id,omitempty"`
	// BoxesInStore asks for a summary that counts the batch's boxes instead
	// of listing them: the boxes are recorded in the store, one row each,
	// and paged from there by batch id (ListBoxes with Batch). A batch can
	// touch hundreds of thousands of boxes, more than a payload should hold.
	// IngestTelemetry sets it from its bounded-payloads version on.
	BoxesInStore bool `json:"boxes_in_store,omitempty"`
}

// MaxListed is how many entries a bounded list of a workflow or activity
// result keeps (failed shards, dispatch errors, unknown boxes); the rest are
// only counted.
const MaxListed = 20

// BatchSummary is what StoreBatch reports: small, safe to keep in history.
type BatchSummary struct {
	BatchID  string `json:"batch_id"`
	Path     string `json:"path"`
	Format   string `json:"format"`
	Status   string `json:"status"`
	Accepted int64  `json:"accepted"`
	Rejected int64  `json:"rejected"`
	// Boxes lists the boxes the batch touched, UnknownBoxes those of them
	// not in the inventory. With BoxesInStore, Boxes is empty and
	// UnknownBoxes holds the first MaxListed unknown boxes by id: BoxCount
	// and UnknownBoxCount count them all.
	Boxes           []string `json:"boxes"`
	UnknownBoxes    []string `json:"unknown_boxes,omitempty"`
	BoxCount        int      `json:"box_count,omitempty"`
	UnknownBoxCount int      `json:"unknown_box_count,omitempty"`
	Errors          []string `json:"errors,omitempty"`
	// AlreadyStored is true when the same content was stored before.
	AlreadyStored bool `json:"already_stored,omitempty"`
}

// HashFile returns the hex sha256 of a file's content: the batch id.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open batch: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash batch %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrNoIngestRoots is returned by CheckIngestPath when no ingest root is
// configured: such a process ingests nothing.
var ErrNoIngestRoots = errors.New("no ingest roots configured (set ingest.roots to the directories batches are read from)")

// CheckIngestPath resolves path and checks that it lies inside one of roots.
// Both are resolved with filepath.EvalSymlinks before the comparison, so a
// symlink inside a root that points outside it, and "..", are refused, and a
// root that is itself a symlink works. It returns the resolved absolute path.
func CheckIngestPath(path string, roots []string) (string, error) {
	if len(roots) == 0 {
		return "", fmt.Errorf("ingest %q: %w", path, ErrNoIngestRoots)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	for _, root := range roots {
		r, err := filepath.Abs(root)
		if err != nil {
			continue
		}
		if rr, err := filepath.EvalSymlinks(r); err == nil {
			r = rr
		}
		rel, err := filepath.Rel(r, real)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return real, nil
		}
	}
	if real != abs {
		return "", fmt.Errorf("ingest %q: path is outside the allowed ingest roots %q (config ingest.roots): it resolves to %q", path, roots, real)
	}
	return "", fmt.Errorf("ingest %q: path is outside the allowed ingest roots %q (config ingest.roots)", path, roots)
}

// StoreBatch validates and stores one telemetry batch, named by its path
// (inside ingest.roots) or by its object key in the batch store (Blob). It
// reads the batch twice: once to validate and hash it (a batch that is not
// telemetry or mostly bad is quarantined whole, nothing applied), once to
// store it in chunks. Storing is idempotent: the same content stored twice
// leaves one copy of every sample. A batch store that cannot be reached is
// a retryable error; a key outside batches/ or a missing object is not.
func (a *Activities) StoreBatch(ctx context.Context, in StoreBatchInput) (BatchSummary, error) {
	src, done, err := a.batchSource(ctx, in)
	switch {
	case err != nil:
		return BatchSummary{}, err
	case done != nil:
		return *done, nil
	}
	hb := newHeartbeater(ctx, a.Ingest.HeartbeatEvery)
	opts := telemetry.Options{
		Name:          src.name,
		Now:           a.now(),
		MaxFutureSkew: a.Ingest.MaxFutureSkew,
		MaxErrors:     a.Ingest.MaxErrors,
		ChunkSize:     a.Ingest.ChunkRows,
		// Heartbeat on progress through lines, good or bad: a mostly bad
		// batch emits few chunks, yet takes as long to read.
		Progress: func(lines int) { hb.beat("lines read", lines) },
	}

	// Pass 1: validate and hash (heartbeating: a large batch takes a while).
	// A batch a box posted holds only that box's samples: the receiver
	// checked the lines it accepted, and this checks them again, since a
	// line refused there (a time just ahead of the receiver's clock) can
	// be accepted here.
	var foreign string
	res, id, err := src.parse(ctx, opts, func(chunk []telemetry.Sample) error {
		hb.beat("validating", 0)
		for _, s := range chunk {
			if src.owner != "" && s.Box != src.owner && foreign == "" {
				foreign = s.Box
			}
		}
		return nil
	})
	if err == nil && foreign != "" {
		msg := fmt.Sprintf("%s: quarantined: posted by box %q, yet it holds samples of box %q (a box posts only its own)", src.name, src.owner, foreign)
		if qerr := a.quarantine(ctx, src, id, res, msg); qerr != nil {
			return BatchSummary{}, qerr
		}
		return BatchSummary{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeQuarantined, nil)
	}
	if err != nil {
		if errors.Is(err, telemetry.ErrNotTelemetry) || corruptContent(err) {
			if qerr := a.quarantine(ctx, src, id, res, err.Error()); qerr != nil {
				return BatchSummary{}, qerr
			}
			return BatchSummary{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidTelemetry, nil)
		}
		return BatchSummary{}, fmt.Errorf("read batch %s: %w", src.where, err)
	}
	if in.BatchID != "" && in.BatchID != id && !strings.HasPrefix(id, in.BatchID) {
		msg := fmt.Sprintf("store batch %s: content hash %s does not match batch id %s (file changed after it was submitted)", src.where, id[:16], in.BatchID)
		return BatchSummary{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeBatchChanged, nil)
	}
	if prev, err := a.Store.Batch(ctx, id); err == nil && prev.Status == store.BatchStored {
		return a.storedSummary(ctx, prev, in.BoxesInStore)
	}
	if res.Lines == 0 {
		msg := fmt.Sprintf("%s: no samples, only a header", src.name)
		if qerr := a.quarantine(ctx, src, id, res, msg); qerr != nil {
			return BatchSummary{}, qerr
		}
		return BatchSummary{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidTelemetry, nil)
	}
	if ratio := res.RejectRatio(); ratio > a.Ingest.MaxRejectRatio {
		msg := fmt.Sprintf("%s: quarantined: %d of %d lines rejected (%.0f%% > ingest.max_reject_ratio %.0f%%); first: %s",
			src.name, res.Rejected, res.Lines, ratio*100, a.Ingest.MaxRejectRatio*100, firstErrors(res, 3))
		if qerr := a.quarantine(ctx, src, id, res, msg); qerr != nil {
			return BatchSummary{}, qerr
		}
		if a.Metrics != nil {
			a.Metrics.BatchesQuarantined.Inc()
		}
		return BatchSummary{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeQuarantined, nil)
	}

	// Pass 2: store in chunks, heartbeating progress. With BoxesInStore
	// each chunk's boxes are recorded as the batch's as they come, so that
	// no list of every box is held (the parser keeps at most
	// telemetry.DefaultMaxBoxes of them).
	var stored int64
	res2, id2, err := src.parse(ctx, opts, func(chunk []telemetry.Sample) error {
		n, err := a.Store.AppendSamples(ctx, chunk)
		if err != nil {
			return fmt.Errorf("append samples: %w", err)
		}
		if in.BoxesInStore {
			if err := a.recordChunkBoxes(ctx, id, chunk); err != nil {
				return err
			}
		}
		stored += n
		hb.beat("stored", int(stored))
		return nil
	})
	if err != nil {
		return BatchSummary{}, fmt.Errorf("store batch %s: %w", src.where, err)
	}
	if id2 != id {
		msg := fmt.Sprintf("store batch %s: file changed while it was being stored", src.where)
		return BatchSummary{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeBatchChanged, nil)
	}
	// One flush for the whole batch, before it is recorded as stored: a
	// batch on record is searchable, whichever attempt stored it.
	if a.SampleFlusher != nil && stored > 0 {
		if err := a.SampleFlusher.Flush(ctx); err != nil {
			return BatchSummary{}, fmt.Errorf("store batch %s: %w", src.where, err)
		}
	}
	b := store.Batch{
		ID: id, Path: src.where, Format: res2.Format.String(), Status: store.BatchStored,
		Accepted: res2.Accepted, Rejected: res2.Rejected,
		FirstSample: res2.First, LastSample: res2.Last,
		Errors: errorStrings(res2), StoredAt: a.now().UTC(),
	}
	if !in.BoxesInStore {
		if err := a.Store.TouchBoxes(ctx, res2.Boxes); err != nil {
			return BatchSummary{}, fmt.Errorf("record boxes: %w", err)
		}
		b.Boxes, b.UnknownBoxes = res2.Boxes, a.unknownBoxes(res2.Boxes)
	} else {
		// The record keeps the first unknown boxes, as the summary does;
		// batch_boxes has them all.
		var err error
		if b.UnknownBoxes, err = a.Store.BatchBoxes(ctx, store.BatchBoxQuery{Batch: id, UnknownOnly: true, Limit: MaxListed}); err != nil {
			return BatchSummary{}, fmt.Errorf("list unknown boxes of batch: %w", err)
		}
	}
	if err := a.Store.PutBatch(ctx, b); err != nil {
		return BatchSummary{}, fmt.Errorf("record batch: %w", err)
	}
	if a.Metrics != nil {
		a.Metrics.SamplesIngested.Add(float64(res2.Accepted))
		a.Metrics.LinesRejected.Add(float64(res2.Rejected))
	}
	sum := summaryOf(b)
	if in.BoxesInStore {
		if sum, err = a.countedSummary(ctx, b); err != nil {
			return BatchSummary{}, err
		}
	}
	activity.GetLogger(ctx).Info("batch stored", "batch", id[:16], "path", src.where,
		"accepted", res2.Accepted, "rejected", res2.Rejected, "boxes", max(len(sum.Boxes), sum.BoxCount))
	return sum, nil
}

// recordChunkBoxes records the boxes of one stored chunk as the batch's
// (flagging those not in the inventory) and as heard from.
func (a *Activities) recordChunkBoxes(ctx context.Context, batch string, chunk []telemetry.Sample) error {
	seen := make(map[string]struct{})
	var ids []string
	for _, smp := range chunk {
		if _, ok := seen[smp.Box]; !ok {
			seen[smp.Box] = struct{}{}
			ids = append(ids, smp.Box)
		}
	}
	if err := a.Store.TouchBoxes(ctx, ids); err != nil {
		return fmt.Errorf("record boxes: %w", err)
	}
	boxes := make([]store.BatchBox, len(ids))
	for i, id := range ids {
		boxes[i] = store.BatchBox{ID: id, Unknown: !a.inInventory(id)}
	}
	if err := a.Store.AddBatchBoxes(ctx, batch, boxes); err != nil {
		return fmt.Errorf("record boxes of batch: %w", err)
	}
	return nil
}

// storedSummary is the summary of a batch stored before, counted or
// listed as the caller asks.
func (a *Activities) storedSummary(ctx context.Context, prev store.Batch, counted bool) (BatchSummary, error) {
	var s BatchSummary
	var err error
	if counted {
		s, err = a.countedSummary(ctx, prev)
	} else {
		s, err = a.listedSummary(ctx, prev)
	}
	if err != nil {
		return BatchSummary{}, err
	}
	s.AlreadyStored = true
	return s, nil
}

// countedSummary is the summary of a stored batch whose boxes are counted
// in the store. A batch stored before boxes were kept one row each has them
// copied there first.
func (a *Activities) countedSummary(ctx context.Context, b store.Batch) (BatchSummary, error) {
	n, unknown, err := a.Store.CountBatchBoxes(ctx, b.ID)
	if err != nil {
		return BatchSummary{}, fmt.Errorf("count boxes of batch: %w", err)
	}
	if n == 0 && len(b.Boxes) > 0 {
		isUnknown := make(map[string]bool, len(b.UnknownBoxes))
		for _, id := range b.UnknownBoxes {
			isUnknown[id] = true
		}
		rows := make([]store.BatchBox, len(b.Boxes))
		for i, id := range b.Boxes {
			rows[i] = store.BatchBox{ID: id, Unknown: isUnknown[id]}
		}
		if err := a.Store.AddBatchBoxes(ctx, b.ID, rows); err != nil {
			return BatchSummary{}, fmt.Errorf("record boxes of batch: %w", err)
		}
		n, unknown = len(b.Boxes), len(b.UnknownBoxes)
	}
	s := summaryOf(b)
	s.Boxes, s.UnknownBoxes, s.BoxCount, s.UnknownBoxCount = nil, nil, n, unknown
	if unknown > 0 {
		if s.UnknownBoxes, err = a.Store.BatchBoxes(ctx, store.BatchBoxQuery{Batch: b.ID, UnknownOnly: true, Limit: MaxListed}); err != nil {
			return BatchSummary{}, fmt.Errorf("list unknown boxes of batch: %w", err)
		}
	}
	return s, nil
}

// listedSummary is the summary that lists every box, as callers before
// BoxesInStore expect; a batch stored with BoxesInStore has its lists read
// back from the store.
func (a *Activities) listedSummary(ctx context.Context, b store.Batch) (BatchSummary, error) {
	if len(b.Boxes) == 0 {
		var err error
		if b.Boxes, err = a.allBatchBoxes(ctx, b.ID, false); err != nil {
			return BatchSummary{}, err
		}
		if b.UnknownBoxes, err = a.allBatchBoxes(ctx, b.ID, true); err != nil {
			return BatchSummary{}, err
		}
	}
	return summaryOf(b), nil
}

// allBatchBoxes reads every box (or every unknown box) of a batch, page by page.
func (a *Activities) allBatchBoxes(ctx context.Context, batch string, unknownOnly bool) ([]string, error) {
	const page = 10_000
	var out []string
	q := store.BatchBoxQuery{Batch: batch, UnknownOnly: unknownOnly, Limit: page}
	for {
		ids, err := a.Store.BatchBoxes(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list boxes of batch: %w", err)
		}
		out = append(out, ids...)
		if len(ids) < page {
			return out, nil
		}
		q.After = ids[len(ids)-1]
	}
}

// corruptContent reports whether a read error comes from the batch's bytes
// (a corrupt or truncated gzip stream), which no retry can fix.
// A read error of the file or object store itself (sourceError) is not.
func corruptContent(err error) bool {
	var srcErr sourceError
	if errors.As(err, &srcErr) {
		return false
	}
	var flateErr flate.CorruptInputError
	return errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &flateErr)
}

func (a *Activities) unknownBoxes(boxes []string) []string {
	var out []string
	for _, id := range boxes {
		if !a.inInventory(id) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// inInventory reports whether box is in the inventory.
func (a *Activities) inInventory(box string) bool {
	if a.Inventory == nil {
		return false
	}
	_, ok := a.Inventory.Box(box)
	return ok
}

func summaryOf(b store.Batch) BatchSummary {
	return BatchSummary{
		BatchID: b.ID, Path: b.Path, Format: b.Format, Status: b.Status,
		Accepted: b.Accepted, Rejected: b.Rejected, Boxes: b.Boxes,
		UnknownBoxes: b.UnknownBoxes, Errors: b.Errors,
	}
}

func errorStrings(res telemetry.Result) []string {
	out := make([]string, 0, len(res.Errors))
	for _, e := range res.Errors {
		out = append(out, e.Error())
	}
	return out
}

func firstErrors(res telemetry.Result, n int) string {
	s := errorStrings(res)
	if len(s) > n {
		s = s[:n]
	}
	return strings.Join(s, "; ")
}
