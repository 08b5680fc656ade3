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
	schemaVersions = 7
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
