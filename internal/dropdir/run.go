package dropdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// pending is what the watcher knows of a file it has not handed over yet.
type pending struct {
	dir, name string // drop directory and base name
	size      int64
	mtime     time.Time
	changedAt time.Time // last change seen: an event or a different size or mtime
	createdAt time.Time // when its Create event came
	// renamed: a Create event came and no Write since, so the file was
	// most likely renamed into place (or hard-linked) whole.
	renamed  bool
	failures int       // transient failures in a row
	retryAt  time.Time // not before this after a transient failure
}

func (p *pending) path() string { return filepath.Join(p.dir, p.name) }

// Run watches the directories until ctx is done, then returns nil. It
// returns an error only when it cannot start watching (the directory
// vanished, or the inotify limits are reached). Run may be called once.
//
// Events come from fsnotify, so a file renamed into place goes in within a
// fraction of a second. Run also lists every directory at start (files that
// arrived while nothing was running raise no event) and again every Rescan
// as a safety net: fsnotify drops events when the kernel queue overflows,
// and a file written over NFS by another host raises no event on this one.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("drop dirs: Run called twice")
	}
	// Buffered, so that events that come while Accept runs are waiting in
	// the channel when it returns, and drain sees them before deciding that
	// a file was renamed into place whole.
	fw, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return fmt.Errorf("drop dirs: start fsnotify: %w", err)
	}
	defer fw.Close()
	for _, d := range w.dirs {
		if err := fw.Add(d); err != nil {
			return fmt.Errorf("drop dir %q: watch: %w", d, err)
		}
	}
	w.log.Info("watching drop directories", "dirs", w.dirs, "quiet", w.quiet)

	r := &run{w: w, ctx: ctx, fw: fw, files: map[string]*pending{}, dirErr: map[string]string{}}
	r.scan()
	tick := time.NewTicker(w.tick)
	defer tick.Stop()
	rescan := time.NewTicker(w.rescan)
	defer rescan.Stop()
	var pruneC <-chan time.Time
	if w.pruneEv > 0 && (w.keep[0] > 0 || w.keep[1] > 0) {
		w.pruneAndLog(ctx)
		t := time.NewTicker(w.pruneEv)
		defer t.Stop()
		pruneC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("drop dirs: fsnotify closed its event channel")
			}
			r.event(ev)
			r.drain()
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("drop dirs: fsnotify closed its error channel")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("drop dirs: file events were lost (queue overflow); listing the directories again")
			} else {
				w.log.Warn("drop dirs: watch error; listing the directories again", "err", err)
			}
			r.scan()
		case <-tick.C:
			r.check()
		case <-rescan.C:
			r.scan()
		case <-pruneC:
			w.pruneAndLog(ctx)
		}
	}
}

// run is the state of one Run; only Run's goroutine touches it.
type run struct {
	w      *Watcher
	ctx    context.Context
	fw     *fsnotify.Watcher
	files  map[string]*pending // by path
	dirErr map[string]string   // last listing error per directory, logged once
}

// ignored reports whether a name in a drop directory is none of the
// watcher's business: hidden files, the names SFTP clients and rsync write
// to before renaming into place, and the done/ and quarantine/ folders.
func ignored(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || name == DoneDir || name == QuarantineDir {
		return true
	}
	lower := strings.ToLower(name)
	for _, suf := range []string{".tmp", ".part", ".filepart"} {
		if strings.HasSuffix(lower, suf) {
			return true
		}
	}
	return false
}

// drain records the events already waiting, without blocking.
func (r *run) drain() {
	for {
		select {
		case ev, ok := <-r.fw.Events:
			if !ok {
				return
			}
			r.event(ev)
		default:
			return
		}
	}
}

// event records what fsnotify says about a file.
func (r *run) event(ev fsnotify.Event) {
	dir, name := filepath.Split(ev.Name)
	dir = filepath.Clean(dir)
	if ignored(name) || !r.watched(dir) {
		return
	}
	now := r.w.now()
	p := r.files[ev.Name]
	switch {
	case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
		// Gone from this name (deleted, moved away, or moved by us).
		delete(r.files, ev.Name)
	case ev.Has(fsnotify.Create):
		fi, err := os.Lstat(ev.Name)
		if err != nil || fi.IsDir() {
			return
		}
		// A new file under this name: forget what we knew of the old one.
		r.files[ev.Name] = &pending{dir: dir, name: name, size: fi.Size(), mtime: fi.ModTime(),
			changedAt: now, createdAt: now, renamed: true}
	case ev.Has(fsnotify.Write):
		if p == nil {
			p = &pending{dir: dir, name: name}
			r.files[ev.Name] = p
		}
		p.changedAt = now
		p.renamed = false
	}
	// Chmod (attribute changes such as touch) is left to check, which
	// compares size and mtime.
}

func (r *run) watched(dir string) bool {
	for _, d := range r.w.dirs {
		if d == dir {
			return true
		}
	}
	return false
}

// scan lists every directory and starts tracking files not yet known.
func (r *run) scan() {
	now := r.w.now()
	for _, d := range r.w.dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			msg := err.Error()
			if r.dirErr[d] != msg {
				r.w.log.Error("drop dir: cannot list it", "dir", d, "err", err)
				r.dirErr[d] = msg
			}
			continue
		}
		if r.dirErr[d] != "" {
			// The directory is back (it was removed and made again, or
			// remounted): watch it again, or only the rescan would see
			// new files.
			r.w.log.Info("drop dir: listed again", "dir", d)
			delete(r.dirErr, d)
			if err := makeSubdirs(d); err != nil {
				r.w.log.Error("drop dir: cannot make its folders", "dir", d, "err", err)
			}
			if err := r.fw.Add(d); err != nil {
				r.w.log.Error("drop dir: cannot watch it again; new files are found only by the periodic listing", "dir", d, "err", err)
			}
		}
		for _, e := range entries {
			if ignored(e.Name()) || e.IsDir() {
				continue
			}
			path := filepath.Join(d, e.Name())
			if r.files[path] != nil {
				continue
			}
			p := &pending{dir: d, name: e.Name(), changedAt: now}
			if fi, err := e.Info(); err == nil {
				p.size, p.mtime = fi.Size(), fi.ModTime()
			}
			r.files[path] = p
		}
	}
}

// check looks at every pending file and hands over those that are complete.
func (r *run) check() {
	paths := make([]string, 0, len(r.files))
	for path := range r.files {
		paths = append(paths, path)
	}
	sort.Strings(paths) // a stable order, for logs that read the same run to run
	for _, path := range paths {
		if r.ctx.Err() != nil {
			return
		}
		// Events that came while the previous file was accepted may say
		// that this one is still being written.
		r.drain()
		p := r.files[path]
		if p == nil {
			continue
		}
		now := r.w.now()
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			delete(r.files, path)
			continue
		}
		if err != nil {
			r.w.log.Warn("drop file: cannot stat it", "file", path, "err", err)
			continue
		}
		if !fi.Mode().IsRegular() {
			r.quarantine(p, fi, notRegular(path, fi))
			continue
		}
		if fi.Size() != p.size || !fi.ModTime().Equal(p.mtime) {
			p.size, p.mtime, p.changedAt = fi.Size(), fi.ModTime(), now
			p.renamed = false
		}
		if now.Before(p.retryAt) {
			continue
		}
		// Renamed into place: its size held since the Create event. An
		// empty file may be one a writer created and has not written to
		// yet, so it waits for the quiet period like any other.
		renamed := p.renamed && p.size > 0 && now.Sub(p.createdAt) >= r.w.settle
		if renamed || now.Sub(p.changedAt) >= r.w.quiet {
			r.ingest(p, fi)
		}
	}
}

// notRegular says why a file that is not a regular file is refused.
func notRegular(path string, fi fs.FileInfo) string {
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			target = "?"
		}
		return fmt.Sprintf("symbolic link to %q: only regular files are ingested (a link could point anywhere)", target)
	}
	return fmt.Sprintf("not a regular file (mode %v): only regular files are ingested", fi.Mode().Type())
}

// ingest hands a complete file to the Acceptor and moves it by the answer.
func (r *run) ingest(p *pending, fi fs.FileInfo) {
	path := p.path()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		delete(r.files, path)
		return
	}
	if err != nil {
		r.failed(p, slog.LevelWarn, "drop file: cannot open it; retrying with backoff", "file", path, "err", err)
		return
	}
	// Between Lstat and Open the name may have been replaced (by a
	// symlink, say): only ingest the file that was looked at.
	if ofi, err := f.Stat(); err != nil || !os.SameFile(fi, ofi) {
		f.Close()
		p.changedAt, p.renamed = r.w.now(), false
		return
	}
	rc, err := r.w.acc.Accept(r.ctx, path, f)
	f.Close()
	switch {
	case err == nil:
		dst, err := r.move(p, fi, DoneDir)
		if errors.Is(err, errReplaced) {
			r.replaced(p)
			return
		}
		if err != nil {
			r.failed(p, slog.LevelError, "drop file: accepted, but cannot move it to done/; it will be offered again (the acceptor de-duplicates)",
				"file", path, "err", err)
			return
		}
		if p.failures > 0 {
			r.w.log.Info("drop file: accepted after transient failures", "file", path, "attempts", p.failures+1)
		}
		msg := "drop file: accepted"
		if rc.Duplicate {
			msg = "drop file: already ingested"
		}
		r.w.log.Info(msg, "file", path, "moved_to", dst, "batch", rc.BatchID, "workflow", rc.WorkflowID, "duplicate", rc.Duplicate)
	case Rejected(err):
		r.quarantine(p, fi, err.Error())
	case r.ctx.Err() != nil:
		// Shutting down: the file stays and is taken at the next start.
	default:
		r.failed(p, slog.LevelWarn, "drop file: not accepted (transient failure); leaving it in place and retrying with backoff",
			"file", path, "err", err)
	}
}

// failed records a failure that may pass (the store is down, a folder is
// not writable): the file stays and is offered again after a backoff. Only
// the first failure of a run of them is logged at level, later ones at
// debug level, so a store that is down for an hour does not flood the log.
func (r *run) failed(p *pending, level slog.Level, msg string, args ...any) {
	if p.failures > 0 {
		level = slog.LevelDebug
		args = append(args, "attempt", p.failures+1)
	}
	r.w.log.Log(r.ctx, level, msg, args...)
	r.backoff(p)
}

func (r *run) backoff(p *pending) {
	wait := r.w.retry[0]
	for i := 0; i < p.failures && wait < r.w.retry[1]; i++ {
		wait *= 2
	}
	p.failures++
	p.retryAt = r.w.now().Add(min(wait, r.w.retry[1]))
}

// quarantine moves a file to quarantine/ and writes the reason beside it.
func (r *run) quarantine(p *pending, fi fs.FileInfo, reason string) {
	path := p.path()
	dst, err := r.move(p, fi, QuarantineDir)
	if errors.Is(err, errReplaced) {
		r.replaced(p)
		return
	}
	if err != nil {
		r.failed(p, slog.LevelError, "drop file: rejected, but cannot move it to quarantine/; retrying with backoff",
			"file", path, "reason", reason, "err", err)
		return
	}
	now := r.w.now().UTC()
	text := fmt.Sprintf("file: %s\nquarantined: %s\nreason: %s\n", path, now.Format(time.RFC3339), reason)
	if err := writeFileAtomic(dst+".reason", []byte(text)); err != nil {
		r.w.log.Error("drop file: cannot write the quarantine reason", "file", dst+".reason", "err", err)
	}
	r.w.log.Warn("drop file: rejected; quarantined", "file", path, "moved_to", dst, "reason", reason)
}

// errReplaced says that the name no longer holds the file that was looked at.
var errReplaced = errors.New("replaced by a new file of the same name")

// replaced notes that a new file took the name while the old one was being
// handled: the new one is taken on its own, after its own wait.
func (r *run) replaced(p *pending) {
	r.w.log.Info("drop file: replaced by a new file of the same name while it was handled; the new one is taken on its own", "file", p.path())
	p.changedAt, p.renamed, p.failures, p.retryAt = r.w.now(), false, 0, time.Time{}
}

// move renames the file looked at (fi) into sub/ (done/ or quarantine/)
// under a name not taken yet there, stamps it with the time of the move
// (retention counts from it), stops tracking it and returns the new path.
// When the name holds another file by now (a box delivered the same name
// again while the first was accepted), it moves nothing and returns
// errReplaced.
func (r *run) move(p *pending, fi fs.FileInfo, sub string) (string, error) {
	path := p.path()
	if cur, err := os.Lstat(path); err == nil && !os.SameFile(fi, cur) {
		return "", errReplaced
	}
	dst, err := freeName(filepath.Join(p.dir, sub), p.name)
	if err != nil {
		return "", err
	}
	err = os.Rename(path, dst)
	if errors.Is(err, fs.ErrNotExist) && exists(path) {
		// The file is there, so the folder is not: someone removed done/
		// or quarantine/. Make it again.
		if err = makeSubdirs(p.dir); err == nil {
			err = os.Rename(path, dst)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !exists(path) {
			// Moved by someone else (another watcher of the same
			// directory): nothing left to do here.
			delete(r.files, path)
			return dst, nil
		}
		return "", fmt.Errorf("move %s to %s/: %w", path, sub, err)
	}
	delete(r.files, path)
	// Chtimes follows symlinks: a quarantined link keeps its own times,
	// and whatever it points to is left alone.
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		now := r.w.now()
		if err := os.Chtimes(dst, now, now); err != nil {
			r.w.log.Warn("drop file: cannot stamp the time of the move; retention counts from its last write", "file", dst, "err", err)
		}
	}
	return dst, nil
}

// freeName returns dir/name, or dir/stem-N.ext with the smallest N ≥ 1 when
// that is taken (or its .reason is), so that the same name dropped twice
// keeps both files.
func freeName(dir, name string) (string, error) {
	stem, ext := name, ""
	if i := strings.IndexByte(name[1:], '.'); i >= 0 {
		stem, ext = name[:i+1], name[i+1:]
	}
	for n := 0; n < 100000; n++ {
		cand := name
		if n > 0 {
			cand = fmt.Sprintf("%s-%d%s", stem, n, ext)
		}
		dst := filepath.Join(dir, cand)
		if !exists(dst) && !exists(dst+".reason") {
			return dst, nil
		}
	}
	return "", fmt.Errorf("find a free name for %s in %s: too many files of that name", name, dir)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// writeFileAtomic writes a file under a temporary name beside it and renames
// it into place, so that nobody reads it half written.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
