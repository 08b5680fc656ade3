package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBadLimit is returned by DeleteSamplesBefore for a page size below 1.
var ErrBadLimit = errors.New("limit must be at least 1")

// DeleteSamplesBefore deletes up to limit samples older than before (any
// box) in one transaction and returns how many it deleted; call it until it
// returns fewer than limit. Once the page is committed it runs
// incremental_vacuum when the file has auto_vacuum=INCREMENTAL, so freed
// pages go back to the file system page by page; see Compact for files
// created before that. Deleting again is harmless.
func (s *SQLite) DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete samples before %s: %w (got %d)", before.Format(time.RFC3339), ErrBadLimit, limit)
	}
	// samples is WITHOUT ROWID: the page is chosen by its primary key,
	// seeking the old end of each series in turn.
	res, err := s.w.ExecContext(ctx, `DELETE FROM samples WHERE (series_id, ts) IN (
		SELECT x.series_id, x.ts FROM series s CROSS JOIN samples x ON x.series_id = s.id AND x.ts < ? LIMIT ?)`,
		before.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: %w", before.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: rows affected: %w", before.Format(time.RFC3339), err)
	}
	if n > 0 {
		mode, err := s.autoVacuum(ctx)
		if err != nil {
			return int(n), err
		}
		if mode == sqliteAutoVacuumIncremental {
			if _, err := s.w.ExecContext(ctx, `PRAGMA incremental_vacuum`); err != nil {
				return int(n), fmt.Errorf("delete samples: incremental vacuum: %w", err)
			}
		}
	}
	return int(n), nil
}

// auto_vacuum modes (PRAGMA auto_vacuum).
const (
	sqliteAutoVacuumNone        = 0
	sqliteAutoVacuumIncremental = 2
)

// autoVacuum returns the file's auto_vacuum mode.
func (s *SQLite) autoVacuum(ctx context.Context) (int, error) {
	var mode int
	if err := s.w.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return 0, fmt.Errorf("read auto_vacuum: %w", err)
	}
	return mode, nil
}

// Compact returns the space that deletes freed to the file system. A file
// with auto_vacuum=INCREMENTAL (every file created since the store sets it
// on open) runs incremental_vacuum; an older file, with auto_vacuum off, is
// rebuilt once with VACUUM, which also switches it to INCREMENTAL, so later
// runs are incremental. No migration is needed for the switch. Then the
// WAL is truncated.
func (s *SQLite) Compact(ctx context.Context) error {
	mode, err := s.autoVacuum(ctx)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if mode == sqliteAutoVacuumIncremental {
		if _, err := s.w.ExecContext(ctx, `PRAGMA incremental_vacuum`); err != nil {
			return fmt.Errorf("compact: incremental vacuum: %w", err)
		}
		return s.truncateWAL(ctx)
	}
	// Asked for again here: on a file with tables the request only takes
	// effect through VACUUM.
	if _, err := s.w.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("compact: set auto_vacuum: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("compact: vacuum: %w", err)
	}
	return s.truncateWAL(ctx)
}

// truncateWAL checkpoints the write-ahead log and truncates it: the WAL
// grows to hold the largest burst of writes (a retention run's deletes) and
// otherwise keeps that size on disk. A reader in the way only leaves it for
// the next run (the checkpoint reports busy, not an error).
func (s *SQLite) truncateWAL(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("compact: checkpoint wal: %w", err)
	}
	return nil
}

// DeleteSamplesBefore deletes up to limit samples older than before (any
// box) in one statement and returns how many it deleted; see Store.
func (p *Postgres) DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete samples before %s: %w (got %d)", before.Format(time.RFC3339), ErrBadLimit, limit)
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM samples WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM samples WHERE ts < $1 LIMIT $2))`, before.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: %w", before.Format(time.RFC3339), err)
	}
	return int(tag.RowsAffected()), nil
}

// Compact is a no-op on PostgreSQL: autovacuum makes the space of deleted
// rows reusable, so the tables stop growing once retention runs.
func (p *Postgres) Compact(context.Context) error { return nil }
