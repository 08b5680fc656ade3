package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gofrs/flock"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// sqliteMigrations are the schema versions of the SQLite store, applied in
// order; version n is sqliteMigrations[n-1]. Never edit one that shipped:
// append a new one.
var sqliteMigrations = []string{
	// 1: samples, batches, boxes, findings, scan reports.
	`CREATE TABLE samples (
		box       TEXT    NOT NULL,
		component TEXT    NOT NULL,
		metric    TEXT    NOT NULL,
		ts        INTEGER NOT NULL, -- unix nanoseconds
		value     REAL    NOT NULL,
		PRIMARY KEY (box, component, metric, ts)
	) WITHOUT ROWID;
	CREATE INDEX samples_box_ts ON samples (box, ts);
	CREATE TABLE batches (
		id            TEXT    PRIMARY KEY,
		path          TEXT    NOT NULL,
		format        TEXT    NOT NULL,
		status        TEXT    NOT NULL,
		accepted      INTEGER NOT NULL,
		rejected      INTEGER NOT NULL,
		boxes         TEXT    NOT NULL, -- JSON array
		unknown_boxes TEXT    NOT NULL, -- JSON array
		errors        TEXT    NOT NULL, -- JSON array
		first_sample  INTEGER,
		last_sample   INTEGER,
		stored_at     INTEGER
	);
	CREATE TABLE boxes (
		id           TEXT    PRIMARY KEY,
		model        TEXT    NOT NULL DEFAULT '',
		firmware     TEXT    NOT NULL DEFAULT '',
		site         TEXT    NOT NULL DEFAULT '',
		owners       TEXT    NOT NULL DEFAULT '[]', -- JSON array
		escalation   TEXT    NOT NULL DEFAULT '[]', -- JSON array
		tags         TEXT    NOT NULL DEFAULT '[]', -- JSON array
		in_inventory INTEGER NOT NULL DEFAULT 0,
		last_seen    INTEGER
	);
	CREATE INDEX boxes_site ON boxes (site, id);
	CREATE INDEX boxes_model ON boxes (model, id);
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
		time_to_impact INTEGER NOT NULL, -- nanoseconds
		detected_at    INTEGER,
		first_seen     INTEGER,
		last_seen      INTEGER,
		status         TEXT    NOT NULL,
		note           TEXT    NOT NULL DEFAULT ''
	);
	CREATE INDEX findings_rank ON findings (severity_rank DESC, fingerprint);
	CREATE INDEX findings_box ON findings (box);
	CREATE TABLE scan_reports (
		id            TEXT    PRIMARY KEY,
		selector      TEXT    NOT NULL,
		started_at    INTEGER,
		finished_at   INTEGER,
		boxes         INTEGER NOT NULL,
		analysed      INTEGER NOT NULL,
		findings      INTEGER NOT NULL,
		runs          INTEGER NOT NULL,
		by_severity   TEXT    NOT NULL, -- JSON object
		failed_shards TEXT    NOT NULL  -- JSON array
	);
	CREATE INDEX scan_reports_started ON scan_reports (started_at DESC, id DESC);`,
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
		unknown INTEGER NOT NULL DEFAULT 0, -- 1: not in the inventory
		PRIMARY KEY (batch, box)
	) WITHOUT ROWID;
	ALTER TABLE scan_reports ADD COLUMN more_failed_shards BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE scan_reports ADD COLUMN more_dispatch_errors BIGINT NOT NULL DEFAULT 0;`,
	// 6: external analyzers' last failure and success, and the rules each
	// has reported (a failed analyzer's findings are unknown, not cleared).
	`CREATE TABLE analyzer_runs (
		analyzer   TEXT    PRIMARY KEY,
		last_error TEXT    NOT NULL DEFAULT '',
		last_box   TEXT    NOT NULL DEFAULT '',
		failed_at  INTEGER, -- unix nanoseconds of the last failure
		ok_at      INTEGER  -- unix nanoseconds of the last success
	);
	CREATE TABLE analyzer_rules (
		analyzer TEXT NOT NULL,
		rule     TEXT NOT NULL,
		PRIMARY KEY (analyzer, rule)
	) WITHOUT ROWID;`,
	// 7: the receiver's bearer tokens and its intake (the same SQL on both stores).
	intakeMigration,
	// 8: samples by series: each box/component/metric gets an id in series,
	// samples are (series_id, ts, value); the stored samples are copied over.
	// Series are assigned ids in key order, so the copy appends in key order.
	`CREATE TABLE series (
		id        INTEGER PRIMARY KEY,
		box       TEXT    NOT NULL,
		component TEXT    NOT NULL,
		metric    TEXT    NOT NULL,
		UNIQUE (box, component, metric)
	);
	CREATE TABLE samples_by_series (
		series_id INTEGER NOT NULL,
		ts        INTEGER NOT NULL, -- unix nanoseconds
		value     REAL    NOT NULL,
		PRIMARY KEY (series_id, ts)
	) WITHOUT ROWID;
	INSERT INTO series (box, component, metric)
		SELECT DISTINCT box, component, metric FROM samples ORDER BY box, component, metric;
	INSERT INTO samples_by_series (series_id, ts, value)
		SELECT s.id, x.ts, x.value FROM samples x
		JOIN series s ON s.box = x.box AND s.component = x.component AND s.metric = x.metric
		ORDER BY s.id, x.ts;
	DROP TABLE samples;
	ALTER TABLE samples_by_series RENAME TO samples;`,
	// 9: compressed chunks of samples, one series and UTC day each (see
	// chunk.go). The rows in samples stay where they are until SealSamples
	// merges their days into chunks. A rowid table rather than WITHOUT
	// ROWID: a chunk is larger than SQLite advises for the latter.
	`CREATE TABLE sample_chunks (
		series_id INTEGER NOT NULL,
		t_min     INTEGER NOT NULL, -- unix nanoseconds of the first sample
		t_max     INTEGER NOT NULL, -- and of the last
		n         INTEGER NOT NULL, -- samples in the chunk
		sealed    INTEGER NOT NULL DEFAULT 0,
		data      BLOB    NOT NULL
	);
	CREATE UNIQUE INDEX sample_chunks_key ON sample_chunks (series_id, t_min);
	CREATE INDEX sample_chunks_t ON sample_chunks (t_min);
	CREATE INDEX sample_chunks_unsealed ON sample_chunks (series_id, t_min) WHERE sealed = 0;`,
}

// SQLite is the embedded Store: one database file in WAL mode. Writes go
// through a single connection (SQLite allows one writer at a time, so
// queueing them in Go rather than in busy retries keeps concurrent
// activities from failing with SQLITE_BUSY); reads use a pool of read-only
// connections that WAL lets run beside the writer. Other processes opening
// the same file wait up to the busy timeout.
type SQLite struct {
	w      *sql.DB // one connection, BEGIN IMMEDIATE
	r      *sql.DB // read-only pool
	series *seriesCache
}

var _ Store = (*SQLite)(nil)

// sqliteBusyTimeout is how long a connection waits for another process's lock.
const sqliteBusyTimeout = 10 * time.Second

// sqliteOpenLockTimeout bounds the wait for the migration lock: another
// process holds it only while it switches the file to WAL and migrates.
const sqliteOpenLockTimeout = time.Minute

// OpenSQLite opens (creating it and its parent directories if needed) the
// SQLite database at path and brings its schema up to date.
func OpenSQLite(path string) (*SQLite, error) { return openSQLite(path, len(sqliteMigrations)) }

// openSQLite is OpenSQLite migrating up to schema version (tests build
// databases of older versions with it).
func openSQLite(path string, version int) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open sqlite: create directory: %w", err)
		}
	}
	dsn := func(pragmas ...string) string {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)") // with WAL: a power cut may lose the last commits, never corrupts
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		return path + "?" + q.Encode()
	}
	// Opening a new file switches it to WAL and migrates it; two processes
	// doing that at once can get SQLITE_BUSY without the busy handler ever
	// being called (SQLite does not wait where waiting could deadlock), so
	// processes opening the same file take turns under an advisory file lock.
	// Once open, the busy timeout covers ordinary contention.
	lock := flock.New(path+".lock", flock.SetPermissions(0o644)) // others (an operator's starter) may read the store
	lockCtx, cancel := context.WithTimeout(context.Background(), sqliteOpenLockTimeout)
	locked, err := lock.TryLockContext(lockCtx, 20*time.Millisecond)
	cancel()
	if err != nil || !locked {
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("another process held it for over %s", sqliteOpenLockTimeout)
		}
		return nil, fmt.Errorf("open sqlite %s: take migration lock %s.lock: %w", path, path, err)
	}
	defer func() { _ = lock.Unlock() }()
	// 64 MiB of cache for the writer: appends touch many index pages.
	// auto_vacuum(INCREMENTAL) takes effect on a new file (before its first
	// table) and on an old one at its next VACUUM (Compact), so retention
	// can give freed pages back with incremental_vacuum. The WAL is
	// checkpointed every 10,000 pages (about 40 MiB) rather than 1,000:
	// sample appends dirty the same pages commit after commit, and each
	// checkpoint writes a page once however often it changed.
	w, err := sql.Open("sqlite", dsn("auto_vacuum(INCREMENTAL)", "journal_mode(WAL)", "cache_size(-65536)", "wal_autocheckpoint(10000)")+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &SQLite{w: w, series: newSeriesCache()}
	if err := s.migrate(context.Background(), version); err != nil { // the first statement opens the connection and sets WAL
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	return s, nil
}

// migrate applies the missing schema versions up to version in one
// immediate transaction, which also keeps two processes from migrating the
// same file at once.
func (s *SQLite) migrate(ctx context.Context, version int) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate schema: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate schema: read version: %w", err)
	}
	if current > len(sqliteMigrations) {
		return fmt.Errorf("migrate schema: database is at version %d, this build knows up to %d", current, len(sqliteMigrations))
	}
	for v := current + 1; v <= version; v++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[v-1]); err != nil {
			return fmt.Errorf("migrate schema: apply version %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate schema: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

// Close releases both connection pools.
func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// AppendSamples stores samples in one transaction; see Store. Series not
// in the cache are looked up (added if new) once each in that transaction.
// Runs of a series and day go in as chunks where their range holds nothing
// yet, the rest as rows.
func (s *SQLite) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	rows, ts, err := prepareSamples(samples)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	keys, of := seriesOf(rows)
	ids := make([]int64, len(keys))
	missing := s.series.lookup(keys, ids)
	chunks, rest := planChunks(rows, ts, of)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append samples: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := sqliteSeriesIDs(ctx, tx, keys, ids, missing); err != nil {
		return 0, err
	}
	n, taken, err := sqliteWriteChunks(ctx, tx, ids, chunks)
	if err != nil {
		return 0, err
	}
	rest = unchunk(rest, taken)
	k, err := sqliteInsertRows(ctx, tx, rows, ts, ids, of, rest)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append samples: commit: %w", err)
	}
	s.series.add(keys, ids, missing) // only once committed: a rolled back id is no id
	return n + k, nil
}

// sqliteWriteChunks writes each chunk whose series holds nothing in its
// time range and returns how many samples it stored and the chunks it did
// not write, whose samples go to rows. A chunk equal to the stored one (the
// same batch appended again) counts as stored.
func sqliteWriteChunks(ctx context.Context, tx *sql.Tx, ids []int64, chunks []chunkRun) (int64, []chunkRun, error) {
	if len(chunks) == 0 {
		return 0, nil, nil
	}
	last, err := tx.PrepareContext(ctx, `SELECT t_min, t_max, data FROM sample_chunks
		WHERE series_id = ? AND t_min <= ? ORDER BY t_min DESC LIMIT 1`)
	if err != nil {
		return 0, nil, fmt.Errorf("append samples: prepare chunk lookup: %w", err)
	}
	defer func() { _ = last.Close() }()
	anyRow, err := tx.PrepareContext(ctx, `SELECT 1 FROM samples WHERE series_id = ? AND ts >= ? AND ts <= ? LIMIT 1`)
	if err != nil {
		return 0, nil, fmt.Errorf("append samples: prepare row lookup: %w", err)
	}
	defer func() { _ = anyRow.Close() }()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO sample_chunks (series_id, t_min, t_max, n, data) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, nil, fmt.Errorf("append samples: prepare chunk insert: %w", err)
	}
	defer func() { _ = ins.Close() }()
	var n int64
	var taken []chunkRun
	for _, c := range chunks {
		id := ids[c.series]
		var tMin, tMax int64
		var data []byte
		switch err := last.QueryRowContext(ctx, id, c.tMax).Scan(&tMin, &tMax, &data); {
		case err == nil && tMax >= c.tMin:
			if tMin == c.tMin && tMax == c.tMax && bytes.Equal(data, c.data) && !sqliteHasRow(ctx, anyRow, id, c) {
				n += int64(c.hi - c.lo)
			} else {
				taken = append(taken, c)
			}
			continue
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return 0, nil, fmt.Errorf("append samples: look up chunks of series %d: %w", id, err)
		}
		if sqliteHasRow(ctx, anyRow, id, c) {
			taken = append(taken, c)
			continue
		}
		if _, err := ins.ExecContext(ctx, id, c.tMin, c.tMax, c.hi-c.lo, c.data); err != nil {
			return 0, nil, fmt.Errorf("append samples: insert chunk of series %d: %w", id, err)
		}
		n += int64(c.hi - c.lo)
	}
	return n, taken, nil
}

// sqliteHasRow reports whether series id has a row in c's time range; an
// error reading counts as a row, which sends c's samples to rows.
func sqliteHasRow(ctx context.Context, anyRow *sql.Stmt, id int64, c chunkRun) bool {
	var one int
	err := anyRow.QueryRowContext(ctx, id, c.tMin, c.tMax).Scan(&one)
	return !errors.Is(err, sql.ErrNoRows)
}

// sqliteInsertRows upserts rows[i] for i in which, sqliteChunk at a time:
// one statement per row spends more time crossing database/sql than SQLite
// spends inserting.
func sqliteInsertRows(ctx context.Context, tx *sql.Tx, rows []telemetry.Sample, ts, ids []int64, of, which []int) (int64, error) {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	var n int64
	args := make([]any, 0, 3*sqliteChunk)
	for lo := 0; lo < len(which); lo += sqliteChunk {
		hi := min(lo+sqliteChunk, len(which))
		stmt := full
		if hi-lo < sqliteChunk || full == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, sqliteInsertSamples(hi-lo)); err != nil {
				return 0, fmt.Errorf("append samples: prepare: %w", err)
			}
			if hi-lo == sqliteChunk {
				full = stmt
			} else {
				defer func() { _ = stmt.Close() }()
			}
		}
		args = args[:0]
		for _, i := range which[lo:hi] {
			args = append(args, ids[of[i]], ts[i], rows[i].Value)
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("append samples: insert rows %d..%d: %w", which[lo], which[hi-1], err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("append samples: rows affected: %w", err)
		}
		n += k
	}
	return n, nil
}

// sqliteSeriesIDs fills ids[i] for i in missing, adding the series that
// are new, in tx.
func sqliteSeriesIDs(ctx context.Context, tx *sql.Tx, keys []seriesKey, ids []int64, missing []int) error {
	if len(missing) == 0 {
		return nil
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO series (box, component, metric) VALUES (?, ?, ?)
		ON CONFLICT (box, component, metric) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("append samples: prepare series insert: %w", err)
	}
	defer func() { _ = ins.Close() }()
	sel, err := tx.PrepareContext(ctx, `SELECT id FROM series WHERE box = ? AND component = ? AND metric = ?`)
	if err != nil {
		return fmt.Errorf("append samples: prepare series lookup: %w", err)
	}
	defer func() { _ = sel.Close() }()
	for _, i := range missing {
		k := keys[i]
		if _, err := ins.ExecContext(ctx, k.box, k.component, k.metric); err != nil {
			return fmt.Errorf("append samples: add series %s %s %s: %w", k.box, k.component, k.metric, err)
		}
		if err := sel.QueryRowContext(ctx, k.box, k.component, k.metric).Scan(&ids[i]); err != nil {
			return fmt.Errorf("append samples: look up series %s %s %s: %w", k.box, k.component, k.metric, err)
		}
	}
	return nil
}

// sqliteChunk is how many samples one INSERT statement writes.
const sqliteChunk = 500

// sqliteInsertSamples returns the upsert of n samples.
func sqliteInsertSamples(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO samples (series_id, ts, value) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value`)
	return b.String()
}

// Window returns box's samples in [from, to); see Store. CROSS JOIN makes
// SQLite walk the box's series in key order and seek each one's samples.
func (s *SQLite) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	f, t := clampNanos(from), clampNanos(to)
	return s.window(ctx, box, f, t, `SELECT s.component, s.metric, x.ts, x.value
		FROM series s CROSS JOIN samples x ON x.series_id = s.id
		WHERE s.box = ? AND x.ts >= ? AND x.ts < ? ORDER BY s.component, s.metric, x.ts`,
		`SELECT s.component, s.metric, c.data
		FROM series s CROSS JOIN sample_chunks c ON c.series_id = s.id
		WHERE s.box = ? AND c.t_min >= ? AND c.t_min < ? AND c.t_max >= ?
		ORDER BY s.component, s.metric, c.t_min`,
		[]any{box, f, t}, []any{box, chunkFloor(f), t, f})
}

// WindowKind returns box's samples of components of one kind; see Store.
// The component range seeks on the series key (box, component, ...).
func (s *SQLite) WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	lo, hi := kindRange(kind)
	f, t := clampNanos(from), clampNanos(to)
	return s.window(ctx, box, f, t, `SELECT s.component, s.metric, x.ts, x.value
		FROM series s CROSS JOIN samples x ON x.series_id = s.id
		WHERE s.box = ? AND s.component >= ? AND s.component < ? AND x.ts >= ? AND x.ts < ?
		ORDER BY s.component, s.metric, x.ts`,
		`SELECT s.component, s.metric, c.data
		FROM series s CROSS JOIN sample_chunks c ON c.series_id = s.id
		WHERE s.box = ? AND s.component >= ? AND s.component < ? AND c.t_min >= ? AND c.t_min < ? AND c.t_max >= ?
		ORDER BY s.component, s.metric, c.t_min`,
		[]any{box, lo, hi, f, t}, []any{box, lo, hi, chunkFloor(f), t, f})
}

// window reads box's rows (component, metric, ts, value) and chunks
// (component, metric, data) of [from, to) and merges them.
func (s *SQLite) window(ctx context.Context, box string, from, to int64, rowQuery, chunkQuery string, rowArgs, chunkArgs []any) ([]telemetry.Sample, error) {
	rows, err := s.r.QueryContext(ctx, rowQuery, rowArgs...)
	if err != nil {
		return nil, fmt.Errorf("query window of %s: %w", box, err)
	}
	defer func() { _ = rows.Close() }()
	out, err := scanWindowRows(box, rows)
	if err != nil {
		return nil, err
	}
	crows, err := s.r.QueryContext(ctx, chunkQuery, chunkArgs...)
	if err != nil {
		return nil, fmt.Errorf("query window chunks of %s: %w", box, err)
	}
	defer func() { _ = crows.Close() }()
	chunked, err := scanWindowChunks(box, crows, from, to)
	if err != nil {
		return nil, err
	}
	return mergeTiers(out, chunked), nil
}

// NewestSample returns the newest sample time of the stored batches; see Store.
func (s *SQLite) NewestSample(ctx context.Context) (time.Time, error) {
	var ts sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(last_sample) FROM batches WHERE status = ?`, BatchStored).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("newest sample: %w", err)
	}
	if !ts.Valid {
		return time.Time{}, nil
	}
	return fromNanos(ts.Int64), nil
}

// LatestSample returns the time of box's newest sample; see Store.
func (s *SQLite) LatestSample(ctx context.Context, box string) (time.Time, error) {
	// The newest row of each series is one seek on the key (series_id,
	// ts), its last chunk one seek on (series_id, t_min).
	var rowTS, chunkTS sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT MAX((SELECT MAX(ts) FROM samples WHERE series_id = s.id)) FROM series s WHERE s.box = ?),
		(SELECT MAX((SELECT t_max FROM sample_chunks WHERE series_id = s.id ORDER BY t_min DESC LIMIT 1)) FROM series s WHERE s.box = ?)`,
		box, box).Scan(&rowTS, &chunkTS)
	if err != nil {
		return time.Time{}, fmt.Errorf("latest sample of %s: %w", box, err)
	}
	return latestOf(box, rowTS, chunkTS)
}

// PutBatch records or replaces a batch; see Store.
func (s *SQLite) PutBatch(ctx context.Context, b Batch) error {
	r, err := prepareBatch(b)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO batches (id, path, format, status, accepted, rejected,
			boxes, unknown_boxes, errors, first_sample, last_sample, stored_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
func (s *SQLite) Batch(ctx context.Context, id string) (Batch, error) {
	var r batchRow
	err := s.r.QueryRowContext(ctx, `SELECT id, path, format, status, accepted, rejected,
			boxes, unknown_boxes, errors, first_sample, last_sample, stored_at
		FROM batches WHERE id = ?`, id).Scan(
		&r.ID, &r.Path, &r.Format, &r.Status, &r.Accepted, &r.Rejected,
		&r.Boxes, &r.UnknownBoxes, &r.Errors, &r.FirstSample, &r.LastSample, &r.StoredAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("get batch %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %q: %w", id, err)
	}
	return r.batch()
}

// UpsertBoxes adds or updates inventory boxes; see Store.
func (s *SQLite) UpsertBoxes(ctx context.Context, boxes []fleet.Box) error {
	rows, err := prepareBoxes(boxes)
	if err != nil || len(rows) == 0 {
		return err
	}
	return s.inTx(ctx, "upsert boxes", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO boxes (id, model, firmware, site, owners, escalation, tags, in_inventory)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (id) DO UPDATE SET model = excluded.model, firmware = excluded.firmware,
				site = excluded.site, owners = excluded.owners, escalation = excluded.escalation,
				tags = excluded.tags, in_inventory = 1`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, r.ID, r.Model, r.Firmware, r.Site, r.Owners, r.Escalation, r.Tags); err != nil {
				return fmt.Errorf("box %s: %w", r.ID, err)
			}
		}
		return nil
	})
}

// TouchBoxes records that telemetry arrived for ids; see Store.
func (s *SQLite) TouchBoxes(ctx context.Context, ids []string) error {
	ids, err := prepareIDs(ids)
	if err != nil || len(ids) == 0 {
		return err
	}
	now := time.Now().UnixNano()
	return s.inTx(ctx, "touch boxes", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO boxes (id, in_inventory, last_seen) VALUES (?, 0, ?)
			ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, id, now); err != nil {
				return fmt.Errorf("box %s: %w", id, err)
			}
		}
		return nil
	})
}

// inTx runs f in a write transaction, wrapping its error with what.
func (s *SQLite) inTx(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := f(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

func sqlitePH(int) string { return "?" }

func sqliteHasTag(p string) string {
	return "EXISTS (SELECT 1 FROM json_each(boxes.tags) WHERE json_each.value = " + p + ")"
}

// Boxes returns a page of boxes; see Store.
func (s *SQLite) Boxes(ctx context.Context, q BoxQuery) ([]fleet.Box, error) {
	where, args := boxFilter(q, true, sqlitePH, sqliteHasTag)
	rows, err := s.r.QueryContext(ctx, `SELECT id, model, firmware, site, owners, escalation, tags FROM boxes`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query boxes: %w", err)
	}
	defer func() { _ = rows.Close() }()
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
func (s *SQLite) CountBoxes(ctx context.Context, q BoxQuery) (int, error) {
	where, args := boxFilter(q, false, sqlitePH, sqliteHasTag)
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM boxes`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count boxes: %w", err)
	}
	return n, nil
}

// UpsertFinding stores f by fingerprint; see Store.
func (s *SQLite) UpsertFinding(ctx context.Context, f finding.Finding) (bool, error) {
	r, err := prepareFinding(f)
	if err != nil {
		return false, err
	}
	var created bool
	err = s.inTx(ctx, fmt.Sprintf("upsert finding %q", r.Fingerprint), func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM findings WHERE fingerprint = ?`, r.Fingerprint).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.ExecContext(ctx, `INSERT INTO findings (fingerprint, box, rule, component, severity,
					severity_rank, title, problem, evidence, remediation, time_to_impact,
					detected_at, first_seen, last_seen, status, note)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')`,
				r.Fingerprint, r.Box, r.Rule, r.Component, r.Severity, r.Rank, r.Title, r.Problem,
				r.Evidence, r.Remediation, r.TimeToImpact, r.DetectedAt, r.FirstSeen, r.LastSeen, r.Status)
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE findings SET severity = ?, severity_rank = ?, title = ?,
					problem = ?, evidence = ?, remediation = ?, time_to_impact = ?, detected_at = ?, last_seen = ?
				WHERE fingerprint = ?`,
				r.Severity, r.Rank, r.Title, r.Problem, r.Evidence, r.Remediation, r.TimeToImpact,
				r.DetectedAt, r.LastSeen, r.Fingerprint)
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// Finding returns the finding with fingerprint fp; see Store.
func (s *SQLite) Finding(ctx context.Context, fp string) (finding.Finding, error) {
	var r findingRow
	err := s.r.QueryRowContext(ctx, `SELECT `+findingCols+` FROM findings WHERE fingerprint = ?`, fp).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return finding.Finding{}, fmt.Errorf("get finding %q: %w", fp, ErrNotFound)
	}
	if err != nil {
		return finding.Finding{}, fmt.Errorf("get finding %q: %w", fp, err)
	}
	return r.finding()
}

// Findings returns the findings matching q; see Store.
func (s *SQLite) Findings(ctx context.Context, q FindingQuery) ([]finding.Finding, error) {
	tail, args, err := findingFilter(q, sqlitePH)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+findingCols+` FROM findings`+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query findings: %w", err)
	}
	defer func() { _ = rows.Close() }()
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
func (s *SQLite) SetFindingStatus(ctx context.Context, fp string, status finding.Status, note string) error {
	if err := checkStatus(fp, status); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE findings SET status = ?, note = ? WHERE fingerprint = ?`, string(status), note, fp)
	if err != nil {
		return fmt.Errorf("set finding status %q: %w", fp, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("set finding status %q: %w", fp, err)
	}
	if n == 0 {
		return fmt.Errorf("set finding status %q: %w", fp, ErrNotFound)
	}
	return nil
}

// PutScanReport records or replaces a scan report; see Store.
func (s *SQLite) PutScanReport(ctx context.Context, rep ScanReport) error {
	r, err := prepareScan(rep)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO scan_reports (id, selector, started_at, finished_at,
			boxes, analysed, findings, runs, by_severity, failed_shards, remediations, dispatch_errors,
			more_failed_shards, more_dispatch_errors)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
func (s *SQLite) ScanReport(ctx context.Context, id string) (ScanReport, error) {
	var r scanRow
	err := s.r.QueryRowContext(ctx, `SELECT `+scanCols+` FROM scan_reports WHERE id = ?`, id).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return ScanReport{}, fmt.Errorf("get scan report %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return ScanReport{}, fmt.Errorf("get scan report %q: %w", id, err)
	}
	return r.report()
}

// ScanReports returns the newest reports first; see Store.
func (s *SQLite) ScanReports(ctx context.Context, limit int) ([]ScanReport, error) {
	q := `SELECT ` + scanCols + ` FROM scan_reports ORDER BY started_at DESC NULLS LAST, id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.r.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query scan reports: %w", err)
	}
	defer func() { _ = rows.Close() }()
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
