package main

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// The samples layout of schema versions 1 to 7, kept here so that the bench
// can measure it beside today's in the same run: one row per sample with
// its box, component and metric, keyed by all four with the time, plus an
// index on (box, ts). The statements are those the stores ran then.

// legacySQLiteSchema is the samples table of SQLite schema version 1.
const legacySQLiteSchema = `CREATE TABLE samples (
	box       TEXT    NOT NULL,
	component TEXT    NOT NULL,
	metric    TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	value     REAL    NOT NULL,
	PRIMARY KEY (box, component, metric, ts)
) WITHOUT ROWID;
CREATE INDEX samples_box_ts ON samples (box, ts);`

// legacyPostgresSchema is the samples table of PostgreSQL schema version 1.
const legacyPostgresSchema = `CREATE TABLE samples (
	box       TEXT             NOT NULL,
	component TEXT             NOT NULL,
	metric    TEXT             NOT NULL,
	ts        BIGINT           NOT NULL,
	value     DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (box, component, metric, ts)
);
CREATE INDEX samples_box_ts ON samples (box, ts);`

// legacyWindow is the window query of both (with ph's placeholders).
func legacyWindow(ph func(int) string) string {
	return `SELECT component, metric, ts, value FROM samples
		WHERE box = ` + ph(1) + ` AND ts >= ` + ph(2) + ` AND ts < ` + ph(3) + ` ORDER BY component, metric, ts`
}

// legacySQLite keeps samples in the old layout in its own SQLite file,
// opened as the store opened its file (WAL, one writer connection).
type legacySQLite struct {
	store.Store
	db   *sql.DB
	path string
}

func openLegacySQLite(ctx context.Context, path string, base store.Store) (*legacySQLite, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)",
		"auto_vacuum(INCREMENTAL)", "journal_mode(WAL)", "cache_size(-65536)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode()+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open legacy sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, legacySQLiteSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create legacy sqlite schema: %w", err)
	}
	return &legacySQLite{Store: base, db: db, path: path}, nil
}

func (l *legacySQLite) Close() error { return l.db.Close() }

// AppendSamples is SQLite.AppendSamples of schema version 7.
func (l *legacySQLite) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	rows, ts, err := legacyPrepare(samples)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append samples: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	const chunk = 200
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	var n int64
	args := make([]any, 0, 5*chunk)
	for lo := 0; lo < len(rows); lo += chunk {
		hi := min(lo+chunk, len(rows))
		stmt := full
		if hi-lo < chunk || full == nil {
			if stmt, err = tx.PrepareContext(ctx, legacyInsert(hi-lo)); err != nil {
				return 0, fmt.Errorf("append samples: prepare: %w", err)
			}
			if hi-lo == chunk {
				full = stmt
			} else {
				defer func() { _ = stmt.Close() }()
			}
		}
		args = args[:0]
		for i := lo; i < hi; i++ {
			r := rows[i]
			args = append(args, r.Box, r.Component, r.Metric, ts[i], r.Value)
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("append samples: insert rows %d..%d: %w", lo, hi-1, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("append samples: rows affected: %w", err)
		}
		n += k
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append samples: commit: %w", err)
	}
	return n, nil
}

// legacyInsert is the old upsert of n samples.
func legacyInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO samples (box, component, metric, ts, value) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (box, component, metric, ts) DO UPDATE SET value = excluded.value`)
	return b.String()
}

func (l *legacySQLite) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	rows, err := l.db.QueryContext(ctx, legacyWindow(func(int) string { return "?" }), box, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("query window of %s: %w", box, err)
	}
	defer rows.Close()
	var out []telemetry.Sample
	for rows.Next() {
		smp := telemetry.Sample{Box: box}
		var ts int64
		if err := rows.Scan(&smp.Component, &smp.Metric, &ts, &smp.Value); err != nil {
			return nil, fmt.Errorf("query window of %s: %w", box, err)
		}
		smp.Time = time.Unix(0, ts).UTC()
		out = append(out, smp)
	}
	return out, rows.Err()
}

// bytes is the file's size once the WAL is checkpointed into it: the file
// holds only samples.
func (l *legacySQLite) bytes(ctx context.Context) (int64, error) {
	return sqliteFileBytes(ctx, l.db, l.path)
}

// legacyPostgres keeps samples in the old layout in its own schema.
type legacyPostgres struct {
	store.Store
	pool *pgxpool.Pool
}

func openLegacyPostgres(ctx context.Context, dsn string, base store.Store) (*legacyPostgres, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open legacy postgres: %w", err)
	}
	if _, err := pool.Exec(ctx, legacyPostgresSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("create legacy postgres schema: %w", err)
	}
	return &legacyPostgres{Store: base, pool: pool}, nil
}

func (l *legacyPostgres) Close() error { l.pool.Close(); return nil }

// AppendSamples is Postgres.AppendSamples of schema version 7.
func (l *legacyPostgres) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	rows, ts, err := legacyPrepare(samples)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	var n int64
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS sample_stage (
			box       TEXT             NOT NULL,
			component TEXT             NOT NULL,
			metric    TEXT             NOT NULL,
			ts        BIGINT           NOT NULL,
			value     DOUBLE PRECISION NOT NULL
		) ON COMMIT DELETE ROWS`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sample_stage"},
			[]string{"box", "component", "metric", "ts", "value"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := rows[i]
				return []any{r.Box, r.Component, r.Metric, ts[i], r.Value}, nil
			})); err != nil {
			return fmt.Errorf("copy to staging table: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO samples (box, component, metric, ts, value)
			SELECT box, component, metric, ts, value FROM sample_stage
			ORDER BY box, component, metric, ts
			ON CONFLICT (box, component, metric, ts) DO UPDATE SET value = excluded.value`)
		if err != nil {
			return fmt.Errorf("merge staging table: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append samples: %w", err)
	}
	return n, nil
}

func (l *legacyPostgres) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	rows, err := l.pool.Query(ctx, legacyWindow(func(i int) string { return fmt.Sprintf("$%d", i) }), box, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("query window of %s: %w", box, err)
	}
	defer rows.Close()
	var out []telemetry.Sample
	for rows.Next() {
		smp := telemetry.Sample{Box: box}
		var ts int64
		if err := rows.Scan(&smp.Component, &smp.Metric, &ts, &smp.Value); err != nil {
			return nil, fmt.Errorf("query window of %s: %w", box, err)
		}
		smp.Time = time.Unix(0, ts).UTC()
		out = append(out, smp)
	}
	return out, rows.Err()
}

func (l *legacyPostgres) bytes(ctx context.Context) (int64, error) {
	return postgresTableBytes(ctx, l.pool, "samples")
}

// legacyPrepare is the old prepareSamples for valid samples (the bench's):
// sorted by key, the last of equal keys kept, times in nanoseconds. The new
// store does the same work, so both sides pay for it.
func legacyPrepare(samples []telemetry.Sample) ([]telemetry.Sample, []int64, error) {
	type keyed struct {
		s   telemetry.Sample
		ts  int64
		pos int
	}
	ks := make([]keyed, len(samples))
	for i, s := range samples {
		ks[i] = keyed{s: s, ts: s.Time.UnixNano(), pos: i}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.s.Box, b.s.Box), strings.Compare(a.s.Component, b.s.Component),
			strings.Compare(a.s.Metric, b.s.Metric), cmp.Compare(a.ts, b.ts), cmp.Compare(a.pos, b.pos))
	})
	out := make([]telemetry.Sample, 0, len(ks))
	ts := make([]int64, 0, len(ks))
	for i, k := range ks {
		if i+1 < len(ks) {
			n := ks[i+1]
			if n.ts == k.ts && n.s.Box == k.s.Box && n.s.Component == k.s.Component && n.s.Metric == k.s.Metric {
				continue
			}
		}
		out = append(out, k.s)
		ts = append(ts, k.ts)
	}
	return out, ts, nil
}
