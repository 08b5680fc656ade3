package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
)

// TestCheckNamesFailingAnalyzers runs `starter check` on a store where
// external analyzers recorded their runs: one that fails is a WARNING that
// names it, its box and its last error.
func TestCheckNamesFailingAnalyzers(t *testing.T) {
	t.Setenv("SANWATCH_INVENTORY", filepath.Join(t.TempDir(), "none.yaml"))
	now := time.Now().UTC()
	cases := []struct {
		name string
		runs []store.AnalyzerRun
		code int
		out  string
	}{
		{name: "none recorded", code: checkOK,
			out: "SANWATCH OK - no unacknowledged findings | critical=0 warning=0 notify_failing=0\n"},
		{name: "fine since an old failure", code: checkOK,
			runs: []store.AnalyzerRun{
				{Analyzer: "fans", Box: "box-1", At: now.Add(-3 * time.Hour), Err: "old"},
				{Analyzer: "fans", Box: "box-1", At: now.Add(-time.Minute), Rules: []string{"fan_stopped"}},
			},
			out: "SANWATCH OK - no unacknowledged findings | critical=0 warning=0 notify_failing=0\n"},
		{name: "its last run failed: named with its error on one line", code: checkWarning,
			runs: []store.AnalyzerRun{
				{Analyzer: "psu", Box: "box-1", At: now.Add(-time.Minute)},
				{Analyzer: "fans", Box: "box-2", At: now.Add(-3 * time.Hour), Rules: []string{"fan_stopped"}},
				{Analyzer: "fans", Box: "box-7", At: now.Add(-2 * time.Hour), Err: "run external analyzer \"fans\": exit status 3; stderr: fan table\nmissing"},
			},
			out: `SANWATCH WARNING - external analyzer "fans" failed 2h0m0s ago on box box-7 (its findings are unknown): ` +
				`run external analyzer "fans": exit status 3; stderr: fan table missing | critical=0 warning=0 notify_failing=0` + "\n"},
		{name: "failed on one box within the hour, fine on others since", code: checkWarning,
			runs: []store.AnalyzerRun{
				{Analyzer: "fans", Box: "box-7", At: now.Add(-10 * time.Minute), Err: "bad"},
				{Analyzer: "fans", Box: "box-2", At: now.Add(-time.Minute)},
			},
			out: `SANWATCH WARNING - external analyzer "fans" failed 10m0s ago on box box-7 (its findings are unknown): bad | critical=0 warning=0 notify_failing=0` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			st, err := store.OpenSQLite(path)
			require.NoError(t, err)
			for _, r := range tc.runs {
				require.NoError(t, st.RecordAnalyzerRun(context.Background(), r))
			}
			require.NoError(t, st.Close())
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"check", "--temporal=false", "--set", "store.path=" + path}, &stdout, &stderr)
			require.Equal(t, tc.code, code, stderr.String())
			// The age is rounded to the second: allow for the time the test took.
			require.Equal(t, tc.out, stdout.String())
		})
	}
}
