package dropdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// PruneReport says what Prune freed.
type PruneReport struct {
	Files int   // files removed
	Bytes int64 // their sizes added up
}

// Prune removes the files in each directory's done/ folder older than
// DoneRetention and in its quarantine/ folder older than QuarantineRetention
// (a zero retention keeps that folder's files). A file's age counts from its
// modification time, which the watcher sets when it moves the file there.
// Prune goes on past a file it cannot remove and returns what it freed with
// the errors joined. It is safe to call while Run runs.
func (w *Watcher) Prune(ctx context.Context, now time.Time) (PruneReport, error) {
	var rep PruneReport
	var errs []error
	for _, d := range w.dirs {
		for i, sub := range []string{DoneDir, QuarantineDir} {
			if w.keep[i] <= 0 {
				continue
			}
			if err := pruneDir(ctx, filepath.Join(d, sub), now.Add(-w.keep[i]), &rep); err != nil {
				errs = append(errs, err)
			}
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	return rep, errors.Join(errs...)
}

// pruneDir removes the files in dir last modified before cutoff.
func pruneDir(ctx context.Context, dir string, cutoff time.Time, rep *PruneReport) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.IsDir() {
			continue
		}
		fi, err := e.Info() // Lstat: a symlink's own age and size
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", filepath.Join(dir, e.Name()), err))
			continue
		}
		if !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("prune: %w", err))
			continue
		}
		rep.Files++
		rep.Bytes += fi.Size()
	}
	return errors.Join(errs...)
}

// pruneAndLog runs Prune for Run and logs what it freed.
func (w *Watcher) pruneAndLog(ctx context.Context) {
	rep, err := w.Prune(ctx, w.now())
	if err != nil && ctx.Err() == nil {
		w.log.Warn("drop dirs: prune", "err", err, "files", rep.Files, "bytes", rep.Bytes)
		return
	}
	if rep.Files > 0 {
		w.log.Info("drop dirs: pruned done/ and quarantine/", "files", rep.Files, "bytes", rep.Bytes)
	}
}
