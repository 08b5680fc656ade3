package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Sealer is a Store that keeps samples in rows and chunks (SQLite and
// PostgreSQL; not a time-series engine): SealSamples merges each closed day
// of a series into one chunk, which is what makes a sample take a few bytes
// rather than a row. A retention run calls it.
type Sealer interface {
	// SealSamples merges the series-days of up to limit (>= 1) series
	// with ids above after that ended at or before the start of the UTC
	// day holding before, and still have rows or unsealed chunks, each
	// into one sealed chunk, in one transaction. Call it again with after
	// = the result's Next while the result says More. Reads see the same
	// samples before and after. Days before 1970 are left as they are.
	SealSamples(ctx context.Context, before time.Time, after int64, limit int) (SealResult, error)
}

// SealResult says what one SealSamples call did.
type SealResult struct {
	Series  int   `json:"series"`  // series with days sealed
	Days    int   `json:"days"`    // series-days sealed
	Rows    int64 `json:"rows"`    // rows merged into chunks
	Chunks  int64 `json:"chunks"`  // chunks merged (or marked sealed)
	Samples int64 `json:"samples"` // samples in the sealed chunks
	// Corrupt lists the series-days left unsealed because a chunk of
	// theirs could not be decoded.
	Corrupt []string `json:"corrupt,omitempty"`
	// Next is the cursor for the next call (the last series looked at),
	// More whether there may be series after it to seal.
	Next int64 `json:"next"`
	More bool  `json:"more"`
}

// sealGroup is one series-day to seal.
type sealGroup struct{ series, day int64 }

// sealQueries find what to seal: the next series (by id, after a cursor)
// with rows or unsealed chunks before a cutoff, each list in id order so
// that a LIMIT stops the scan early; then, per series, the days. (The
// division truncates toward zero, hence days before 1970 are left alone.)
type sealQueries struct {
	rowSeries, chunkSeries, rowDays, chunkDays string
	// markSealed marks a series-day's one chunk sealed, returning its n;
	// insertSealed writes a sealed chunk.
	markSealed, insertSealed string
}

var (
	sqliteSeal = sealQueries{
		rowSeries: `SELECT DISTINCT series_id FROM samples
			WHERE series_id > $1 AND ts >= 0 AND ts < $2 ORDER BY series_id LIMIT $3`,
		chunkSeries: `SELECT DISTINCT series_id FROM sample_chunks
			WHERE sealed = 0 AND series_id > $1 AND t_min >= 0 AND t_min < $2 ORDER BY series_id LIMIT $3`,
		rowDays: `SELECT DISTINCT ts / 86400000000000 * 86400000000000 FROM samples
			WHERE series_id = $1 AND ts >= 0 AND ts < $2`,
		chunkDays: `SELECT DISTINCT t_min / 86400000000000 * 86400000000000 FROM sample_chunks
			WHERE sealed = 0 AND series_id = $1 AND t_min >= 0 AND t_min < $2`,
		markSealed: `UPDATE sample_chunks SET sealed = 1
			WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 RETURNING n`,
		insertSealed: `INSERT INTO sample_chunks (series_id, t_min, t_max, n, sealed, data) VALUES ($1, $2, $3, $4, 1, $5)`,
	}
	postgresSeal = sealQueries{
		rowSeries: `SELECT DISTINCT series_id FROM samples
			WHERE series_id > $1 AND ts >= 0 AND ts < $2 ORDER BY series_id LIMIT $3`,
		chunkSeries: `SELECT DISTINCT series_id FROM sample_chunks
			WHERE NOT sealed AND series_id > $1 AND t_min >= 0 AND t_min < $2 ORDER BY series_id LIMIT $3`,
		rowDays: `SELECT DISTINCT ts / 86400000000000 * 86400000000000 FROM samples
			WHERE series_id = $1 AND ts >= 0 AND ts < $2`,
		chunkDays: `SELECT DISTINCT t_min / 86400000000000 * 86400000000000 FROM sample_chunks
			WHERE NOT sealed AND series_id = $1 AND t_min >= 0 AND t_min < $2`,
		markSealed: `UPDATE sample_chunks SET sealed = true
			WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 RETURNING n`,
		insertSealed: `INSERT INTO sample_chunks (series_id, t_min, t_max, n, sealed, data) VALUES ($1, $2, $3, $4, true, $5)`,
	}
)

// sealTx is a transaction of either store, as sealPage uses it. The
// queries are shared: SQLite takes PostgreSQL's $n parameters.
type sealTx interface {
	// int64s returns the first column of a query's rows.
	int64s(ctx context.Context, query string, args ...any) ([]int64, error)
	// blobs returns the first column of a query's rows.
	blobs(ctx context.Context, query string, args ...any) ([][]byte, error)
	// points returns a query's (ts, value) rows as samples.
	points(ctx context.Context, query string, args ...any) ([]telemetry.Sample, error)
	exec(ctx context.Context, query string, args ...any) error
}

// sealPage seals the days of up to limit series after the cursor; see Sealer.
func sealPage(ctx context.Context, tx sealTx, qs sealQueries, before time.Time, after int64, limit int) (SealResult, error) {
	res := SealResult{Next: after}
	cutoff := dayOf(clampNanos(before))
	fromRows, err := tx.int64s(ctx, qs.rowSeries, after, cutoff, limit)
	if err != nil {
		return res, fmt.Errorf("find series: %w", err)
	}
	fromChunks, err := tx.int64s(ctx, qs.chunkSeries, after, cutoff, limit)
	if err != nil {
		return res, fmt.Errorf("find series: %w", err)
	}
	// A full list may have more beyond its last id: take the ids of both
	// lists up to the lower such end, so that the cursor skips nothing.
	end := int64(math.MaxInt64)
	for _, l := range [][]int64{fromRows, fromChunks} {
		if len(l) == limit {
			end = min(end, l[len(l)-1])
			res.More = true
		}
	}
	ids := append(fromRows, fromChunks...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > limit { // the two lists together: still limit a page
		end = min(end, ids[limit-1])
		res.More = true
	}
	for _, id := range ids {
		if id > end {
			break
		}
		rowDays, err := tx.int64s(ctx, qs.rowDays, id, cutoff)
		if err != nil {
			return res, fmt.Errorf("series %d: find days: %w", id, err)
		}
		chunkDays, err := tx.int64s(ctx, qs.chunkDays, id, cutoff)
		if err != nil {
			return res, fmt.Errorf("series %d: find days: %w", id, err)
		}
		days := append(rowDays, chunkDays...)
		slices.Sort(days)
		for _, d := range slices.Compact(days) {
			if err := sealDay(ctx, tx, qs, sealGroup{id, d}, &res); err != nil {
				return res, fmt.Errorf("series %d, %s: %w", id, fromNanos(d).Format(time.DateOnly), err)
			}
		}
		res.Series++
		res.Next = id
	}
	return res, nil
}

// SealSamples seals the days of up to limit series in one transaction; see Sealer.
func (s *SQLite) SealSamples(ctx context.Context, before time.Time, after int64, limit int) (SealResult, error) {
	if limit < 1 {
		return SealResult{}, fmt.Errorf("seal samples: %w (got %d)", ErrBadLimit, limit)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return SealResult{}, fmt.Errorf("seal samples: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := sealPage(ctx, sqliteSealTx{tx}, sqliteSeal, before, after, limit)
	if err != nil {
		return SealResult{}, fmt.Errorf("seal samples: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return SealResult{}, fmt.Errorf("seal samples: commit: %w", err)
	}
	return res, nil
}

// sqliteSealTx is a SQLite transaction as sealPage uses it.
type sqliteSealTx struct{ tx *sql.Tx }

func (t sqliteSealTx) int64s(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (t sqliteSealTx) blobs(ctx context.Context, query string, args ...any) ([][]byte, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (t sqliteSealTx) points(ctx context.Context, query string, args ...any) ([]telemetry.Sample, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []telemetry.Sample
	for rows.Next() {
		var ts int64
		var s telemetry.Sample
		if err := rows.Scan(&ts, &s.Value); err != nil {
			return nil, err
		}
		s.Time = fromNanos(ts)
		out = append(out, s)
	}
	return out, rows.Err()
}

func (t sqliteSealTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

// sealDay merges the chunks and rows of one series-day into one sealed
// chunk; a day of one unsealed chunk and no rows is only marked sealed.
func sealDay(ctx context.Context, tx sealTx, qs sealQueries, g sealGroup, res *SealResult) error {
	end := g.day + dayNanos
	chunks, err := tx.blobs(ctx, `SELECT data FROM sample_chunks
		WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 ORDER BY t_min`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	rows, err := tx.points(ctx, `SELECT ts, value FROM samples
		WHERE series_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts`, g.series, g.day, end)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	counted := func(samples int64) {
		res.Days++
		res.Rows += int64(len(rows))
		res.Chunks += int64(len(chunks))
		res.Samples += samples
	}
	if len(rows) == 0 && len(chunks) == 1 {
		ns, err := tx.int64s(ctx, qs.markSealed, g.series, g.day, end)
		if err != nil {
			return fmt.Errorf("mark chunk sealed: %w", err)
		}
		var sum int64
		for _, n := range ns {
			sum += n
		}
		counted(sum)
		return nil
	}
	tMin, tMax, n, data, err := sealedDay(chunks, rows)
	if errors.Is(err, errCorruptChunk) {
		// Left as it is (reads of it fail, naming it), rather than
		// stopping every later seal, and with it the retention run.
		res.Corrupt = append(res.Corrupt, fmt.Sprintf("series %d, %s: %v", g.series, fromNanos(g.day).Format(time.DateOnly), err))
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.exec(ctx, `DELETE FROM sample_chunks WHERE series_id = $1 AND t_min >= $2 AND t_min < $3`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete chunks: %w", err)
	}
	if err := tx.exec(ctx, `DELETE FROM samples WHERE series_id = $1 AND ts >= $2 AND ts < $3`, g.series, g.day, end); err != nil {
		return fmt.Errorf("delete rows: %w", err)
	}
	if n > 0 {
		if err := tx.exec(ctx, qs.insertSealed, g.series, tMin, tMax, n, data); err != nil {
			return fmt.Errorf("insert sealed chunk: %w", err)
		}
	}
	counted(int64(n))
	return nil
}

// SealSamples seals the days of up to limit series in one transaction; see Sealer.
func (p *Postgres) SealSamples(ctx context.Context, before time.Time, after int64, limit int) (SealResult, error) {
	if limit < 1 {
		return SealResult{}, fmt.Errorf("seal samples: %w (got %d)", ErrBadLimit, limit)
	}
	// REPEATABLE READ: the page reads a day, then deletes it by time
	// range and writes the merged chunk. At READ COMMITTED the deletes
	// would also take a row or chunk an append committed in between,
	// never merged. With one snapshot they delete only what was read; a
	// sample appended meanwhile stays (and wins on read, as rows do), and
	// an append that changed what was read makes the page fail with a
	// serialization error, when it is tried again.
	var res SealResult
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
			var err error
			res, err = sealPage(ctx, pgSealTx{tx}, postgresSeal, before, after, limit)
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || attempt == sealAttempts || !errors.As(err, &pgErr) || pgErr.Code != pgSerializationFailure {
			break
		}
	}
	if err != nil {
		return SealResult{}, fmt.Errorf("seal samples: %w", err)
	}
	return res, nil
}

// pgSerializationFailure is PostgreSQL's SQLSTATE for a transaction that
// conflicted with a concurrent one.
const pgSerializationFailure = "40001"

// sealAttempts is how many times a seal page meeting concurrent appends is
// tried before its error is returned (the retention run tries again later).
const sealAttempts = 5

// pgSealTx is a PostgreSQL transaction as sealPage uses it.
type pgSealTx struct{ tx pgx.Tx }

func (t pgSealTx) int64s(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func (t pgSealTx) blobs(ctx context.Context, query string, args ...any) ([][]byte, error) {
	rows, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]byte])
}

func (t pgSealTx) points(ctx context.Context, query string, args ...any) ([]telemetry.Sample, error) {
	rows, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (telemetry.Sample, error) {
		var ts int64
		var s telemetry.Sample
		err := r.Scan(&ts, &s.Value)
		s.Time = fromNanos(ts)
		return s, err
	})
}

func (t pgSealTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}
