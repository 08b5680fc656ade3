package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBadLimit is returned by DeleteSamplesBefore for a page size below 1.
var ErrBadLimit = errors.New("limit must be at least 1")

// DeleteSamplesBefore deletes up to limit rows of samples older than before
// (any box), then, if fewer, up to the rest of limit chunks whose samples
// are all older, and returns how many samples it deleted; call it until it
// returns fewer than limit. A chunk holding samples on both sides of before
// stays until a later run (at most a day of them), and so do the rows
// under it, which override its samples. Once the page is committed it runs
// incremental_vacuum when the file has auto_vacuum=INCREMENTAL, so freed
// pages go back to the file system page by page; see Compact for files
// created before that. Deleting again is harmless.
func (s *SQLite) DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete samples before %s: %w (got %d)", before.Format(time.RFC3339), ErrBadLimit, limit)
	}
	// samples is WITHOUT ROWID: the page is chosen by its primary key,
	// seeking the old end of each series in turn.
	// A row of the cutoff's day under a chunk that stays (it ends after
	// the cutoff) stays too: it overrides that chunk's sample at its time,
	// which would otherwise be read again. It goes with the chunk.
	res, err := s.w.ExecContext(ctx, `DELETE FROM samples WHERE (series_id, ts) IN (
		SELECT x.series_id, x.ts FROM series s CROSS JOIN samples x ON x.series_id = s.id AND x.ts < ?1
		WHERE x.ts < ?2 OR NOT EXISTS (SELECT 1 FROM sample_chunks c
			WHERE c.series_id = x.series_id AND c.t_min >= ?2 AND c.t_min <= x.ts AND c.t_max >= ?1)
		LIMIT ?3)`,
		before.UnixNano(), chunkFloor(before.UnixNano()), limit)
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: %w", before.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: rows affected: %w", before.Format(time.RFC3339), err)
	}
	if n < int64(limit) {
		k, err := s.deleteChunksBefore(ctx, before, limit-int(n))
		if err != nil {
			return int(n), err
		}
		n += k
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

// deleteChunksBefore deletes up to limit chunks whose samples are all older
// than before and returns how many samples they held.
func (s *SQLite) deleteChunksBefore(ctx context.Context, before time.Time, limit int) (int64, error) {
	b := before.UnixNano()
	// SQLite takes no DELETE in a WITH: the counts come back row by row.
	rows, err := s.w.QueryContext(ctx, `DELETE FROM sample_chunks WHERE rowid IN (
		SELECT rowid FROM sample_chunks WHERE t_min < ? AND t_max < ? LIMIT ?)
		RETURNING n`, b, b, limit)
	if err != nil {
		return 0, fmt.Errorf("delete sample chunks before %s: %w", before.Format(time.RFC3339), err)
	}
	defer func() { _ = rows.Close() }()
	var n int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return 0, fmt.Errorf("delete sample chunks before %s: %w", before.Format(time.RFC3339), err)
		}
		n += k
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("delete sample chunks before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
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

// DeleteSamplesBefore deletes up to limit rows of samples older than before
// (any box), then, if fewer, up to the rest of limit chunks whose samples
// are all older, and returns how many samples it deleted; see SQLite's.
func (p *Postgres) DeleteSamplesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete samples before %s: %w (got %d)", before.Format(time.RFC3339), ErrBadLimit, limit)
	}
	// Rows under a chunk that stays stay too; see SQLite's.
	tag, err := p.pool.Exec(ctx, `DELETE FROM samples WHERE ctid = ANY (ARRAY(
		SELECT x.ctid FROM samples x WHERE x.ts < $1
			AND (x.ts < $2 OR NOT EXISTS (SELECT 1 FROM sample_chunks c
				WHERE c.series_id = x.series_id AND c.t_min >= $2 AND c.t_min <= x.ts AND c.t_max >= $1))
		LIMIT $3))`, before.UnixNano(), chunkFloor(before.UnixNano()), limit)
	if err != nil {
		return 0, fmt.Errorf("delete samples before %s: %w", before.Format(time.RFC3339), err)
	}
	n := tag.RowsAffected()
	if n < int64(limit) {
		var k *int64
		err := p.pool.QueryRow(ctx, `WITH gone AS (
			DELETE FROM sample_chunks WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM sample_chunks WHERE t_min < $1 AND t_max < $1 LIMIT $2))
			RETURNING n)
			SELECT SUM(n) FROM gone`, before.UnixNano(), limit-int(n)).Scan(&k)
		if err != nil {
			return int(n), fmt.Errorf("delete sample chunks before %s: %w", before.Format(time.RFC3339), err)
		}
		if k != nil {
			n += *k
		}
	}
	return int(n), nil
}

// Compact vacuums the samples tables on PostgreSQL: it makes the space of
// the rows that retention deleted and sealing merged reusable at once
// (autovacuum would, later), so the rows table keeps about the size of a
// day or two of rows instead of growing. It does not give space back to the
// file system (VACUUM FULL would, locking the tables), nor block reads or
// writes.
func (p *Postgres) Compact(ctx context.Context) error {
	if _, err := p.pool.Exec(ctx, `VACUUM samples, sample_chunks`); err != nil {
		return fmt.Errorf("compact: vacuum: %w", err)
	}
	return nil
}
