package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sanwatch/sanwatch/internal/store"
)

// defaultPostgresDSN is where the tests find PostgreSQL unless
// SANWATCH_TEST_POSTGRES_DSN says otherwise.
const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func postgresDSN() string {
	if dsn := os.Getenv("SANWATCH_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

// withSearchPath returns dsn with its search_path set to schema.
func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// postgresSchema creates a schema with a random name, drops it at cleanup
// and returns a DSN whose search_path is that schema. It fails the test,
// saying how to start PostgreSQL, when the server is not reachable.
func postgresSchema(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dsn := postgresDSN()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("PostgreSQL is not reachable (SANWATCH_TEST_POSTGRES_DSN or %s): %v\n"+
			"start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
			defaultPostgresDSN, err)
	}
	schema := fmt.Sprintf("sanwatch_test_%016x", rand.Uint64())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close(ctx)
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	_ = admin.Close(ctx)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = admin.Close(ctx) }()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(dsn, schema)
}

// schemaOf returns the search_path a DSN made by postgresSchema names.
func schemaOf(tb testing.TB, dsn string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	s := cfg.RuntimeParams["search_path"]
	if !strings.HasPrefix(s, "sanwatch_test_") {
		tb.Fatalf("dsn has search_path %q", s)
	}
	return s
}

// openPostgres opens a Postgres store in a fresh schema, closed at cleanup.
func openPostgres(tb testing.TB) *store.Postgres {
	tb.Helper()
	dsn := postgresSchema(tb) // registered first, so it is dropped after the store is closed
	s, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// openSQLite opens a SQLite store in a fresh directory, closed at cleanup.
func openSQLite(tb testing.TB) *store.SQLite {
	tb.Helper()
	s, err := store.OpenSQLite(filepath.Join(tb.TempDir(), "data", "sanwatch.db"))
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
