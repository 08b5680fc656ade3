// Package blobstore holds telemetry batches as objects: the claim check a
// workflow carries is an object key in the batch store, so that a worker on
// any host reads the batch the receiver (or `starter ingest`) wrote. It wraps
// gocloud.dev/blob: file:// is the embedded default, s3:// any S3-compatible
// store shared by several hosts.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// buckets
	_ "gocloud.dev/blob/s3blob"   // s3:// buckets
	"gocloud.dev/gcerrors"
)

// Key prefixes of the objects sanwatch writes.
const (
	// BatchPrefix holds accepted batches, one object per content hash.
	BatchPrefix = "batches/"
	// QuarantinePrefix holds batches that were refused, with the reason in
	// the object's metadata ("reason").
	QuarantinePrefix = "quarantine/"
)

// ErrNotFound is returned when an object does not exist.
var ErrNotFound = errors.New("object not found")

// BatchKey is the object key of the batch with content hash id.
func BatchKey(id string) string { return BatchPrefix + id }

// QuarantineKey is the object key of the quarantined batch with content hash id.
func QuarantineKey(id string) string { return QuarantinePrefix + id }

// Object describes one stored object.
type Object struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Store is a bucket of batches.
type Store struct {
	bucket *blob.Bucket
	// where names the bucket in errors, with any credentials and query
	// parameters left out.
	where string
}

// Open opens the bucket at rawURL: file:///dir (created if missing) or
// s3://bucket?endpoint=...&region=...&use_path_style=true for an
// S3-compatible store (credentials come from the usual AWS environment or
// shared files, never from the URL). A bare path is taken as a directory.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	if rawURL == "" {
		return nil, errors.New("open batch store: no URL (set batches.url)")
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		// A plain directory.
		abs, aerr := filepath.Abs(rawURL)
		if aerr != nil {
			return nil, fmt.Errorf("open batch store %q: %w", rawURL, aerr)
		}
		u = &url.URL{Scheme: "file", Path: abs}
	}
	if u.User != nil {
		return nil, fmt.Errorf("open batch store %s://%s: credentials in the URL are refused; use the AWS environment or shared credentials file", u.Scheme, u.Host)
	}
	where := u.Scheme + "://" + u.Host + u.Path
	if u.Scheme == "file" {
		q := u.Query()
		if q.Get("create_dir") == "" {
			q.Set("create_dir", "1")
		}
		u.RawQuery = q.Encode()
		if err := os.MkdirAll(u.Path, 0o750); err != nil {
			return nil, fmt.Errorf("open batch store %s: %w", where, err)
		}
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open batch store %s: %w", where, err)
	}
	return &Store{bucket: b, where: where}, nil
}

// Where names the bucket (no credentials, no query).
func (s *Store) Where() string { return s.where }

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Put writes r to key; an object appears only once it is complete. meta is
// stored with it (keys in lower case).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, meta map[string]string) (int64, error) {
	// Cancelling the writer's context before Close aborts the write: no
	// driver then publishes what was copied so far.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{Metadata: meta, ContentType: "application/octet-stream"})
	if err != nil {
		return 0, fmt.Errorf("write %s to %s: %w", key, s.where, err)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		cancel()
		_ = w.Close()
		return n, fmt.Errorf("write %s to %s: %w", key, s.where, err)
	}
	if err := w.Close(); err != nil {
		return n, fmt.Errorf("write %s to %s: %w", key, s.where, err)
	}
	return n, nil
}

// PutFile writes the file at path to key.
func (s *Store) PutFile(ctx context.Context, key, path string, meta map[string]string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("write %s to %s: %w", key, s.where, err)
	}
	defer f.Close()
	return s.Put(ctx, key, f, meta)
}

// Stat returns the object at key, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (Object, map[string]string, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return Object{}, nil, fmt.Errorf("%s in %s: %w", key, s.where, ErrNotFound)
		}
		return Object{}, nil, fmt.Errorf("stat %s in %s: %w", key, s.where, err)
	}
	return Object{Key: key, Size: a.Size, ModTime: a.ModTime}, a.Metadata, nil
}

// Exists reports whether key exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := s.bucket.Exists(ctx, key)
	if err != nil {
		return false, fmt.Errorf("stat %s in %s: %w", key, s.where, err)
	}
	return ok, nil
}

// Open opens the object at key for reading, or returns ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s in %s: %w", key, s.where, ErrNotFound)
		}
		return nil, fmt.Errorf("read %s from %s: %w", key, s.where, err)
	}
	return r, nil
}

// Copy copies src to dst within the bucket, with meta on the copy.
func (s *Store) Copy(ctx context.Context, dst, src string, meta map[string]string) error {
	r, err := s.Open(ctx, src)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = s.Put(ctx, dst, r, meta)
	return err
}

// Delete deletes key; deleting a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s from %s: %w", key, s.where, err)
	}
	return nil
}

// List calls fn for each object under prefix, in key order, until fn
// returns an error or stop is true.
func (s *Store) List(ctx context.Context, prefix string, fn func(Object) (stop bool, err error)) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", prefix, s.where, err)
		}
		if o.IsDir {
			continue
		}
		stop, err := fn(Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		if err != nil || stop {
			return err
		}
	}
}
