package store_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t) })
}

// rawPostgres connects to dsn for looking at what a store wrote.
func rawPostgres(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestPostgresConcurrentOpen opens one fresh schema from several goroutines
// at once, as several workers starting together would: the advisory lock
// lets one migrate and the others find the schema done.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := postgresSchema(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := store.OpenPostgres(t.Context(), dsn)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.Close()
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "open %d", i)
	}
	var versions, maxVersion int
	require.NoError(t, rawPostgres(t, dsn).QueryRow(t.Context(),
		`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&versions, &maxVersion))
	require.Equal(t, schemaVersions, versions)
	require.Equal(t, schemaVersions, maxVersion)
}

func TestPostgresReopen(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	s, err := store.OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	_, err = s.AppendSamples(ctx, []telemetry.Sample{{Time: at, Box: "b1", Component: "node/0", Metric: "m", Value: 1}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = store.OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	got, err := s.LatestSample(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, at, got)

	_, err = rawPostgres(t, dsn).Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`)
	require.NoError(t, err)
	_, err = store.OpenPostgres(ctx, dsn)
	require.EqualError(t, err, "open postgres: migrate schema: database is at version 99, this build knows up to "+strconv.Itoa(schemaVersions))
}

func TestPostgresInInventory(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	s, err := store.OpenPostgres(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	db := rawPostgres(t, dsn)
	inInventory := func(id string) (bool, bool) {
		var in bool
		var lastSeen *int64
		require.NoError(t, db.QueryRow(ctx, `SELECT in_inventory, last_seen FROM boxes WHERE id = $1`, id).Scan(&in, &lastSeen))
		return in, lastSeen != nil
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

func TestOpenPostgresErrors(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"empty dsn", "", "open postgres: empty dsn"},
		{"bad dsn, password not shown", "postgres://u:s3cret@h:notaport/db",
			"open postgres: parse dsn: cannot parse `postgres://u:xxxxx@h:notaport/db`: invalid port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.OpenPostgres(t.Context(), tc.dsn)
			require.EqualError(t, err, tc.want)
			require.Nil(t, s)
		})
	}
}
