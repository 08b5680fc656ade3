package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
)

// TestCheckIngestPath builds a root with symlinks that lead out of it and a
// root that is itself a symlink, and checks what CheckIngestPath lets in.
func TestCheckIngestPath(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	sibling := filepath.Join(base, "rootx") // shares root's name as a prefix
	for _, d := range []string{filepath.Join(root, "sub"), outside, sibling} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for _, f := range []string{filepath.Join(root, "good.csv"), filepath.Join(root, "sub", "ok.csv"), filepath.Join(outside, "secret.csv"), filepath.Join(sibling, "f.csv")} {
		require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(root, "escape.csv")))
	require.NoError(t, os.Symlink("../outside", filepath.Join(root, "linkdir")))
	require.NoError(t, os.Symlink("sub/ok.csv", filepath.Join(root, "inner.csv")))
	rootLink := filepath.Join(base, "rootlink")
	require.NoError(t, os.Symlink(root, rootLink))

	cases := []struct {
		name  string
		path  string
		roots []string
		want  string // the resolved path, or
		err   string // the whole error
	}{
		{name: "inside", path: filepath.Join(root, "good.csv"), roots: []string{root}, want: filepath.Join(root, "good.csv")},
		{name: "in a subdirectory", path: filepath.Join(root, "sub", "ok.csv"), roots: []string{root}, want: filepath.Join(root, "sub", "ok.csv")},
		{name: "a symlink that stays inside", path: filepath.Join(root, "inner.csv"), roots: []string{root}, want: filepath.Join(root, "sub", "ok.csv")},
		{name: "a symlinked root", path: filepath.Join(rootLink, "good.csv"), roots: []string{rootLink}, want: filepath.Join(root, "good.csv")},
		{name: "the real path under a symlinked root", path: filepath.Join(root, "good.csv"), roots: []string{rootLink}, want: filepath.Join(root, "good.csv")},
		{name: "one of several roots", path: filepath.Join(outside, "secret.csv"), roots: []string{root, outside}, want: filepath.Join(outside, "secret.csv")},
		{name: ".. out of the root", path: root + "/../outside/secret.csv", roots: []string{root},
			err: `ingest "` + root + `/../outside/secret.csv": path is outside the allowed ingest roots ["` + root + `"] (config ingest.roots)`},
		{name: ".. out of a subdirectory", path: root + "/sub/../../outside/secret.csv", roots: []string{root},
			err: `ingest "` + root + `/sub/../../outside/secret.csv": path is outside the allowed ingest roots ["` + root + `"] (config ingest.roots)`},
		{name: "a symlinked file that points outside", path: filepath.Join(root, "escape.csv"), roots: []string{root},
			err: `ingest "` + root + `/escape.csv": path is outside the allowed ingest roots ["` + root + `"] (config ingest.roots): it resolves to "` + outside + `/secret.csv"`},
		{name: "a symlinked directory that points outside", path: filepath.Join(root, "linkdir", "secret.csv"), roots: []string{root},
			err: `ingest "` + root + `/linkdir/secret.csv": path is outside the allowed ingest roots ["` + root + `"] (config ingest.roots): it resolves to "` + outside + `/secret.csv"`},
		{name: "a sibling whose name starts with the root's", path: filepath.Join(sibling, "f.csv"), roots: []string{root},
			err: `ingest "` + sibling + `/f.csv": path is outside the allowed ingest roots ["` + root + `"] (config ingest.roots)`},
		{name: "no roots", path: filepath.Join(root, "good.csv"),
			err: `ingest "` + root + `/good.csv": no ingest roots configured (set ingest.roots to the directories batches are read from)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckIngestPath(tc.path, tc.roots)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := CheckIngestPath(filepath.Join(root, "nope.csv"), []string{root})
	require.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
	_, err = CheckIngestPath(filepath.Join(root, "good.csv"), nil)
	require.ErrorIs(t, err, ErrNoIngestRoots)
}

// TestStoreBatchKeepsSecretsOutOfErrors ingests files that are not
// telemetry but hold secrets: the activity's error and the quarantine
// record name the line and the reason, and at most a short excerpt.
func TestStoreBatchKeepsSecretsOutOfErrors(t *testing.T) {
	f := newFixture(t)
	const secret = "sk_live_51HqLyjWDarjtT1zdp7dc0123456789abcdef"
	cases := []struct {
		name, file, body, want string
	}{
		{"a one-line credentials file", "creds.csv", "Authorization: Bearer " + secret + "\n",
			"creds.csv:1: header is not time,box,component,metric,value: 1 columns, want 5"},
		{"a header with the secret in a column", "env.csv", "API_KEY=" + secret + ",box,component,metric,value\n",
			`env.csv:1: header is not time,box,component,metric,value: column 1 "API_KEY=sk_live_51HqLyjWDarjtT1z"... is unknown`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := f.write(t, tc.file, tc.body)
			_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
			require.Equal(t, ErrTypeInvalidTelemetry, appErrType(err))
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), secret[len(secret)-16:])
			id, err := HashFile(p)
			require.NoError(t, err)
			b, err := f.acts.Store.Batch(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, store.BatchQuarantined, b.Status)
			require.Equal(t, []string{tc.want}, b.Errors)
			require.False(t, strings.Contains(strings.Join(b.Errors, "\n"), secret[len(secret)-16:]))
		})
	}
}
