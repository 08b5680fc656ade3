package store

import (
	"context"
	"fmt"
)

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Options say which store to open.
type Options struct {
	Driver string // DriverSQLite or DriverPostgres
	Path   string // the SQLite database file
	DSN    string // the PostgreSQL connection string
}

// Open opens the store o names and brings its schema up to date.
func Open(ctx context.Context, o Options) (Store, error) {
	switch o.Driver {
	case DriverSQLite:
		s, err := OpenSQLite(o.Path)
		if err != nil {
			return nil, err // not a typed nil in a non-nil Store
		}
		return s, nil
	case DriverPostgres:
		s, err := OpenPostgres(ctx, o.DSN)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("open store: unknown driver %q: allowed %s, %s", o.Driver, DriverSQLite, DriverPostgres)
}
