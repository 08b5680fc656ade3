// Package dropdir watches drop directories, the folders that boxes without
// HTTPS deliver their telemetry batches to over SFTP or NFS. A file is handed
// to an Acceptor once it is complete (renamed into place, or quiet for a
// while), then moved to the directory's done/ folder, or to quarantine/ with
// a .reason file when the Acceptor rejects it. A transient failure (the batch
// store is down) leaves the file where it is and retries with backoff.
//
// The package knows nothing of Temporal, the receiver or config: the caller
// passes an Acceptor and plain Options.
package dropdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Names of the folders each drop directory gets.
const (
	// DoneDir holds the files that were accepted (or were already ingested).
	DoneDir = "done"
	// QuarantineDir holds the files that were rejected, each beside a
	// <name>.reason file that says why and when.
	QuarantineDir = "quarantine"
)

// Receipt is what an Acceptor answers for a batch it took.
type Receipt struct {
	// BatchID identifies the stored batch (from its content hash).
	BatchID string
	// WorkflowID is the ingest workflow started (or to be started) for it.
	WorkflowID string
	// Duplicate is true when the same content was accepted before; the
	// batch is not stored or ingested again.
	Duplicate bool
}

// Acceptor takes one complete batch file.
type Acceptor interface {
	// Accept stores the batch read from body, under name (the file's path
	// in the drop directory, for provenance and messages), and answers its
	// ids. An error for which Rejected reports true means the content is
	// bad and retrying cannot help: the file is quarantined with the
	// error's text as the reason. Any other error is transient: the file
	// stays and is offered again later.
	Accept(ctx context.Context, name string, body io.Reader) (Receipt, error)
}

// AcceptorFunc adapts a function to the Acceptor interface.
type AcceptorFunc func(ctx context.Context, name string, body io.Reader) (Receipt, error)

// Accept calls f.
func (f AcceptorFunc) Accept(ctx context.Context, name string, body io.Reader) (Receipt, error) {
	return f(ctx, name, body)
}

// RejectError marks an error as a rejection of the batch: its content is bad
// and offering it again cannot help.
type RejectError struct {
	Err error // why the batch is refused
}

// Error returns the wrapped error's text, which becomes the quarantine reason.
func (e *RejectError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RejectError) Unwrap() error { return e.Err }

// Rejected reports true: the batch is refused for good.
func (e *RejectError) Rejected() bool { return true }

// Reject wraps err as a rejection (see Rejected); nil stays nil.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &RejectError{Err: err}
}

// Rejected reports whether err, or any error it wraps, has a method
// Rejected() bool that returns true: the batch is bad and must be
// quarantined rather than retried. Acceptors may return a *RejectError (see
// Reject) or any error type of their own with that method.
func Rejected(err error) bool {
	var r interface{ Rejected() bool }
	return errors.As(err, &r) && r.Rejected()
}

// Options configure a Watcher.
type Options struct {
	// Dirs are the drop directories (receiver.drop_dirs). Each must exist
	// and be writable; its done/ and quarantine/ folders are created.
	Dirs []string
	// Quiet is how long a file must go without a change (size, mtime or a
	// write event) before it is taken as complete (receiver.drop_quiet).
	// A file renamed into place is taken at once, without waiting for Quiet.
	Quiet time.Duration
	// Acceptor takes the complete files. Required.
	Acceptor Acceptor
	// Logger receives what happened to each file; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// Rescan is how often each directory is listed again, as a safety net
	// for events that fsnotify lost and for files written over NFS by
	// other hosts (which raise no events here). Zero means 30s.
	Rescan time.Duration
	// RetryMin and RetryMax bound the backoff after a transient failure:
	// the wait doubles from RetryMin up to RetryMax. Zero means 1s and 5m.
	RetryMin, RetryMax time.Duration

	// DoneRetention is how long files are kept in done/, QuarantineRetention
	// in quarantine/ (retention.quarantine), counted from when they were
	// moved there. Zero keeps them forever.
	DoneRetention, QuarantineRetention time.Duration
	// PruneEvery is how often Run prunes done/ and quarantine/ (once at
	// start, then at this interval). Zero means 1h; negative means Run never
	// prunes (call Prune yourself).
	PruneEvery time.Duration
}

// Watcher watches drop directories and hands complete files to an Acceptor.
// Build it with New and start it with Run.
type Watcher struct {
	dirs    []string // cleaned absolute paths, as given to fsnotify
	quiet   time.Duration
	settle  time.Duration // how long a renamed file's size must hold
	tick    time.Duration // how often pending files are checked
	rescan  time.Duration
	retry   [2]time.Duration
	keep    [2]time.Duration // done/, quarantine/
	pruneEv time.Duration
	acc     Acceptor
	log     *slog.Logger
	now     func() time.Time
	running atomic.Bool
}

// New checks opts and the directories and returns a Watcher. Each directory
// must exist and be writable; its done/ and quarantine/ folders are created.
// Errors name the directory and say why.
func New(opts Options) (*Watcher, error) {
	if len(opts.Dirs) == 0 {
		return nil, errors.New("drop dirs: none given")
	}
	if opts.Quiet <= 0 {
		return nil, fmt.Errorf("drop quiet %v: must be > 0", opts.Quiet)
	}
	if opts.Acceptor == nil {
		return nil, errors.New("drop dirs: no acceptor")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"rescan", opts.Rescan}, {"retry min", opts.RetryMin}, {"retry max", opts.RetryMax},
		{"done retention", opts.DoneRetention}, {"quarantine retention", opts.QuarantineRetention}} {
		if d.v < 0 {
			return nil, fmt.Errorf("drop %s %v: must not be negative", d.name, d.v)
		}
	}
	w := &Watcher{
		quiet:   opts.Quiet,
		rescan:  orDefault(opts.Rescan, 30*time.Second),
		retry:   [2]time.Duration{orDefault(opts.RetryMin, time.Second), orDefault(opts.RetryMax, 5*time.Minute)},
		keep:    [2]time.Duration{opts.DoneRetention, opts.QuarantineRetention},
		pruneEv: orDefault(opts.PruneEvery, time.Hour),
		acc:     opts.Acceptor,
		log:     opts.Logger,
		now:     opts.Now,
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.retry[1] < w.retry[0] {
		w.retry[1] = w.retry[0]
	}
	// Pending files are looked at a few times per quiet period, and at
	// least every 250ms so that a file renamed into place goes in promptly
	// even with a long quiet period.
	w.tick = min(max(w.quiet/4, 10*time.Millisecond), 250*time.Millisecond)
	w.settle = w.tick
	seen := map[string]bool{}
	for _, d := range opts.Dirs {
		abs, err := checkDir(d)
		if err != nil {
			return nil, err
		}
		if seen[abs] {
			return nil, fmt.Errorf("drop dir %q: listed twice", d)
		}
		seen[abs] = true
		w.dirs = append(w.dirs, abs)
	}
	return w, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkDir makes sure dir is a writable directory with done/ and quarantine/
// folders in it and returns its cleaned absolute path.
func checkDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("drop dir: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("drop dir %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("drop dir %q: does not exist (create it, writable by this process)", dir)
	case err != nil:
		return "", fmt.Errorf("drop dir %q: %w", dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("drop dir %q: not a directory", dir)
	}
	// Write a probe file: being able to create files in the directory is
	// what moving files to done/ and quarantine/ needs. Its name starts
	// with a dot, so the watcher ignores it.
	probe, err := os.CreateTemp(abs, ".sanwatch-probe-*")
	if err != nil {
		return "", fmt.Errorf("drop dir %q: not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	if err := makeSubdirs(abs); err != nil {
		return "", fmt.Errorf("drop dir %q: %w", dir, err)
	}
	return abs, nil
}

// makeSubdirs makes the done/ and quarantine/ folders of a drop directory
// when they are missing.
func makeSubdirs(dir string) error {
	for _, sub := range []string{DoneDir, QuarantineDir} {
		path := filepath.Join(dir, sub)
		if err := os.Mkdir(path, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s/: %w", sub, err)
		}
		if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", sub)
		}
	}
	return nil
}

// Dirs returns the watched directories as cleaned absolute paths.
func (w *Watcher) Dirs() []string { return append([]string(nil), w.dirs...) }
