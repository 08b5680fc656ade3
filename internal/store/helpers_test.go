package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
)

// postgresSchema creates a fresh schema dropped at cleanup and returns a DSN
// whose search_path is that schema (see storetest.PostgresSchema).
func postgresSchema(tb testing.TB) string { return storetest.PostgresSchema(tb) }

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
