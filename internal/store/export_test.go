package store

import "context"

// OpenSQLiteVersion opens the SQLite store at path migrated only up to
// schema version v, for tests of the migrations after v.
func OpenSQLiteVersion(path string, v int) (*SQLite, error) { return openSQLite(path, v) }

// OpenPostgresVersion opens the PostgreSQL store at dsn migrated only up to
// schema version v, for tests of the migrations after v.
func OpenPostgresVersion(ctx context.Context, dsn string, v int) (*Postgres, error) {
	return openPostgres(ctx, dsn, v)
}
