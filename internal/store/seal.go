package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Sealer is a Store that keeps samples in rows and chunks (SQLite and
// PostgreSQL; not a time-series engine): SealSamples merges each closed day
// of a series into one chunk, which is what makes a sample take a few bytes
// rather than a row. A retention run calls it.
type Sealer interface {
	// SealSamples merges up to limit (>= 1) series-days that ended at or
	// before the UTC day holding before, and have rows or more than one
	// chunk, each into one sealed chunk, and says what it did; call it
	// until it reports fewer than limit days. Reads see the same samples
	// before and after. Days before 1970 are left as they are.
	SealSamples(ctx context.Context, before time.Time, limit int) (SealResult, error)
}

// SealResult says what one SealSamples call did.
type SealResult struct {
	Days    int   `json:"days"`    // series-days sealed
	Rows    int64 `json:"rows"`    // rows merged into chunks
	Chunks  int64 `json:"chunks"`  // chunks merged (or marked sealed)
	Samples int64 `json:"samples"` // samples in the sealed chunks
}

// sealGroup is one series-day to seal.
type sealGroup struct{ series, day int64 }

// sealGroupsQueries find the series-days to seal: ones with rows, and ones
// with unsealed chunks. Rows are scanned in key order and unsealed chunks
// through their partial index; what is sealed is gone from both, so each
// page finds the next days. (The division truncates toward zero, hence
// the days before 1970 are left alone.)
const (
	sealRowGroups = `SELECT DISTINCT series_id, ts / 86400000000000 * 86400000000000
		FROM samples WHERE ts >= 0 AND ts < $1 LIMIT $2`
	sealChunkGroupsSQLite = `SELECT DISTINCT series_id, t_min / 86400000000000 * 86400000000000
		FROM sample_chunks WHERE sealed = 0 AND t_min >= 0 AND t_min < $1 LIMIT $2`
	sealChunkGroupsPostgres = `SELECT DISTINCT series_id, t_min / 86400000000000 * 86400000000000
		FROM sample_chunks WHERE NOT sealed AND t_min >= 0 AND t_min < $1 LIMIT $2`
)

// SealSamples seals up to limit series-days in one transaction; see Sealer.
func (s *SQLite) SealSamples(ctx context.Context, before time.Time, limit int) (SealResult, error) {
	var res SealResult
	if limit < 1 {
		return res, fmt.Errorf("seal samples: %w (got %d)", ErrBadLimit, limit)
	}
	cutoff := dayOf(clampNanos(before))
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("seal samples: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	groups, err := sqliteSealGroups(ctx, tx, cutoff, limit)
	if err != nil {
		return res, err
	}
	for _, g := range groups {
		if err := sqliteSealDay(ctx, tx, g, &res); err != nil {
			return SealResult{}, fmt.Errorf("seal samples of series %d, %s: %w", g.series, fromNanos(g.day).Format(time.DateOnly), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return SealResult{}, fmt.Errorf("seal samples: commit: %w", err)
	}
	return res, nil
}

// sqliteSealGroups returns up to limit series-days before cutoff to seal.
func sqliteSealGroups(ctx context.Context, tx *sql.Tx, cutoff int64, limit int) ([]sealGroup, error) {
	var groups []sealGroup
	seen := map[sealGroup]bool{}
	for _, q := range []string{sealRowGroups, sealChunkGroupsSQLite} {
		if len(groups) >= limit {
			break
		}
		rows, err := tx.QueryContext(ctx, q, cutoff, limit-len(groups))
		if err != nil {
			return nil, fmt.Errorf("seal samples: find days: %w", err)
		}
		for rows.Next() {
			var g sealGroup
			if err := rows.Scan(&g.series, &g.day); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("seal samples: find days: %w", err)
			}
			if !seen[g] {
				seen[g] = true
				groups = append(groups, g)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("seal samples: find days: %w", err)
		}
	}
	return groups, nil
}

// sqliteSealDay merges the chunks and rows of one series-day into one
// sealed chunk.
func sqliteSealDay(ctx context.Context, tx *sql.Tx, g sealGroup, res *SealResult) error {
	end := g.day + dayNanos
	var chunks [][]byte
	crows, err := tx.QueryContext(ctx, `SELECT data FROM sample_chunks
		WHERE series_id = ? AND t_min >= ? AND t_min < ? ORDER BY t_min`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	for crows.Next() {
		var d []byte
		if err := crows.Scan(&d); err != nil {
			_ = crows.Close()
			return fmt.Errorf("read chunks: %w", err)
		}
		chunks = append(chunks, d)
	}
	if err := crows.Close(); err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	rrows, err := tx.QueryContext(ctx, `SELECT ts, value FROM samples
		WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	var rows []telemetry.Sample
	for rrows.Next() {
		var ts int64
		var v float64
		if err := rrows.Scan(&ts, &v); err != nil {
			_ = rrows.Close()
			return fmt.Errorf("read rows: %w", err)
		}
		rows = append(rows, telemetry.Sample{Time: fromNanos(ts), Value: v})
	}
	if err := rrows.Close(); err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	res.Days++
	res.Rows += int64(len(rows))
	res.Chunks += int64(len(chunks))
	if len(rows) == 0 && len(chunks) == 1 { // one chunk already: mark it
		var n int64
		if err := tx.QueryRowContext(ctx, `UPDATE sample_chunks SET sealed = 1
			WHERE series_id = ? AND t_min >= ? AND t_min < ? RETURNING n`, g.series, g.day, end).Scan(&n); err != nil {
			return fmt.Errorf("mark chunk sealed: %w", err)
		}
		res.Samples += n
		return nil
	}
	tMin, tMax, n, data, err := sealedDay(chunks, rows)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sample_chunks WHERE series_id = ? AND t_min >= ? AND t_min < ?`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM samples WHERE series_id = ? AND ts >= ? AND ts < ?`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete rows: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sample_chunks (series_id, t_min, t_max, n, sealed, data) VALUES (?, ?, ?, ?, 1, ?)`,
		g.series, tMin, tMax, n, data); err != nil {
		return fmt.Errorf("insert sealed chunk: %w", err)
	}
	res.Samples += int64(n)
	return nil
}

// SealSamples seals up to limit series-days in one transaction; see Sealer.
func (p *Postgres) SealSamples(ctx context.Context, before time.Time, limit int) (SealResult, error) {
	var res SealResult
	if limit < 1 {
		return res, fmt.Errorf("seal samples: %w (got %d)", ErrBadLimit, limit)
	}
	cutoff := dayOf(clampNanos(before))
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var groups []sealGroup
		seen := map[sealGroup]bool{}
		for _, q := range []string{sealRowGroups, sealChunkGroupsPostgres} {
			if len(groups) >= limit {
				break
			}
			rows, err := tx.Query(ctx, q, cutoff, limit-len(groups))
			if err != nil {
				return fmt.Errorf("find days: %w", err)
			}
			gs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealGroup, error) {
				var g sealGroup
				return g, r.Scan(&g.series, &g.day)
			})
			if err != nil {
				return fmt.Errorf("find days: %w", err)
			}
			for _, g := range gs {
				if !seen[g] {
					seen[g] = true
					groups = append(groups, g)
				}
			}
		}
		for _, g := range groups {
			if err := pgSealDay(ctx, tx, g, &res); err != nil {
				return fmt.Errorf("series %d, %s: %w", g.series, fromNanos(g.day).Format(time.DateOnly), err)
			}
		}
		return nil
	})
	if err != nil {
		return SealResult{}, fmt.Errorf("seal samples: %w", err)
	}
	return res, nil
}

// pgSealDay merges the chunks and rows of one series-day into one sealed
// chunk.
func pgSealDay(ctx context.Context, tx pgx.Tx, g sealGroup, res *SealResult) error {
	end := g.day + dayNanos
	crows, err := tx.Query(ctx, `SELECT data FROM sample_chunks
		WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 ORDER BY t_min`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	chunks, err := pgx.CollectRows(crows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	rrows, err := tx.Query(ctx, `SELECT ts, value FROM samples
		WHERE series_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	rows, err := pgx.CollectRows(rrows, func(r pgx.CollectableRow) (telemetry.Sample, error) {
		var ts int64
		var s telemetry.Sample
		err := r.Scan(&ts, &s.Value)
		s.Time = fromNanos(ts)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	res.Days++
	res.Rows += int64(len(rows))
	res.Chunks += int64(len(chunks))
	if len(rows) == 0 && len(chunks) == 1 { // one chunk already: mark it
		var n int64
		if err := tx.QueryRow(ctx, `UPDATE sample_chunks SET sealed = true
			WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 RETURNING n`, g.series, g.day, end).Scan(&n); err != nil {
			return fmt.Errorf("mark chunk sealed: %w", err)
		}
		res.Samples += n
		return nil
	}
	tMin, tMax, n, data, err := sealedDay(chunks, rows)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sample_chunks WHERE series_id = $1 AND t_min >= $2 AND t_min < $3`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM samples WHERE series_id = $1 AND ts >= $2 AND ts < $3`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete rows: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sample_chunks (series_id, t_min, t_max, n, sealed, data) VALUES ($1, $2, $3, $4, true, $5)`,
		g.series, tMin, tMax, n, data); err != nil {
		return fmt.Errorf("insert sealed chunk: %w", err)
	}
	res.Samples += int64(n)
	return nil
}
