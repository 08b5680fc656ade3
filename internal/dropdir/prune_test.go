package dropdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// aged writes a file of size bytes under dir last modified age before now.
func aged(t *testing.T, path string, size int, now time.Time, age time.Duration) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644))
	require.NoError(t, os.Chtimes(path, now.Add(-age), now.Add(-age)))
}

func TestPruneRemovesOldFilesOnly(t *testing.T) {
	const day = 24 * time.Hour
	now := time.Now()
	tests := []struct {
		name       string
		done, quar time.Duration // retentions
		wantFiles  int
		wantBytes  int64
		left       []string
	}{
		{
			name: "both folders", done: 7 * day, quar: 30 * day,
			wantFiles: 3, wantBytes: 100 + 300 + 30,
			left: []string{"done/new.csv", "quarantine/mid.csv", "quarantine/mid.csv.reason"},
		},
		{
			name: "quarantine only", quar: 30 * day,
			wantFiles: 2, wantBytes: 300 + 30,
			left: []string{"done/old.csv", "done/new.csv", "quarantine/mid.csv", "quarantine/mid.csv.reason"},
		},
		{
			name:      "keep forever",
			wantFiles: 0, wantBytes: 0,
			left: []string{"done/old.csv", "done/new.csv", "quarantine/old.csv", "quarantine/old.csv.reason", "quarantine/mid.csv", "quarantine/mid.csv.reason"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := New(Options{Dirs: []string{dir}, Quiet: time.Second, Acceptor: &fakeAcceptor{},
				DoneRetention: tt.done, QuarantineRetention: tt.quar, PruneEvery: -1})
			require.NoError(t, err)
			aged(t, filepath.Join(dir, "done", "old.csv"), 100, now, 8*day)
			aged(t, filepath.Join(dir, "done", "new.csv"), 200, now, day)
			aged(t, filepath.Join(dir, "quarantine", "old.csv"), 300, now, 31*day)
			aged(t, filepath.Join(dir, "quarantine", "old.csv.reason"), 30, now, 31*day)
			aged(t, filepath.Join(dir, "quarantine", "mid.csv"), 400, now, 8*day)
			aged(t, filepath.Join(dir, "quarantine", "mid.csv.reason"), 40, now, 8*day)
			// Files in the drop directory itself are not Prune's business.
			aged(t, filepath.Join(dir, "waiting.csv"), 500, now, 365*day)

			rep, err := w.Prune(context.Background(), now)
			require.NoError(t, err)
			require.Equal(t, PruneReport{Files: tt.wantFiles, Bytes: tt.wantBytes}, rep)
			var got []string
			for _, sub := range []string{"done", "quarantine"} {
				entries, err := os.ReadDir(filepath.Join(dir, sub))
				require.NoError(t, err)
				for _, e := range entries {
					got = append(got, sub+"/"+e.Name())
				}
			}
			require.ElementsMatch(t, tt.left, got)
			require.True(t, exists(filepath.Join(dir, "waiting.csv")))
		})
	}
}

func TestRunPrunesAtStart(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "done", "old.csv")
	require.NoError(t, os.MkdirAll(filepath.Dir(old), 0o755))
	aged(t, old, 10, time.Now(), 48*time.Hour)
	_, logs := start(t, Options{Dirs: []string{dir}, Quiet: time.Second, Acceptor: &fakeAcceptor{},
		DoneRetention: 24 * time.Hour})
	require.Eventually(t, func() bool { return !exists(old) }, wait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return logs.count("files=1 bytes=10") == 1 }, wait, 10*time.Millisecond)
}

func TestMovedFilesAreStampedWithTheMoveTime(t *testing.T) {
	// rsync -t keeps the sender's mtime, which may be months old: retention
	// must count from the move to done/, not from that.
	dir := t.TempDir()
	path := filepath.Join(dir, "batch.csv")
	aged(t, path, 10, time.Now(), 90*24*time.Hour)
	start(t, Options{Dirs: []string{dir}, Quiet: 100 * time.Millisecond, Acceptor: &fakeAcceptor{}})
	waitFor(t, filepath.Join(dir, "done", "batch.csv"))
	fi, err := os.Stat(filepath.Join(dir, "done", "batch.csv"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), fi.ModTime(), time.Minute)
}
