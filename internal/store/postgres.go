package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// postgresMigrations are the schema versions of the PostgreSQL store, applied
// in order; version n is postgresMigrations[n-1]. Never edit one that
// shipped: append a new one.
var postgresMigrations = []string{
	// 1: samples, batches, boxes, findings, scan reports.
	`CREATE TABLE samples (
		box       TEXT             NOT NULL,
		component TEXT             NOT NULL,
		metric    TEXT             NOT NULL,
		ts        BIGINT           NOT NULL, -- unix nanoseconds
		value     DOUBLE PRECISION NOT NULL,
		PRIMARY KEY (box, component, metric, ts)
	);
	CREATE INDEX samples_box_ts ON samples (box, ts);
	CREATE TABLE batches (
		id            TEXT   PRIMARY KEY,
		path          TEXT   NOT NULL,
		format        TEXT   NOT NULL,
		status        TEXT   NOT NULL,
		accepted      BIGINT NOT NULL,
		rejected      BIGINT NOT NULL,
		boxes         TEXT   NOT NULL, -- JSON array
		unknown_boxes TEXT   NOT NULL, -- JSON array
		errors        TEXT   NOT NULL, -- JSON array
		first_sample  BIGINT,
		last_sample   BIGINT,
		stored_at     BIGINT
	);
	CREATE TABLE boxes (
		id           TEXT    PRIMARY KEY,
		model        TEXT    NOT NULL DEFAULT '',
		firmware     TEXT    NOT NULL DEFAULT '',
		site         TEXT    NOT NULL DEFAULT '',
		owners       TEXT    NOT NULL DEFAULT '[]', -- JSON array
		escalation   TEXT    NOT NULL DEFAULT '[]', -- JSON array
		tags         JSONB   NOT NULL DEFAULT '[]', -- array, GIN-indexed for tag filters
		in_inventory BOOLEAN NOT NULL DEFAULT false,
		last_seen    BIGINT
	);
	CREATE INDEX boxes_site ON boxes (site, id);
	CREATE INDEX boxes_model ON boxes (model, id);
	CREATE INDEX boxes_tags ON boxes USING GIN (tags);
	CREATE TABLE findings (
		fingerprint    TEXT    PRIMARY KEY,
		box            TEXT    NOT NULL,
		rule           TEXT    NOT NULL,
		component      TEXT    NOT NULL,
		severity       TEXT    NOT NULL,
		severity_rank  INTEGER NOT NULL,
		title          TEXT    NOT NULL,
		problem        TEXT    NOT NULL,
		evidence       TEXT    NOT NULL, -- JSON
		remediation    TEXT    NOT NULL, -- JSON array
		time_to_impact BIGINT  NOT NULL, -- nanoseconds
		detected_at    BIGINT,
		first_seen     BIGINT,
		last_seen      BIGINT,
		status         TEXT    NOT NULL,
		note           TEXT    NOT NULL DEFAULT ''
	);
	CREATE INDEX findings_rank ON findings (severity_rank DESC, fingerprint);
	CREATE INDEX findings_box ON findings (box);
	CREATE TABLE scan_reports (
		id            TEXT   PRIMARY KEY,
		selector      TEXT   NOT NULL,
		started_at    BIGINT,
		finished_at   BIGINT,
		boxes         BIGINT NOT NULL,
		analysed      BIGINT NOT NULL,
		findings      BIGINT NOT NULL,
		runs          BIGINT NOT NULL,
		by_severity   TEXT   NOT NULL, -- JSON object
		failed_shards TEXT   NOT NULL  -- JSON array
	);
	CREATE INDEX scan_reports_started ON scan_reports (started_at DESC NULLS LAST, id DESC);`,
	// 2: emails sent, by Message-ID (a resend after a crash is skipped).
	`CREATE TABLE emails (
		message_id  TEXT   PRIMARY KEY,
		fingerprint TEXT   NOT NULL,
		kind        TEXT   NOT NULL,
		recipients  TEXT   NOT NULL, -- JSON array
		subject     TEXT   NOT NULL,
		sent_at     BIGINT NOT NULL  -- unix nanoseconds
	);
	CREATE INDEX emails_fingerprint ON emails (fingerprint, sent_at);`,
	// 3: scan reports count remediation hand-offs and their failures.
	`ALTER TABLE scan_reports ADD COLUMN remediations BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE scan_reports ADD COLUMN dispatch_errors TEXT NOT NULL DEFAULT '[]';`,
	// 4: the fleet's clock (the newest stored sample) is read by every analysis.
	`CREATE INDEX batches_status_last_sample ON batches (status, last_sample);`,
	// 5: the boxes of each batch, one row each, paged by id (a batch may
	// touch hundreds of thousands of boxes: too many for one JSON value or
	// one workflow payload); scan reports list a bounded number of failed
	// shards and dispatch errors and count the rest.
	`CREATE TABLE batch_boxes (
		batch   TEXT    NOT NULL,
		box     TEXT    NOT NULL,
		unknown BOOLEAN NOT NULL DEFAULT false, -- not in the inventory
		PRIMARY KEY (batch, box)
	);
	ALTER TABLE scan_reports ADD COLUMN more_failed_shards BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE scan_reports ADD COLUMN more_dispatch_errors BIGINT NOT NULL DEFAULT 0;`,
	// 6: external analyzers' last failure and success, and the rules each
	// has reported (a failed analyzer's findings are unknown, not cleared).
	`CREATE TABLE analyzer_runs (
		analyzer   TEXT   PRIMARY KEY,
		last_error TEXT   NOT NULL DEFAULT '',
		last_box   TEXT   NOT NULL DEFAULT '',
		failed_at  BIGINT, -- unix nanoseconds of the last failure
		ok_at      BIGINT  -- unix nanoseconds of the last success
	);
	CREATE TABLE analyzer_rules (
		analyzer TEXT NOT NULL,
		rule     TEXT NOT NULL,
		PRIMARY KEY (analyzer, rule)
	);`,
	// 7: the receiver's bearer tokens and its intake (the same SQL on both stores).
	intakeMigration,
	// 8: samples by series: each box/component/metric gets an id in series,
	// samples are (series_id, ts, value); the stored samples are copied over.
	// Series are assigned ids in key order, so the copy appends in key order.
	`CREATE TABLE series (
		id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		box       TEXT   NOT NULL,
		component TEXT   NOT NULL,
		metric    TEXT   NOT NULL,
		UNIQUE (box, component, metric)
	);
	CREATE TABLE samples_by_series (
		series_id BIGINT           NOT NULL,
		ts        BIGINT           NOT NULL, -- unix nanoseconds
		value     DOUBLE PRECISION NOT NULL
	);
	INSERT INTO series (box, component, metric)
		SELECT DISTINCT box, component, metric FROM samples ORDER BY box, component, metric;
	INSERT INTO samples_by_series (series_id, ts, value)
		SELECT s.id, x.ts, x.value FROM samples x
		JOIN series s ON s.box = x.box AND s.component = x.component AND s.metric = x.metric
		ORDER BY s.id, x.ts;
	DROP TABLE samples;
	ALTER TABLE samples_by_series RENAME TO samples;
	ALTER TABLE samples ADD CONSTRAINT samples_pkey PRIMARY KEY (series_id, ts);
	ANALYZE series;
	ANALYZE samples;`,
	// 9: compressed chunks of samples, one series and UTC day each (see
	// chunk.go). The rows in samples stay where they are until SealSamples
	// merges their days into chunks. The chunks are compressed already,
	// so PostgreSQL is told not to try again (STORAGE EXTERNAL).
	`CREATE TABLE sample_chunks (
		series_id BIGINT  NOT NULL,
		t_min     BIGINT  NOT NULL, -- unix nanoseconds of the first sample
		t_max     BIGINT  NOT NULL, -- and of the last
		n         INTEGER NOT NULL, -- samples in the chunk
		sealed    BOOLEAN NOT NULL DEFAULT false,
		data      BYTEA   NOT NULL,
		PRIMARY KEY (series_id, t_min)
	);
	ALTER TABLE sample_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
	CREATE INDEX sample_chunks_t ON sample_chunks (t_min);
	CREATE INDEX sample_chunks_unsealed ON sample_chunks (series_id, t_min) WHERE NOT sealed;`,
}

// migrationLockKey is the PostgreSQL advisory lock held while migrating
// ("sanwatch" in ASCII), so that processes opening at once take turns.
const migrationLockKey int64 = 0x73616e7761746368

// Postgres is the Store for workers on several hosts. The schema lives in
// the first schema of the connection's search_path.
type Postgres struct {
	pool   *pgxpool.Pool
	series *seriesCache
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database named by dsn (a URL or key=value
// string; search_path may be set in it) and brings its schema up to date.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	return openPostgres(ctx, dsn, len(postgresMigrations))
}

// openPostgres is OpenPostgres migrating up to schema version (tests build
// databases of older versions with it).
func openPostgres(ctx context.Context, dsn string, version int) (*Postgres, error) {
	if dsn == "" {
		return nil, errors.New("open postgres: empty dsn")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	p := &Postgres{pool: pool, series: newSeriesCache()}
	if err := p.migrate(ctx, version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return p, nil
}

// migrate applies the missing schema versions up to version in one
// transaction that holds an advisory lock, so two processes opening at once
// do not both migrate.
func (p *Postgres) migrate(ctx context.Context, version int) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("migrate schema: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at BIGINT  NOT NULL
		)`); err != nil {
			return fmt.Errorf("migrate schema: create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("migrate schema: read version: %w", err)
		}
		if current > len(postgresMigrations) {
			return fmt.Errorf("migrate schema: database is at version %d, this build knows up to %d", current, len(postgresMigrations))
		}
		for v := current + 1; v <= version; v++ {
			if _, err := tx.Exec(ctx, postgresMigrations[v-1]); err != nil {
				return fmt.Errorf("migrate schema: apply version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("migrate schema: record version %d: %w", v, err)
			}
		}
		return nil
	})
}

// Close closes the connection pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// AppendSamples stores samples in one transaction; see Store. Series not
// in the cache are added and looked up first, in one statement each way.
// Runs of a series and day go in as chunks where their range holds nothing
// yet, the rest as rows.
func (p *Postgres) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	rows, ts, err := prepareSamples(samples)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	keys, of := seriesOf(rows)
	ids := make([]int64, len(keys))
	if missing := p.series.lookup(keys, ids); len(missing) > 0 {
		if err := p.seriesIDs(ctx, keys, ids, missing); err != nil {
			return 0, fmt.Errorf("append samples: %w", err)
		}
		p.series.add(keys, ids, missing)
	}
	chunks, rest := planChunks(rows, ts, of)
	var n int64
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Not waiting for the WAL flush at commit: a crash may lose the
		// last appends, never half of one, as with SQLite's
		// synchronous=NORMAL. A batch's samples are durable once its
		// record is (PutBatch commits synchronously, flushing the WAL
		// before it), and a batch with no record is stored again.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return fmt.Errorf("set synchronous_commit: %w", err)
		}
		stored, taken, err := pgWriteChunks(ctx, tx, ids, chunks)
		if err != nil {
			return err
		}
		rest = unchunk(rest, taken)
		k, err := pgInsertRows(ctx, tx, rows, ts, ids, of, rest)
		n = stored + k
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append samples: %w", err)
	}
	return n, nil
}

// pgWriteChunks writes each chunk whose series holds nothing in its time
// range, looked up for all of them in one query, and returns how many
// samples it stored and the chunks it did not write, whose samples go to
// rows. A chunk equal to the stored one (the same batch appended again)
// counts as stored. Two appends racing to chunk the same range of a series
// may both write theirs; reads then take the later-starting chunk's
// sample where they overlap.
func pgWriteChunks(ctx context.Context, tx pgx.Tx, ids []int64, chunks []chunkRun) (int64, []chunkRun, error) {
	if len(chunks) == 0 {
		return 0, nil, nil
	}
	sids, los, his := make([]int64, len(chunks)), make([]int64, len(chunks)), make([]int64, len(chunks))
	for i, c := range chunks {
		sids[i], los[i], his[i] = ids[c.series], c.tMin, c.tMax
	}
	rows, err := tx.Query(ctx, `SELECT u.i, l.t_min, l.t_max, l.data,
			EXISTS (SELECT 1 FROM samples x WHERE x.series_id = u.sid AND x.ts >= u.lo AND x.ts <= u.hi)
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS u(sid, lo, hi, i)
		LEFT JOIN LATERAL (SELECT c.t_min, c.t_max, c.data FROM sample_chunks c
			WHERE c.series_id = u.sid AND c.t_min <= u.hi ORDER BY c.t_min DESC LIMIT 1) l ON true
		WHERE l.t_max >= u.lo
			OR EXISTS (SELECT 1 FROM samples x WHERE x.series_id = u.sid AND x.ts >= u.lo AND x.ts <= u.hi)`,
		sids, los, his)
	if err != nil {
		return 0, nil, fmt.Errorf("look up chunk ranges: %w", err)
	}
	skip := map[int]bool{} // chunks not to write: stored already, or taken
	var taken []chunkRun
	var n int64
	for rows.Next() {
		var i int64
		var tMin, tMax *int64
		var data []byte
		var hasRows bool
		if err := rows.Scan(&i, &tMin, &tMax, &data, &hasRows); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("look up chunk ranges: %w", err)
		}
		c := chunks[i-1]
		skip[int(i-1)] = true
		if !hasRows && tMin != nil && *tMin == c.tMin && *tMax == c.tMax && bytes.Equal(data, c.data) {
			n += int64(c.hi - c.lo)
			continue
		}
		taken = append(taken, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("look up chunk ranges: %w", err)
	}
	// A chunk another append wrote since the lookup (the key taken) goes
	// to rows as well.
	var sidW, minW, maxW []int64
	var nW []int32
	var dataW [][]byte
	var pending []chunkRun
	for i, c := range chunks {
		if !skip[i] {
			sidW, minW, maxW = append(sidW, ids[c.series]), append(minW, c.tMin), append(maxW, c.tMax)
			nW, dataW = append(nW, int32(c.hi-c.lo)), append(dataW, c.data)
			pending = append(pending, c)
		}
	}
	if len(pending) == 0 {
		return n, taken, nil
	}
	wrows, err := tx.Query(ctx, `INSERT INTO sample_chunks (series_id, t_min, t_max, n, data)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[])
		ON CONFLICT (series_id, t_min) DO NOTHING
		RETURNING series_id, t_min`, sidW, minW, maxW, nW, dataW)
	if err != nil {
		return 0, nil, fmt.Errorf("insert chunks: %w", err)
	}
	type key struct{ sid, tMin int64 }
	written, err := pgx.CollectRows(wrows, func(r pgx.CollectableRow) (key, error) {
		var k key
		return k, r.Scan(&k.sid, &k.tMin)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("insert chunks: %w", err)
	}
	in := make(map[key]bool, len(written))
	for _, k := range written {
		in[k] = true
	}
	for _, c := range pending {
		if in[key{ids[c.series], c.tMin}] {
			n += int64(c.hi - c.lo)
		} else {
			taken = append(taken, c)
		}
	}
	return n, taken, nil
}

// pgInsertRows stores rows[i] for i in which as rows of samples. They are
// copied straight in; when some are stored already (the copy hits the
// key), the copy is undone and they are merged through a per-connection
// staging table instead.
func pgInsertRows(ctx context.Context, tx pgx.Tx, rows []telemetry.Sample, ts, ids []int64, of, which []int) (int64, error) {
	if len(which) == 0 {
		return 0, nil
	}
	src := func() pgx.CopyFromSource {
		return pgx.CopyFromSlice(len(which), func(j int) ([]any, error) {
			i := which[j]
			return []any{ids[of[i]], ts[i], rows[i].Value}, nil
		})
	}
	cols := []string{"series_id", "ts", "value"}
	var n int64
	err := func() error {
		direct, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		n, err = direct.CopyFrom(ctx, pgx.Identifier{"samples"}, cols, src())
		if err == nil {
			return direct.Commit(ctx)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgUniqueViolation {
			return fmt.Errorf("copy to samples: %w", err)
		}
		if err := direct.Rollback(ctx); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS sample_stage (
			series_id BIGINT           NOT NULL,
			ts        BIGINT           NOT NULL,
			value     DOUBLE PRECISION NOT NULL
		) ON COMMIT DELETE ROWS`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sample_stage"}, cols, src()); err != nil {
			return fmt.Errorf("copy to staging table: %w", err)
		}
		// The rows are unique by key (prepareSamples) and merged in key
		// order, so concurrent appends lock rows in the same order.
		tag, err := tx.Exec(ctx, `INSERT INTO samples (series_id, ts, value)
			SELECT series_id, ts, value FROM sample_stage ORDER BY series_id, ts
			ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value`)
		if err != nil {
			return fmt.Errorf("merge staging table: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	}()
	return n, err
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const pgUniqueViolation = "23505"

// seriesIDs fills ids[i] for i in missing: it adds the series that are new
// (in key order, so concurrent adds do not deadlock), then reads the ids of
// all of them, committed by this call or another.
func (p *Postgres) seriesIDs(ctx context.Context, keys []seriesKey, ids []int64, missing []int) error {
	cols := make([][]string, 3)
	for _, i := range missing {
		k := keys[i]
		cols[0], cols[1], cols[2] = append(cols[0], k.box), append(cols[1], k.component), append(cols[2], k.metric)
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO series (box, component, metric)
		SELECT box, component, metric FROM unnest($1::text[], $2::text[], $3::text[]) AS u(box, component, metric)
		ORDER BY box, component, metric
		ON CONFLICT (box, component, metric) DO NOTHING`, cols[0], cols[1], cols[2]); err != nil {
		return fmt.Errorf("add series: %w", err)
	}
	rows, err := p.pool.Query(ctx, `SELECT u.i, s.id
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(box, component, metric, i)
		JOIN series s ON s.box = u.box AND s.component = u.component AND s.metric = u.metric`, cols[0], cols[1], cols[2])
	if err != nil {
		return fmt.Errorf("look up series: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var i, id int64
		if err := rows.Scan(&i, &id); err != nil {
			return fmt.Errorf("look up series: %w", err)
		}
		ids[missing[i-1]] = id
		found++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up series: %w", err)
	}
	if found != len(missing) {
		return fmt.Errorf("look up series: found %d of %d", found, len(missing))
	}
	return nil
}

// Window returns box's samples in [from, to); see Store. Components and
// metrics sort bytewise (COLLATE "C"), as on SQLite, whatever the
// database's collation.
func (p *Postgres) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	f, t := clampNanos(from), clampNanos(to)
	return p.window(ctx, box, f, t, `SELECT s.component, s.metric, x.ts, x.value
		FROM series s JOIN samples x ON x.series_id = s.id
		WHERE s.box = $1 AND x.ts >= $2 AND x.ts < $3
		ORDER BY s.component COLLATE "C", s.metric COLLATE "C", x.ts`,
		`SELECT s.component, s.metric, c.data
		FROM series s JOIN sample_chunks c ON c.series_id = s.id
		WHERE s.box = $1 AND c.t_min >= $2 AND c.t_min < $3 AND c.t_max >= $4
		ORDER BY s.component COLLATE "C", s.metric COLLATE "C", c.t_min`,
		[]any{box, f, t}, []any{box, chunkFloor(f), t, f})
}

// WindowKind returns box's samples of components of one kind; see Store.
// starts_with does not depend on the database's collation, as a range on
// component would.
func (p *Postgres) WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	lo, _ := kindRange(kind)
	f, t := clampNanos(from), clampNanos(to)
	return p.window(ctx, box, f, t, `SELECT s.component, s.metric, x.ts, x.value
		FROM series s JOIN samples x ON x.series_id = s.id
		WHERE s.box = $1 AND starts_with(s.component, $2) AND x.ts >= $3 AND x.ts < $4
		ORDER BY s.component COLLATE "C", s.metric COLLATE "C", x.ts`,
		`SELECT s.component, s.metric, c.data
		FROM series s JOIN sample_chunks c ON c.series_id = s.id
		WHERE s.box = $1 AND starts_with(s.component, $2) AND c.t_min >= $3 AND c.t_min < $4 AND c.t_max >= $5
		ORDER BY s.component COLLATE "C", s.metric COLLATE "C", c.t_min`,
		[]any{box, lo, f, t}, []any{box, lo, chunkFloor(f), t, f})
}

// window reads box's rows (component, metric, ts, value) and chunks
// (component, metric, data) of [from, to) and merges them.
func (p *Postgres) window(ctx context.Context, box string, from, to int64, rowQuery, chunkQuery string, rowArgs, chunkArgs []any) ([]telemetry.Sample, error) {
	rows, err := p.pool.Query(ctx, rowQuery, rowArgs...)
	if err != nil {
		return nil, fmt.Errorf("query window of %s: %w", box, err)
	}
	defer rows.Close()
	out, err := scanWindowRows(box, rows)
	if err != nil {
		return nil, err
	}
	crows, err := p.pool.Query(ctx, chunkQuery, chunkArgs...)
	if err != nil {
		return nil, fmt.Errorf("query window chunks of %s: %w", box, err)
	}
	defer crows.Close()
	chunked, err := scanWindowChunks(box, crows, from, to)
	if err != nil {
		return nil, err
	}
	return mergeTiers(out, chunked), nil
}

// NewestSample returns the newest sample time of the stored batches; see Store.
func (p *Postgres) NewestSample(ctx context.Context) (time.Time, error) {
	var ts *int64
	if err := p.pool.QueryRow(ctx, `SELECT MAX(last_sample) FROM batches WHERE status = $1`, BatchStored).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("newest sample: %w", err)
	}
	if ts == nil {
		return time.Time{}, nil
	}
	return fromNanos(*ts), nil
}

// LatestSample returns the time of box's newest sample; see Store.
func (p *Postgres) LatestSample(ctx context.Context, box string) (time.Time, error) {
	// The newest row of each series is one seek on the key (series_id,
	// ts), its last chunk one seek on (series_id, t_min).
	var row, chunk sql.NullInt64
	err := p.pool.QueryRow(ctx, `SELECT
		(SELECT MAX(x.ts) FROM series s
			CROSS JOIN LATERAL (SELECT ts FROM samples WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) x
			WHERE s.box = $1),
		(SELECT MAX(c.t_max) FROM series s
			CROSS JOIN LATERAL (SELECT t_max FROM sample_chunks WHERE series_id = s.id ORDER BY t_min DESC LIMIT 1) c
			WHERE s.box = $1)`, box).Scan(&row, &chunk)
	if err != nil {
		return time.Time{}, fmt.Errorf("latest sample of %s: %w", box, err)
	}
	return latestOf(box, row, chunk)
}

// PutBatch records or replaces a batch; see Store.
func (p *Postgres) PutBatch(ctx context.Context, b Batch) error {
	r, err := prepareBatch(b)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO batches (id, path, format, status, accepted, rejected,
			boxes, unknown_boxes, errors, first_sample, last_sample, stored_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET path = excluded.path, format = excluded.format,
			status = excluded.status, accepted = excluded.accepted, rejected = excluded.rejected,
			boxes = excluded.boxes, unknown_boxes = excluded.unknown_boxes, errors = excluded.errors,
			first_sample = excluded.first_sample, last_sample = excluded.last_sample,
			stored_at = excluded.stored_at`,
		r.ID, r.Path, r.Format, r.Status, r.Accepted, r.Rejected,
		r.Boxes, r.UnknownBoxes, r.Errors, r.FirstSample, r.LastSample, r.StoredAt)
	if err != nil {
		return fmt.Errorf("put batch %q: %w", b.ID, err)
	}
	return nil
}

// Batch returns the batch with the given id; see Store.
func (p *Postgres) Batch(ctx context.Context, id string) (Batch, error) {
	var r batchRow
	err := p.pool.QueryRow(ctx, `SELECT id, path, format, status, accepted, rejected,
			boxes, unknown_boxes, errors, first_sample, last_sample, stored_at
		FROM batches WHERE id = $1`, id).Scan(
		&r.ID, &r.Path, &r.Format, &r.Status, &r.Accepted, &r.Rejected,
		&r.Boxes, &r.UnknownBoxes, &r.Errors, &r.FirstSample, &r.LastSample, &r.StoredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, fmt.Errorf("get batch %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %q: %w", id, err)
	}
	return r.batch()
}

// UpsertBoxes adds or updates inventory boxes in one statement; see Store.
func (p *Postgres) UpsertBoxes(ctx context.Context, boxes []fleet.Box) error {
	rows, err := prepareBoxes(boxes)
	if err != nil || len(rows) == 0 {
		return err
	}
	cols := make([][]string, 7)
	for _, r := range rows {
		for i, v := range []string{r.ID, r.Model, r.Firmware, r.Site, r.Owners, r.Escalation, r.Tags} {
			cols[i] = append(cols[i], v)
		}
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO boxes (id, model, firmware, site, owners, escalation, tags, in_inventory)
		SELECT id, model, firmware, site, owners, escalation, tags::jsonb, true
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
			AS u(id, model, firmware, site, owners, escalation, tags)
		ORDER BY id
		ON CONFLICT (id) DO UPDATE SET model = excluded.model, firmware = excluded.firmware,
			site = excluded.site, owners = excluded.owners, escalation = excluded.escalation,
			tags = excluded.tags, in_inventory = true`,
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6])
	if err != nil {
		return fmt.Errorf("upsert boxes: %w", err)
	}
	return nil
}

// TouchBoxes records that telemetry arrived for ids; see Store.
func (p *Postgres) TouchBoxes(ctx context.Context, ids []string) error {
	ids, err := prepareIDs(ids)
	if err != nil || len(ids) == 0 {
		return err
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO boxes (id, in_inventory, last_seen)
		SELECT id, false, $2 FROM unnest($1::text[]) AS u(id) ORDER BY id
		ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen`,
		ids, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("touch boxes: %w", err)
	}
	return nil
}

func postgresPH(n int) string { return "$" + strconv.Itoa(n) }

func postgresHasTag(p string) string { return "tags @> jsonb_build_array(" + p + "::text)" }

// Boxes returns a page of boxes; see Store.
func (p *Postgres) Boxes(ctx context.Context, q BoxQuery) ([]fleet.Box, error) {
	where, args := boxFilter(q, true, postgresPH, postgresHasTag)
	rows, err := p.pool.Query(ctx, `SELECT id, model, firmware, site, owners, escalation, tags::text FROM boxes`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query boxes: %w", err)
	}
	defer rows.Close()
	var out []fleet.Box
	for rows.Next() {
		var r boxRow
		if err := rows.Scan(&r.ID, &r.Model, &r.Firmware, &r.Site, &r.Owners, &r.Escalation, &r.Tags); err != nil {
			return nil, fmt.Errorf("query boxes: %w", err)
		}
		b, err := r.box()
		if err != nil {
			return nil, fmt.Errorf("query boxes: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query boxes: %w", err)
	}
	return out, nil
}

// CountBoxes counts the boxes matching q; see Store.
func (p *Postgres) CountBoxes(ctx context.Context, q BoxQuery) (int, error) {
	where, args := boxFilter(q, false, postgresPH, postgresHasTag)
	var n int
	if err := p.pool.QueryRow(ctx, `SELECT COUNT(*) FROM boxes`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count boxes: %w", err)
	}
	return n, nil
}

// UpsertFinding stores f by fingerprint in one statement; see Store.
func (p *Postgres) UpsertFinding(ctx context.Context, f finding.Finding) (bool, error) {
	r, err := prepareFinding(f)
	if err != nil {
		return false, err
	}
	var created bool
	// xmax is 0 on a freshly inserted row version and set on an updated one.
	err = p.pool.QueryRow(ctx, `INSERT INTO findings (fingerprint, box, rule, component, severity,
			severity_rank, title, problem, evidence, remediation, time_to_impact,
			detected_at, first_seen, last_seen, status, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '')
		ON CONFLICT (fingerprint) DO UPDATE SET severity = excluded.severity,
			severity_rank = excluded.severity_rank, title = excluded.title, problem = excluded.problem,
			evidence = excluded.evidence, remediation = excluded.remediation,
			time_to_impact = excluded.time_to_impact, detected_at = excluded.detected_at,
			last_seen = excluded.last_seen
		RETURNING (xmax = 0)`,
		r.Fingerprint, r.Box, r.Rule, r.Component, r.Severity, r.Rank, r.Title, r.Problem,
		r.Evidence, r.Remediation, r.TimeToImpact, r.DetectedAt, r.FirstSeen, r.LastSeen, r.Status).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("upsert finding %q: %w", r.Fingerprint, err)
	}
	return created, nil
}

// Finding returns the finding with fingerprint fp; see Store.
func (p *Postgres) Finding(ctx context.Context, fp string) (finding.Finding, error) {
	var r findingRow
	err := p.pool.QueryRow(ctx, `SELECT `+findingCols+` FROM findings WHERE fingerprint = $1`, fp).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return finding.Finding{}, fmt.Errorf("get finding %q: %w", fp, ErrNotFound)
	}
	if err != nil {
		return finding.Finding{}, fmt.Errorf("get finding %q: %w", fp, err)
	}
	return r.finding()
}

// Findings returns the findings matching q; see Store.
func (p *Postgres) Findings(ctx context.Context, q FindingQuery) ([]finding.Finding, error) {
	tail, args, err := findingFilter(q, postgresPH)
	if err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, `SELECT `+findingCols+` FROM findings`+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query findings: %w", err)
	}
	defer rows.Close()
	var out []finding.Finding
	for rows.Next() {
		var r findingRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("query findings: %w", err)
		}
		f, err := r.finding()
		if err != nil {
			return nil, fmt.Errorf("query findings: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query findings: %w", err)
	}
	return out, nil
}

// SetFindingStatus sets the status and note of a finding; see Store.
func (p *Postgres) SetFindingStatus(ctx context.Context, fp string, status finding.Status, note string) error {
	if err := checkStatus(fp, status); err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `UPDATE findings SET status = $1, note = $2 WHERE fingerprint = $3`, string(status), note, fp)
	if err != nil {
		return fmt.Errorf("set finding status %q: %w", fp, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set finding status %q: %w", fp, ErrNotFound)
	}
	return nil
}

// PutScanReport records or replaces a scan report; see Store.
func (p *Postgres) PutScanReport(ctx context.Context, rep ScanReport) error {
	r, err := prepareScan(rep)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO scan_reports (id, selector, started_at, finished_at,
			boxes, analysed, findings, runs, by_severity, failed_shards, remediations, dispatch_errors,
			more_failed_shards, more_dispatch_errors)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (id) DO UPDATE SET selector = excluded.selector, started_at = excluded.started_at,
			finished_at = excluded.finished_at, boxes = excluded.boxes, analysed = excluded.analysed,
			findings = excluded.findings, runs = excluded.runs, by_severity = excluded.by_severity,
			failed_shards = excluded.failed_shards, remediations = excluded.remediations,
			dispatch_errors = excluded.dispatch_errors, more_failed_shards = excluded.more_failed_shards,
			more_dispatch_errors = excluded.more_dispatch_errors`,
		r.ID, r.Selector, r.StartedAt, r.FinishedAt, r.Boxes, r.Analysed, r.Findings, r.Runs,
		r.BySeverity, r.FailedShards, r.Remediations, r.DispatchErrors, r.MoreFailedShards, r.MoreDispatchErrors)
	if err != nil {
		return fmt.Errorf("put scan report %q: %w", rep.ID, err)
	}
	return nil
}

// ScanReport returns the report with the given id; see Store.
func (p *Postgres) ScanReport(ctx context.Context, id string) (ScanReport, error) {
	var r scanRow
	err := p.pool.QueryRow(ctx, `SELECT `+scanCols+` FROM scan_reports WHERE id = $1`, id).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ScanReport{}, fmt.Errorf("get scan report %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return ScanReport{}, fmt.Errorf("get scan report %q: %w", id, err)
	}
	return r.report()
}

// ScanReports returns the newest reports first; see Store.
func (p *Postgres) ScanReports(ctx context.Context, limit int) ([]ScanReport, error) {
	q := `SELECT ` + scanCols + ` FROM scan_reports ORDER BY started_at DESC NULLS LAST, id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := p.pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query scan reports: %w", err)
	}
	defer rows.Close()
	var out []ScanReport
	for rows.Next() {
		var r scanRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("query scan reports: %w", err)
		}
		rep, err := r.report()
		if err != nil {
			return nil, fmt.Errorf("query scan reports: %w", err)
		}
		out = append(out, rep)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query scan reports: %w", err)
	}
	return out, nil
}
