package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Environment of the child processes TestConcurrentOpenProcesses starts:
// the test binary re-executed, opening one store and writing to it.
const (
	childDriverEnv = "SANWATCH_STORE_OPEN_CHILD"
	childTargetEnv = "SANWATCH_STORE_OPEN_TARGET"
	childIDEnv     = "SANWATCH_STORE_OPEN_ID"
	// schemaVersions is how many migrations each backend has.
	schemaVersions = 9
)

// TestMain lets this test binary run as one of the processes of
// TestConcurrentOpenProcesses when childDriverEnv is set.
func TestMain(m *testing.M) {
	if driver := os.Getenv(childDriverEnv); driver != "" {
		// Wait at the gate: the parent closes stdin once every child has
		// started, so they all open the store at the same moment.
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := openChild(driver, os.Getenv(childTargetEnv), os.Getenv(childIDEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Println("child: up")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// openChild is what a starting worker does with the store: open it (and so
// migrate it), write, read back, close.
func openChild(driver, target, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := store.Options{Driver: driver, Path: target, DSN: target}
	s, err := store.Open(ctx, o)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	box := "box-" + id
	at := time.Unix(1_800_000_000, 0).UTC()
	if _, err := s.AppendSamples(ctx, []telemetry.Sample{{Time: at, Box: box, Component: "pool/p0", Metric: "pool.used_bytes", Value: 1}}); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	got, err := s.LatestSample(ctx, box)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if !got.Equal(at) {
		return fmt.Errorf("read back %s, wrote %s", got, at)
	}
	return s.Close()
}

// TestConcurrentOpenProcesses starts several processes at once on a new
// database, 50 rounds per backend, as workers starting together on a fresh
// machine do: every one must come up, and the schema must be migrated exactly
// once. 8 processes rather than 4: without the SQLite migration lock, 8 on
// 2 cores hit SQLITE_BUSY in most runs of 50 rounds, 4 only now and then.
func TestConcurrentOpenProcesses(t *testing.T) {
	const rounds, procs = 50, 8
	self, err := os.Executable()
	require.NoError(t, err)
	cases := []struct {
		driver  string
		target  func(t *testing.T) string
		version func(t *testing.T, target string) (rows, max int)
	}{
		{
			driver: store.DriverSQLite,
			target: func(t *testing.T) string { return filepath.Join(t.TempDir(), "data", "sanwatch.db") },
			version: func(t *testing.T, target string) (int, int) {
				return sqliteVersions(t, target)
			},
		},
		{
			driver: store.DriverPostgres,
			target: func(t *testing.T) string { return postgresSchema(t) },
			version: func(t *testing.T, target string) (rows, max int) {
				require.NoError(t, rawPostgres(t, target).QueryRow(t.Context(),
					`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &max))
				return rows, max
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.driver, func(t *testing.T) {
			for round := range rounds {
				target := tc.target(t)
				cmds := make([]*exec.Cmd, procs)
				gates := make([]io.WriteCloser, procs)
				outs := make([]*bytes.Buffer, procs)
				for i := range procs {
					outs[i] = &bytes.Buffer{}
					cmd := exec.Command(self, "-test.run=^$")
					cmd.Env = append(os.Environ(), childDriverEnv+"="+tc.driver, childTargetEnv+"="+target,
						fmt.Sprintf("%s=%d", childIDEnv, i))
					cmd.Stdout, cmd.Stderr = outs[i], outs[i]
					cmds[i] = cmd
					gate, err := cmd.StdinPipe()
					require.NoError(t, err)
					gates[i] = gate
				}
				// Start all, then open the gate, so that they race.
				for i, cmd := range cmds {
					require.NoError(t, cmd.Start(), "round %d: start process %d", round, i)
					t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				}
				for _, g := range gates {
					require.NoError(t, g.Close())
				}
				for i, cmd := range cmds {
					err := cmd.Wait()
					require.NoError(t, err, "round %d: process %d did not come up:\n%s", round, i, outs[i])
					require.Contains(t, outs[i].String(), "child: up", "round %d: process %d", round, i)
				}
				rows, maxV := tc.version(t, target)
				require.Equal(t, schemaVersions, maxV, "round %d: migrated to the newest version", round)
				require.Equal(t, schemaVersions, rows, "round %d: every version recorded once", round)
				if tc.driver == store.DriverSQLite {
					require.NoError(t, os.RemoveAll(filepath.Dir(target)))
				}
			}
		})
	}
}

// sqliteVersions reads the migration rows of the SQLite file at path.
func sqliteVersions(t *testing.T, path string) (rows, max int) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	require.NoError(t, err)
	defer func() { _ = db.Close() }()
	require.NoError(t, db.QueryRowContext(t.Context(),
		`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &max))
	return rows, max
}

// TestMigrateSamplesBySeries opens a database of schema version 7 holding
// samples in the old layout (one row each with its box, component and
// metric) with this build: version 8 moves them into series and samples by
// series id, and the store reads, replaces, counts and deletes them there.
func TestMigrateSamplesBySeries(t *testing.T) {
	const oldVersion = 7
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	type oldRow struct {
		box, component, metric string
		ts                     int64
		value                  float64
	}
	var old []oldRow
	for _, b := range []string{"b1", "b2", "b3"} {
		for _, c := range []string{"disk/10", "disk/2", "pool/p0"} {
			for _, m := range []string{telemetry.DiskTemperatureC, telemetry.PoolUsedBytes} {
				for i := range 10 {
					old = append(old, oldRow{b, c, m, t0.Add(time.Duration(i) * time.Minute).UnixNano(), float64(i)})
				}
			}
		}
	}
	type exec func(t *testing.T, query string, args ...any)
	cases := []struct {
		driver string
		// prepare makes a store of oldVersion and returns a way to run SQL
		// on it and the options to open it with.
		prepare func(t *testing.T) (exec, store.Options)
		ph      func(i int) string
	}{
		{
			driver: store.DriverSQLite,
			prepare: func(t *testing.T) (exec, store.Options) {
				path := filepath.Join(t.TempDir(), "sanwatch.db")
				s, err := store.OpenSQLiteVersion(path, oldVersion)
				require.NoError(t, err)
				require.NoError(t, s.Close())
				db := rawSQLite(t, path)
				return func(t *testing.T, q string, args ...any) {
					_, err := db.ExecContext(t.Context(), q, args...)
					require.NoError(t, err)
				}, store.Options{Driver: store.DriverSQLite, Path: path}
			},
			ph: func(int) string { return "?" },
		},
		{
			driver: store.DriverPostgres,
			prepare: func(t *testing.T) (exec, store.Options) {
				dsn := postgresSchema(t)
				s, err := store.OpenPostgresVersion(t.Context(), dsn, oldVersion)
				require.NoError(t, err)
				require.NoError(t, s.Close())
				db := rawPostgres(t, dsn)
				return func(t *testing.T, q string, args ...any) {
					_, err := db.Exec(t.Context(), q, args...)
					require.NoError(t, err)
				}, store.Options{Driver: store.DriverPostgres, DSN: dsn}
			},
			ph: func(i int) string { return fmt.Sprintf("$%d", i) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.driver, func(t *testing.T) {
			ctx := t.Context()
			run, o := tc.prepare(t)
			insert := fmt.Sprintf(`INSERT INTO samples (box, component, metric, ts, value) VALUES (%s, %s, %s, %s, %s)`,
				tc.ph(1), tc.ph(2), tc.ph(3), tc.ph(4), tc.ph(5))
			for _, r := range old {
				run(t, insert, r.box, r.component, r.metric, r.ts, r.value)
			}

			s, err := store.Open(ctx, o) // migrates to the newest version
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			st, err := s.Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(len(old)), st.Samples)
			for _, b := range []string{"b1", "b2", "b3"} {
				w, err := s.Window(ctx, b, t0, t0.Add(time.Hour))
				require.NoError(t, err)
				var want []telemetry.Sample
				for _, r := range old { // already in component, metric, time order
					if r.box == b {
						want = append(want, telemetry.Sample{Time: time.Unix(0, r.ts).UTC(), Box: b, Component: r.component, Metric: r.metric, Value: r.value})
					}
				}
				require.Equal(t, want, w, "box %s", b)
				latest, err := s.LatestSample(ctx, b)
				require.NoError(t, err)
				require.Equal(t, t0.Add(9*time.Minute), latest)
			}
			kind, err := s.WindowKind(ctx, "b1", "pool", t0, t0.Add(time.Hour))
			require.NoError(t, err)
			require.Len(t, kind, 20)

			// A migrated sample is replaced, not duplicated: the key came over.
			n, err := s.AppendSamples(ctx, []telemetry.Sample{
				{Time: t0, Box: "b1", Component: "disk/2", Metric: telemetry.DiskTemperatureC, Value: 99},
				{Time: t0.Add(time.Hour), Box: "b1", Component: "disk/2", Metric: telemetry.DiskTemperatureC, Value: 1},
			})
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
			w, err := s.WindowKind(ctx, "b1", "disk", t0, t0.Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, []float64{0, 0, 99, 0}, values(w)) // disk/10 then disk/2, two metrics each
			st, err = s.Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(len(old)+1), st.Samples)

			// Retention pages through the migrated samples.
			del, err := s.DeleteSamplesBefore(ctx, t0.Add(5*time.Minute), 1000)
			require.NoError(t, err)
			require.Equal(t, len(old)/2, del)

			// Reopening applies nothing more; the old table is gone (samples
			// has no box column any more).
			raw, err := store.Open(ctx, o)
			require.NoError(t, err)
			require.NoError(t, raw.Close())
			require.Equal(t, schemaVersions, migratedVersion(t, tc.driver, o))
		})
	}
}

// values returns the values of w in order.
func values(w []telemetry.Sample) []float64 {
	out := make([]float64, len(w))
	for i, s := range w {
		out[i] = s.Value
	}
	return out
}

// migratedVersion returns the newest schema version recorded in the store o
// names, after checking that its samples table is the series layout.
func migratedVersion(t *testing.T, driver string, o store.Options) int {
	t.Helper()
	const oldColumn = `SELECT COUNT(box) FROM samples`
	if driver == store.DriverSQLite {
		db := rawSQLite(t, o.Path)
		_, err := db.ExecContext(t.Context(), oldColumn)
		require.ErrorContains(t, err, "no such column: box")
		_, maxV := sqliteVersions(t, o.Path)
		return maxV
	}
	db := rawPostgres(t, o.DSN)
	_, err := db.Exec(t.Context(), oldColumn)
	require.ErrorContains(t, err, `column "box" does not exist`)
	var maxV int
	require.NoError(t, db.QueryRow(t.Context(), `SELECT MAX(version) FROM schema_migrations`).Scan(&maxV))
	return maxV
}
