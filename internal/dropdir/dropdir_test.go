package dropdir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
)

// These tests run the real watcher on the real file system with real
// fsnotify events; the Acceptor, the package's boundary, is a fake that
// de-duplicates by content hash like the receiver does.

// wait is how long a test waits for something that should happen well
// within a second: generous, so a loaded 2-core machine running -race does
// not make the tests flaky.
const wait = 15 * time.Second

// call is one Accept the fake saw.
type call struct {
	name    string
	body    []byte
	receipt Receipt
	err     error
	at      time.Time
}

// fakeAcceptor records calls and de-duplicates by the sha256 of the content.
type fakeAcceptor struct {
	// fail, when set, may refuse a body (a rejection or a transient error)
	// before it is taken.
	fail func(name string, body []byte) error

	mu    sync.Mutex
	seen  map[string]Receipt // by content hash
	calls []call
}

var _ Acceptor = (*fakeAcceptor)(nil)

func (a *fakeAcceptor) Accept(ctx context.Context, name string, body io.Reader) (Receipt, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return Receipt{}, fmt.Errorf("read %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:8])
	a.mu.Lock()
	defer a.mu.Unlock()
	c := call{name: name, body: b, at: time.Now()}
	if a.fail != nil {
		if c.err = a.fail(name, b); c.err != nil {
			a.calls = append(a.calls, c)
			return Receipt{}, c.err
		}
	}
	if a.seen == nil {
		a.seen = map[string]Receipt{}
	}
	r, dup := a.seen[id]
	if !dup {
		r = Receipt{BatchID: id, WorkflowID: "ingest-" + id}
		a.seen[id] = r
	}
	r.Duplicate = dup
	c.receipt = r
	a.calls = append(a.calls, c)
	return r, nil
}

func (a *fakeAcceptor) snapshot() (calls []call, stored int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]call(nil), a.calls...), len(a.seen)
}

// logBuf collects the watcher's log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs a watcher over opts until the test ends, and returns once it
// watches (events from then on are seen).
func start(t *testing.T, opts Options) (*Watcher, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(wait):
			t.Error("Run did not return after its context was cancelled")
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", logs)
		}
	})
	require.Eventually(t, func() bool { return logs.count("watching drop directories") == 1 }, wait, 5*time.Millisecond)
	return w, logs
}

// drop delivers a file the way an SFTP client should: written under a .part
// name, then renamed into place.
func drop(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, name+".part")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool { return exists(path) }, wait, 10*time.Millisecond, "waiting for %s", path)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestRenameIntoPlaceIsIngestedPromptly(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	// A quiet period far longer than the wait: only the rename can explain
	// the file going in.
	start(t, Options{Dirs: []string{dir}, Quiet: time.Hour, Acceptor: acc})

	began := time.Now()
	drop(t, dir, "batch.csv", "time,box,component,metric,value\n")
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	t.Logf("renamed file ingested after %v (quiet period 1h)", time.Since(began).Round(time.Millisecond))

	calls, _ := acc.snapshot()
	require.Len(t, calls, 1)
	require.Equal(t, filepath.Join(dir, "batch.csv"), calls[0].name)
	require.Equal(t, "time,box,component,metric,value\n", string(calls[0].body))
	require.False(t, exists(filepath.Join(dir, "batch.csv")))
	require.False(t, exists(filepath.Join(dir, "batch.csv.part")))
}

func TestFileStillBeingWrittenWaitsUntilQuiet(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	// The writer appends every 50ms for 1.5s, three times the quiet period;
	// the quiet period is ten times the gap between writes, so a busy
	// machine does not make the writer look finished.
	const quiet = 500 * time.Millisecond
	start(t, Options{Dirs: []string{dir}, Quiet: quiet, Acceptor: acc})

	path := filepath.Join(dir, "slow.csv")
	f, err := os.Create(path)
	require.NoError(t, err)
	var want strings.Builder
	var lastWrite time.Time
	deadline := time.Now().Add(3 * quiet)
	for i := 0; time.Now().Before(deadline); i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		line := fmt.Sprintf("2026-11-30T05:00:%02dZ,box1,pool/p0,pool.used_bytes,%d\n", i%60, i)
		_, err := f.WriteString(line)
		require.NoError(t, err)
		lastWrite = time.Now()
		want.WriteString(line)
	}
	require.NoError(t, f.Close())
	calls, _ := acc.snapshot()
	require.Empty(t, calls, "the file was taken while it was still being written")

	waitFor(t, filepath.Join(dir, "done", "slow.csv"))
	calls, _ = acc.snapshot()
	require.Len(t, calls, 1)
	require.Equal(t, want.String(), string(calls[0].body), "the batch is not the complete file")
	require.False(t, calls[0].at.Before(lastWrite.Add(quiet)), "taken %v after the last write, before the quiet period", calls[0].at.Sub(lastWrite))
	t.Logf("taken %v after the last write (quiet period %v)", calls[0].at.Sub(lastWrite).Round(time.Millisecond), quiet)
	require.Equal(t, want.String(), readFile(t, filepath.Join(dir, "done", "slow.csv")))
}

func TestSameFileDroppedTwice(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	_, logs := start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc})

	const body = "time,box,component,metric,value\n1764478800,box1,disk/1,disk.temperature_c,41\n"
	drop(t, dir, "batch.csv", body)
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	drop(t, dir, "batch.csv", body)
	waitFor(t, filepath.Join(dir, "done", "batch-1.csv"))

	calls, stored := acc.snapshot()
	require.Len(t, calls, 2)
	require.False(t, calls[0].receipt.Duplicate)
	require.True(t, calls[1].receipt.Duplicate)
	require.Equal(t, calls[0].receipt.BatchID, calls[1].receipt.BatchID)
	require.Equal(t, 1, stored, "the acceptor stored the content more than once")
	require.Equal(t, body, readFile(t, filepath.Join(dir, "done", "batch.csv")))
	require.Equal(t, body, readFile(t, filepath.Join(dir, "done", "batch-1.csv")))
	require.Eventually(t, func() bool { return logs.count("already ingested") == 1 }, wait, 10*time.Millisecond)
	require.False(t, exists(filepath.Join(dir, "batch.csv")))
}

func TestRejectedFileIsQuarantinedWithReason(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{fail: func(name string, body []byte) error {
		if bytes.Contains(body, []byte("yesterday")) {
			return Reject(fmt.Errorf("line 2: bad time %q", "yesterday"))
		}
		return nil
	}}
	// The watcher's clock (Options.Now) stamps the reason, here two days
	// behind the wall clock.
	const skew = -48 * time.Hour
	start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc,
		Now: func() time.Time { return time.Now().Add(skew) }})

	const body = "time,box,component,metric,value\nyesterday,box1,disk/1,disk.temperature_c,41\n"
	drop(t, dir, "bad.csv", body)
	waitFor(t, filepath.Join(dir, "quarantine", "bad.csv.reason"))

	require.Equal(t, body, readFile(t, filepath.Join(dir, "quarantine", "bad.csv")))
	reason := readFile(t, filepath.Join(dir, "quarantine", "bad.csv.reason"))
	require.Contains(t, reason, "file: "+filepath.Join(dir, "bad.csv")+"\n")
	require.Contains(t, reason, "reason: line 2: bad time \"yesterday\"\n")
	var stamp string
	for _, line := range strings.Split(reason, "\n") {
		if s, ok := strings.CutPrefix(line, "quarantined: "); ok {
			stamp = s
		}
	}
	at, err := time.Parse(time.RFC3339, stamp)
	require.NoError(t, err, "reason file:\n%s", reason)
	require.WithinDuration(t, time.Now().Add(skew), at, time.Minute)
	require.False(t, exists(filepath.Join(dir, "bad.csv")))
	require.False(t, exists(filepath.Join(dir, "done", "bad.csv")))
}

func TestTransientFailureKeepsFileUntilAccepted(t *testing.T) {
	dir := t.TempDir()
	var down atomic.Bool
	down.Store(true)
	acc := &fakeAcceptor{fail: func(string, []byte) error {
		if down.Load() {
			return errors.New("put batch: connection refused")
		}
		return nil
	}}
	_, logs := start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})

	drop(t, dir, "batch.csv", "time,box,component,metric,value\n")
	require.Eventually(t, func() bool { calls, _ := acc.snapshot(); return len(calls) >= 4 }, wait, 10*time.Millisecond)
	require.True(t, exists(filepath.Join(dir, "batch.csv")), "the file left the drop directory while the store was down")
	require.False(t, exists(filepath.Join(dir, "done", "batch.csv")))
	require.False(t, exists(filepath.Join(dir, "quarantine", "batch.csv")))

	down.Store(false)
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	calls, stored := acc.snapshot()
	require.Equal(t, 1, stored)
	require.GreaterOrEqual(t, len(calls), 5)
	require.Eventually(t, func() bool { return logs.count("accepted after transient failures") == 1 }, wait, 10*time.Millisecond)
	require.Equal(t, 1, logs.count("level=WARN msg=\"drop file: not accepted (transient failure)"), "a failure is logged once, not per attempt")
	require.GreaterOrEqual(t, logs.count("level=DEBUG msg=\"drop file: not accepted (transient failure)"), 3, "later attempts are logged at debug level")
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	w := &Watcher{retry: [2]time.Duration{time.Second, 5 * time.Second}}
	now := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	r := &run{w: w}
	p := &pending{}
	var got []time.Duration
	for range 5 {
		r.backoff(p)
		got = append(got, p.retryAt.Sub(now))
	}
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
}

func TestFilesPresentBeforeRunArePickedUpAndIgnoredNamesLeftAlone(t *testing.T) {
	dir := t.TempDir()
	take := []string{"a.csv", "b.jsonl.gz", "no-extension"}
	leave := []string{".hidden.csv", "c.csv.part", "d.csv.tmp", "e.csv.filepart", "F.CSV.PART"}
	for _, name := range append(append([]string(nil), take...), leave...) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("content of "+name), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))
	acc := &fakeAcceptor{}
	const quiet = 200 * time.Millisecond
	start(t, Options{Dirs: []string{dir}, Quiet: quiet, Acceptor: acc})

	for _, name := range take {
		waitFor(t, filepath.Join(dir, "done", name))
		require.Equal(t, "content of "+name, readFile(t, filepath.Join(dir, "done", name)))
	}
	// The ignored files were listed with the others; give the watcher more
	// than another quiet period to (wrongly) take them.
	time.Sleep(3 * quiet)
	for _, name := range leave {
		require.True(t, exists(filepath.Join(dir, name)), "%s was moved", name)
	}
	require.True(t, exists(filepath.Join(dir, "subdir")))
	calls, _ := acc.snapshot()
	require.Len(t, calls, len(take))
}

func TestNonRegularFilesAreQuarantined(t *testing.T) {
	tests := []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string
	}{
		{
			name: "symlink",
			make: func(t *testing.T, path string) {
				target := filepath.Join(t.TempDir(), "secret")
				require.NoError(t, os.WriteFile(target, []byte("not telemetry"), 0o600))
				old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
				require.NoError(t, os.Chtimes(target, old, old))
				require.NoError(t, os.Symlink(target, path))
				t.Cleanup(func() {
					// The link's target is neither read nor touched.
					fi, err := os.Stat(target)
					require.NoError(t, err)
					require.True(t, fi.ModTime().Equal(old), "the link's target was touched")
				})
			},
			reason: "symbolic link to ",
		},
		{
			name: "named pipe",
			make: func(t *testing.T, path string) {
				// Opening a FIFO for reading would block the watcher.
				require.NoError(t, syscall.Mkfifo(path, 0o644))
			},
			reason: "not a regular file (mode p",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			acc := &fakeAcceptor{}
			start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc})

			tt.make(t, filepath.Join(dir, "link.csv"))
			waitFor(t, filepath.Join(dir, "quarantine", "link.csv.reason"))
			require.Contains(t, readFile(t, filepath.Join(dir, "quarantine", "link.csv.reason")), "reason: "+tt.reason)
			require.True(t, exists(filepath.Join(dir, "quarantine", "link.csv")))
			require.False(t, exists(filepath.Join(dir, "link.csv")))
			calls, _ := acc.snapshot()
			require.Empty(t, calls)
		})
	}
}

func TestFreeName(t *testing.T) {
	tests := []struct {
		name  string
		taken []string
		want  string
	}{
		{name: "batch.csv", want: "batch.csv"},
		{name: "batch.csv", taken: []string{"batch.csv"}, want: "batch-1.csv"},
		{name: "batch.csv.gz", taken: []string{"batch.csv.gz", "batch-1.csv.gz"}, want: "batch-2.csv.gz"},
		{name: "noext", taken: []string{"noext"}, want: "noext-1"},
		{name: "bad.csv", taken: []string{"bad.csv.reason"}, want: "bad-1.csv"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.name}, tt.taken...), "+"), func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range tt.taken {
				require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
			}
			got, err := freeName(dir, tt.name)
			require.NoError(t, err)
			require.Equal(t, filepath.Join(dir, tt.want), got)
		})
	}
}

type rejection struct{ bad bool }

func (r rejection) Error() string  { return "rejection" }
func (r rejection) Rejected() bool { return r.bad }

func TestRejected(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("connection refused"), false},
		{"Reject", Reject(errors.New("bad header")), true},
		{"wrapped Reject", fmt.Errorf("accept x: %w", Reject(errors.New("bad header"))), true},
		{"own type saying yes", fmt.Errorf("accept x: %w", rejection{bad: true}), true},
		{"own type saying no", rejection{bad: false}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Rejected(tt.err))
		})
	}
	require.NoError(t, Reject(nil))
	require.EqualError(t, Reject(errors.New("bad header")), "bad header")
}

func TestNewChecksOptionsAndDirs(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	missing := filepath.Join(tmp, "missing")
	doneIsFile := filepath.Join(tmp, "donefile")
	require.NoError(t, os.Mkdir(doneIsFile, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(doneIsFile, "done"), nil, 0o644))
	acc := &fakeAcceptor{}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no dirs", Options{Quiet: time.Second, Acceptor: acc}, "drop dirs: none given"},
		{"no quiet", Options{Dirs: []string{tmp}, Acceptor: acc}, "drop quiet 0s: must be > 0"},
		{"no acceptor", Options{Dirs: []string{tmp}, Quiet: time.Second}, "drop dirs: no acceptor"},
		{"negative retry", Options{Dirs: []string{tmp}, Quiet: time.Second, Acceptor: acc, RetryMin: -time.Second},
			"drop retry min -1s: must not be negative"},
		{"negative retention", Options{Dirs: []string{tmp}, Quiet: time.Second, Acceptor: acc, QuarantineRetention: -time.Hour},
			"drop quarantine retention -1h0m0s: must not be negative"},
		{"missing", Options{Dirs: []string{missing}, Quiet: time.Second, Acceptor: acc},
			fmt.Sprintf("drop dir %q: does not exist (create it, writable by this process)", missing)},
		{"a file", Options{Dirs: []string{file}, Quiet: time.Second, Acceptor: acc},
			fmt.Sprintf("drop dir %q: not a directory", file)},
		{"twice", Options{Dirs: []string{tmp, tmp + "/"}, Quiet: time.Second, Acceptor: acc},
			fmt.Sprintf("drop dir %q: listed twice", tmp+"/")},
		{"done is a file", Options{Dirs: []string{doneIsFile}, Quiet: time.Second, Acceptor: acc},
			fmt.Sprintf("drop dir %q: done is not a directory", doneIsFile)},
		// sysfs refuses new files even to root, which a chmod'ed
		// directory would not.
		{"not writable", Options{Dirs: []string{"/sys"}, Quiet: time.Second, Acceptor: acc},
			`drop dir "/sys": not writable: open /sys/.sanwatch-probe-`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			require.Error(t, err)
			if strings.HasSuffix(tt.want, "-") {
				require.ErrorContains(t, err, tt.want)
			} else {
				require.EqualError(t, err, tt.want)
			}
		})
	}

	w, err := New(Options{Dirs: []string{tmp}, Quiet: time.Second, Acceptor: acc})
	require.NoError(t, err)
	require.Equal(t, []string{tmp}, w.Dirs())
	for _, sub := range []string{"done", "quarantine"} {
		fi, err := os.Stat(filepath.Join(tmp, sub))
		require.NoError(t, err)
		require.True(t, fi.IsDir())
	}
}

func TestDirRemovedAndMadeAgainIsWatchedAgain(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	// With an hour's quiet period only a rename event can get the file in
	// within the wait: the directory must be watched again, not just listed.
	_, logs := start(t, Options{Dirs: []string{dir}, Quiet: time.Hour, Rescan: 50 * time.Millisecond, Acceptor: acc})

	require.NoError(t, os.RemoveAll(dir))
	require.Eventually(t, func() bool { return logs.count("drop dir: cannot list it") == 1 }, wait, 10*time.Millisecond)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.Eventually(t, func() bool { return logs.count("drop dir: listed again") == 1 }, wait, 10*time.Millisecond)

	drop(t, dir, "batch.csv", "time,box,component,metric,value\n")
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	require.Equal(t, 1, logs.count("drop dir: cannot list it"), "a listing error is logged once")
}

func TestDoneFolderRemovedIsMadeAgain(t *testing.T) {
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc})
	require.NoError(t, os.Remove(filepath.Join(dir, "done")))

	drop(t, dir, "batch.csv", "time,box,component,metric,value\n")
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	calls, _ := acc.snapshot()
	require.Len(t, calls, 1)
}

func TestFileWrittenUnderItsFinalNameIsNotTakenForARename(t *testing.T) {
	// A writer creates the final name, writes, and pauses for longer than
	// a renamed file needs to settle. The Create event came with the first
	// bytes already there, but the Write event says it is not whole: it
	// must wait for the quiet period. The pause is a quarter of the quiet
	// period, so a loaded machine does not stretch it into one.
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	const quiet = 2 * time.Second
	start(t, Options{Dirs: []string{dir}, Quiet: quiet, Acceptor: acc})

	f, err := os.Create(filepath.Join(dir, "batch.csv"))
	require.NoError(t, err)
	_, err = f.WriteString("time,box,component,metric,value\n")
	require.NoError(t, err)
	time.Sleep(quiet / 4)
	_, err = f.WriteString("1764478800,box1,disk/1,disk.temperature_c,41\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	calls, _ := acc.snapshot()
	require.Len(t, calls, 1)
	require.Equal(t, "time,box,component,metric,value\n1764478800,box1,disk/1,disk.temperature_c,41\n", string(calls[0].body))
}

func TestFileReplacedWhileAcceptedIsNotMovedUnseen(t *testing.T) {
	// The box delivers batch.csv again (renamed over the first) while the
	// first is being accepted: the new content must be accepted on its
	// own, not moved to done/ unseen.
	dir := t.TempDir()
	path := filepath.Join(dir, "batch.csv")
	var once sync.Once
	acc := &fakeAcceptor{fail: func(name string, body []byte) error {
		once.Do(func() {
			tmp := path + ".part"
			if err := os.WriteFile(tmp, []byte("second delivery\n"), 0o644); err == nil {
				os.Rename(tmp, path)
			}
		})
		return nil
	}}
	start(t, Options{Dirs: []string{dir}, Quiet: 200 * time.Millisecond, Acceptor: acc})

	drop(t, dir, "batch.csv", "first delivery\n")
	require.Eventually(t, func() bool { calls, _ := acc.snapshot(); return len(calls) == 2 }, wait, 10*time.Millisecond)
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	calls, stored := acc.snapshot()
	require.Equal(t, "first delivery\n", string(calls[0].body))
	require.Equal(t, "second delivery\n", string(calls[1].body))
	require.Equal(t, 2, stored)
	require.Equal(t, "second delivery\n", readFile(t, filepath.Join(dir, "done", "batch.csv")))
}

func TestQuietPeriodCountsFromTheLastChangeSeen(t *testing.T) {
	// No events here, as for a file written over NFS from another host:
	// the listing finds the file, and size or mtime changes seen when it
	// is looked at restart the quiet period. The clock is fake, so the
	// steps are exact.
	dir := t.TempDir()
	acc := &fakeAcceptor{}
	const quiet = 10 * time.Second
	clock := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	w, err := New(Options{Dirs: []string{dir}, Quiet: quiet, Acceptor: acc,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }})
	require.NoError(t, err)
	fw, err := fsnotify.NewWatcher() // watches nothing: no events
	require.NoError(t, err)
	defer fw.Close()
	r := &run{w: w, ctx: context.Background(), fw: fw, files: map[string]*pending{}, dirErr: map[string]string{}}

	path := filepath.Join(dir, "batch.csv")
	require.NoError(t, os.WriteFile(path, []byte("part one\n"), 0o644))
	r.scan()
	steps := []struct {
		after  time.Duration // since the start
		append string        // written before the check
		taken  bool
	}{
		{after: 0},
		{after: quiet / 2, append: "part two\n"}, // a change: the wait starts again
		{after: quiet},
		{after: quiet/2 + quiet - time.Millisecond},
		{after: quiet/2 + quiet, taken: true},
	}
	start := clock
	for _, st := range steps {
		clock = start.Add(st.after)
		if st.append != "" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteString(st.append)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
		r.check()
		calls, _ := acc.snapshot()
		require.Equal(t, st.taken, len(calls) == 1, "at %v", st.after)
	}
	calls, _ := acc.snapshot()
	require.Equal(t, "part one\npart two\n", string(calls[0].body))
	require.True(t, exists(filepath.Join(dir, "done", "batch.csv")))
}
