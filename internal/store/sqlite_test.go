package store_test

import (
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLite(t) })
}

// rawSQLite opens the file behind a store for looking at what it wrote.
func rawSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSQLiteReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "a", "b", "sanwatch.db")
	s, err := store.OpenSQLite(path)
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	_, err = s.AppendSamples(ctx, []telemetry.Sample{{Time: at, Box: "b1", Component: "node/0", Metric: "m", Value: 1}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = store.OpenSQLite(path) // migrations already applied: nothing to do
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	got, err := s.LatestSample(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, at, got)

	db := rawSQLite(t, path)
	var versions, maxVersion int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&versions, &maxVersion))
	require.Equal(t, schemaVersions, versions)
	require.Equal(t, schemaVersions, maxVersion)
	var mode string
	require.NoError(t, db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
}

func TestSQLiteNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sanwatch.db")
	s, err := store.OpenSQLite(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = rawSQLite(t, path).Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`)
	require.NoError(t, err)
	_, err = store.OpenSQLite(path)
	require.EqualError(t, err, "open sqlite "+path+": migrate schema: database is at version 99, this build knows up to "+strconv.Itoa(schemaVersions))
}

func TestSQLiteInInventory(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sanwatch.db")
	s, err := store.OpenSQLite(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	db := rawSQLite(t, path)
	inInventory := func(id string) (bool, bool) {
		var in bool
		var lastSeen sql.NullInt64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT in_inventory, last_seen FROM boxes WHERE id = ?`, id).Scan(&in, &lastSeen))
		return in, lastSeen.Valid
	}

	require.NoError(t, s.TouchBoxes(ctx, []string{"b1"}))
	in, seen := inInventory("b1")
	require.False(t, in)
	require.True(t, seen)
	require.NoError(t, s.UpsertBoxes(ctx, []fleet.Box{{ID: "b1", Model: "m"}, {ID: "b2"}}))
	in, seen = inInventory("b1")
	require.True(t, in)
	require.True(t, seen, "upsert keeps last_seen")
	in, seen = inInventory("b2")
	require.True(t, in)
	require.False(t, seen)
}

// TestSQLiteTwoHandles writes through two stores on one file at once, as two
// processes would: the busy timeout makes them wait instead of failing.
func TestSQLiteTwoHandles(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sanwatch.db")
	var stores []*store.SQLite
	for range 2 {
		s, err := store.OpenSQLite(path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range 4 {
		wg.Go(func() {
			s := stores[g%2]
			for b := range 10 {
				var batch []telemetry.Sample
				for i := range 50 {
					batch = append(batch, telemetry.Sample{Time: t0.Add(time.Duration(b*50+i) * time.Second),
						Box: fmt.Sprintf("g%d", g), Component: "node/0", Metric: "m", Value: 1})
				}
				if _, err := s.AppendSamples(ctx, batch); err != nil {
					errs[g] = err
					return
				}
				if _, err := s.Window(ctx, fmt.Sprintf("g%d", g), t0, t0.Add(time.Hour)); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for g, err := range errs {
		require.NoError(t, err, "goroutine %d", g)
		w, err := stores[0].Window(ctx, fmt.Sprintf("g%d", g), t0, t0.Add(time.Hour))
		require.NoError(t, err)
		require.Len(t, w, 500)
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte(strings.Repeat("not a database ", 512)), 0o644))
	tests := []struct {
		name string
		path string
		want string
	}{
		{"empty path", "", "open sqlite: empty path"},
		{"parent is a file", filepath.Join(file, "sanwatch.db"),
			"open sqlite: create directory: mkdir " + file + ": not a directory"},
		{"not a database", file, "open sqlite " + file + ": migrate schema: begin: file is not a database (26)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.OpenSQLite(tc.path)
			require.EqualError(t, err, tc.want)
			require.Nil(t, s)
		})
	}
}

// TestSQLiteRetentionShrinksFile: after a retention run (deletes, then
// Compact) the database file gives the space back, whether it was created
// with auto_vacuum=INCREMENTAL or before the store set it (auto_vacuum off:
// Compact runs VACUUM once, which switches the file to INCREMENTAL).
func TestSQLiteRetentionShrinksFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // before the store opens the file
		mode    int                             // auto_vacuum before the first Compact
	}{
		{"new file", func(*testing.T, string) {}, 2},
		{"file from before auto_vacuum", func(t *testing.T, path string) {
			db := rawSQLite(t, path)
			_, err := db.ExecContext(t.Context(), `CREATE TABLE unrelated (a INTEGER)`)
			require.NoError(t, err)
			require.NoError(t, db.Close())
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "sanwatch.db")
			tc.prepare(t, path)
			s, err := store.OpenSQLite(path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			raw := rawSQLite(t, path)
			autoVacuum := func() int {
				// A fresh connection: PRAGMA auto_vacuum answers from what the
				// connection read when it last loaded the file's header.
				var mode int
				require.NoError(t, rawSQLite(t, path).QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode))
				return mode
			}
			size := func() int64 {
				_, err := raw.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
				require.NoError(t, err)
				fi, err := os.Stat(path)
				require.NoError(t, err)
				return fi.Size()
			}
			require.Equal(t, tc.mode, autoVacuum())

			start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var in []telemetry.Sample
			// Noisy values: chunks compress regular ones to a few bytes a
			// sample, and the file would be mostly its fixed pages.
			for i := range 200000 {
				in = append(in, telemetry.Sample{Time: start.Add(time.Duration(i) * time.Minute), Box: fmt.Sprintf("b%d", i%7),
					Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: math.Sin(float64(i)) * 1e6})
			}
			_, err = s.AppendSamples(ctx, in)
			require.NoError(t, err)
			full := size()
			for {
				n, err := s.DeleteSamplesBefore(ctx, start.AddDate(1, 0, 0), 1000)
				require.NoError(t, err)
				if n < 1000 {
					break
				}
			}
			require.NoError(t, s.Compact(ctx))
			require.Less(t, size(), full/2, "file of %d bytes did not shrink", full)
			require.Equal(t, 2, autoVacuum(), "auto_vacuum after Compact")
		})
	}
}

// TestSealSkipsCorruptChunk: a chunk damaged on disk leaves its day
// unsealed and named, the other days are sealed, and reading it fails
// saying why, rather than every later retention run failing.
func TestSealSkipsCorruptChunk(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sanwatch.db")
	s, err := store.OpenSQLite(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var batch []telemetry.Sample
	for _, box := range []string{"b1", "b2"} {
		for i := range 12 {
			batch = append(batch, telemetry.Sample{Box: box, Component: "pool/p0", Metric: telemetry.PoolUsedBytes,
				Time: day.Add(time.Duration(i) * time.Hour), Value: float64(i)})
		}
	}
	_, err = s.AppendSamples(ctx, batch)
	require.NoError(t, err)
	for _, box := range []string{"b1", "b2"} { // a late row each: the days need merging
		_, err = s.AppendSamples(ctx, []telemetry.Sample{{Box: box, Component: "pool/p0", Metric: telemetry.PoolUsedBytes,
			Time: day.Add(30 * time.Minute), Value: 9}})
		require.NoError(t, err)
	}
	_, err = rawSQLite(t, path).ExecContext(ctx, `UPDATE sample_chunks SET data = x'01ff' WHERE series_id =
		(SELECT id FROM series WHERE box = 'b1')`)
	require.NoError(t, err)

	res, err := s.SealSamples(ctx, day.Add(48*time.Hour), 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, res.Days, "b2's day")
	require.Len(t, res.Corrupt, 1)
	require.Contains(t, res.Corrupt[0], "2026-03-01")
	require.Contains(t, res.Corrupt[0], "corrupt sample chunk")
	_, err = s.Window(ctx, "b1", day, day.Add(24*time.Hour))
	require.ErrorContains(t, err, "query window of b1: b1 pool/p0 pool.used_bytes: corrupt sample chunk")
	w, err := s.Window(ctx, "b2", day, day.Add(24*time.Hour))
	require.NoError(t, err)
	require.Len(t, w, 13)
}
