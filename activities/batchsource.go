package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Object metadata sanwatch sets on batch objects.
const (
	// MetaName is the batch's original file name, used in messages about
	// its lines ("header.csv:1: ..."); `starter ingest` sets it.
	MetaName = "name"
	// MetaReason is why a quarantined batch was refused.
	MetaReason = "reason"
	// MetaBox is the box that posted the batch to the receiver, as its
	// token or certificate proved: every sample of the batch must be that
	// box's (StoreBatch enforces it again, with its own clock).
	MetaBox = "box"
)

// maxMetaValue bounds a metadata value: S3 allows 2 KB of user metadata in
// all, and values travel URL-escaped in headers.
const maxMetaValue = 512

// batchSource is where StoreBatch reads a batch from: a file inside
// ingest.roots, or an object in the batch store.
type batchSource struct {
	// name is the batch's name in messages about its lines.
	name string
	// where is what the batch record's Path shows: the resolved file path
	// or the object key.
	where string
	// key is the object key of a batch read from the batch store ("" for a file).
	key string
	// owner is the box that posted the batch (MetaBox); "" for any box.
	owner string
	// open opens the batch for one read.
	open func(ctx context.Context) (io.ReadCloser, error)
}

// CheckBatchKey checks that key names a batch object: under
// blobstore.BatchPrefix, with no empty, "." or ".." segment and no control
// characters, so that a claim check cannot name a quarantined batch or any
// other object of the bucket.
func CheckBatchKey(key string) error {
	rest, ok := strings.CutPrefix(key, blobstore.BatchPrefix)
	bad := !ok || rest == "" || strings.ContainsAny(key, "\\") || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f })
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("store batch: object key %q is not a batch: a batch key starts with %q and has no empty, \".\" or \"..\" segments", key, blobstore.BatchPrefix)
	}
	return nil
}

// batchSource resolves the input's claim check. done is set when the batch
// was stored before and its object is gone (retention.batches deleted it):
// the earlier summary is the answer.
func (a *Activities) batchSource(ctx context.Context, in StoreBatchInput) (src batchSource, done *BatchSummary, err error) {
	switch {
	case in.Path != "" && in.Blob != "":
		return src, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("store batch: both path %q and blob %q are set: set one", in.Path, in.Blob), ErrTypeInvalidInput, nil)
	case in.Path == "" && in.Blob == "":
		return src, nil, temporal.NewNonRetryableApplicationError(
			"store batch: path and blob are empty: set blob (an object key in batches.url) or path (a file inside ingest.roots)", ErrTypeInvalidInput, nil)
	case in.Path != "":
		p, err := CheckIngestPath(in.Path, a.Ingest.Roots)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return src, nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
			}
			return src, nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePathNotAllowed, nil)
		}
		return batchSource{name: filepath.Base(p), where: p, open: func(context.Context) (io.ReadCloser, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("open batch: %w", err)
			}
			return f, nil
		}}, nil, nil
	}
	if err := CheckBatchKey(in.Blob); err != nil {
		return src, nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePathNotAllowed, nil)
	}
	if a.Batches == nil {
		// Retryable: a worker with a batch store can take it.
		return src, nil, fmt.Errorf("store batch %s: this worker has no batch store (batches.url)", in.Blob)
	}
	_, meta, err := a.Batches.Stat(ctx, in.Blob)
	if errors.Is(err, blobstore.ErrNotFound) {
		if s, ok := a.storedBefore(ctx, in); ok {
			return src, &s, nil
		}
		return src, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("store batch: object %s not found in %s: it was never written there, or it was quarantined or deleted by retention (retention.batches)",
				in.Blob, a.Batches.Where()), ErrTypeInvalidInput, nil)
	}
	if err != nil {
		// The store is down or refuses us: retrying can fix that.
		return src, nil, fmt.Errorf("store batch: %w", err)
	}
	name := path.Base(in.Blob)
	if n := filepath.Base(meta[MetaName]); meta[MetaName] != "" && n != "." && n != "/" {
		name = n
	}
	key := in.Blob
	return batchSource{name: name, where: key, key: key, owner: meta[MetaBox], open: func(ctx context.Context) (io.ReadCloser, error) {
		r, err := a.Batches.Open(ctx, key)
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("store batch: object %s vanished from %s while it was being read", key, a.Batches.Where()), ErrTypeInvalidInput, nil)
		}
		return r, err
	}}, nil, nil
}

// storedBefore returns the summary of the batch an object key names (its
// last segment is the content hash) when that batch was stored before.
func (a *Activities) storedBefore(ctx context.Context, in StoreBatchInput) (BatchSummary, bool) {
	id := path.Base(in.Blob)
	if in.BatchID != "" && !strings.HasPrefix(id, in.BatchID) {
		return BatchSummary{}, false
	}
	prev, err := a.Store.Batch(ctx, id)
	if err != nil || prev.Status != store.BatchStored {
		return BatchSummary{}, false
	}
	s, err := a.storedSummary(ctx, prev, in.BoxesInStore)
	return s, err == nil
}

// sourceError marks an error of the reader under the parser (the file or
// the object store): retryable, unlike a corrupt gzip stream.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

// sourceReader tags its reader's errors (other than io.EOF) as sourceError,
// so that a connection cut in the middle of an object (io.ErrUnexpectedEOF
// from the HTTP body) is not mistaken for a truncated gzip stream.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = sourceError{err}
	}
	return n, err
}

// parse parses the batch, hashing the raw bytes as they are read.
func (src batchSource) parse(ctx context.Context, opts telemetry.Options, emit func([]telemetry.Sample) error) (telemetry.Result, string, error) {
	f, err := src.open(ctx)
	if err != nil {
		return telemetry.Result{}, "", err
	}
	defer f.Close()
	h := sha256.New()
	r := sourceReader{f}
	res, err := telemetry.Parse(io.TeeReader(r, h), opts, emit)
	if err != nil {
		return res, "", err
	}
	// Hash whatever the parser did not need to read (it stops at EOF normally).
	if _, err := io.Copy(h, r); err != nil {
		return res, "", fmt.Errorf("hash batch: %w", err)
	}
	return res, hex.EncodeToString(h.Sum(nil)), nil
}

// hash returns the batch's content hash.
func (src batchSource) hash(ctx context.Context) (string, error) {
	f, err := src.open(ctx)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash batch %s: %w", src.where, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// quarantine records the batch as quarantined with the reason. A batch
// object is moved to quarantine/<id> with the reason in its metadata, so
// that batches/ holds only batches that can be stored; an error moving it
// is returned (retryable: the next attempt quarantines it again). A batch
// file stays where it is.
func (a *Activities) quarantine(ctx context.Context, src batchSource, id string, res telemetry.Result, reason string) error {
	if id == "" {
		var err error
		if id, err = src.hash(ctx); err != nil {
			return fmt.Errorf("quarantine batch %s: %w", src.where, err)
		}
	}
	where := src.where
	if src.key != "" {
		where = blobstore.QuarantineKey(id)
		meta := map[string]string{MetaReason: metaValue(reason), MetaName: metaValue(src.name)}
		if err := a.Batches.Copy(ctx, where, src.key, meta); err != nil {
			return fmt.Errorf("quarantine batch %s: %w", src.key, err)
		}
		if err := a.Batches.Delete(ctx, src.key); err != nil {
			return fmt.Errorf("quarantine batch %s: %w", src.key, err)
		}
	}
	b := store.Batch{
		ID: id, Path: where, Format: res.Format.String(), Status: store.BatchQuarantined,
		Accepted: 0, Rejected: res.Rejected, Errors: append([]string{reason}, errorStrings(res)...),
		StoredAt: a.now().UTC(),
	}
	if err := a.Store.PutBatch(ctx, b); err != nil {
		activity.GetLogger(ctx).Error("record quarantined batch", "path", where, "error", err)
	}
	return nil
}

// metaValue makes s safe as an object metadata value: printable ASCII, at
// most maxMetaValue bytes.
func metaValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > maxMetaValue {
		b = append(b[:maxMetaValue-3], "..."...)
	}
	return string(b)
}
