package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// benchLayout compares the samples layout of schemas 8 and 9 (series ids;
// runs of a series as compressed chunks, single samples as rows keyed by
// series and time, sealed into chunks by day) with the old one (one row per sample with its
// strings, two indexes; bench/legacy.go) on the same batch, in the same
// run: samples/s appended in the chunks StoreBatch uses, the StoreBatch
// activity end to end, bytes per sample on disk, and the time to read every
// box's window back; then the same samples appended as posts (one per
// series per append: rows), and sealed. SQLite and PostgreSQL each.
func benchLayout(ctx context.Context, o options, rep *report) error {
	dir, err := os.MkdirTemp("", "sanwatch-bench-layout-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "batch.csv")
	n, _, err := writeIngestBatch(path, o.ingestSamples)
	if err != nil {
		return err
	}
	chunks, boxes, err := readChunks(path)
	if err != nil {
		return err
	}
	o.logf("layout: %s samples of %d boxes in %d chunks", num(n), len(boxes), len(chunks))
	l := layoutRun{o: o, dir: dir, batch: path, n: n, chunks: chunks, boxes: boxes, posts: byTime(chunks)}

	sqliteNew := func(name string) (store.Store, func(context.Context) (int64, error), error) {
		p := filepath.Join(dir, name, "sanwatch.db")
		st, err := store.OpenSQLite(p)
		if err != nil {
			return nil, nil, err
		}
		return st, func(ctx context.Context) (int64, error) { return sqlitePathBytes(ctx, p) }, nil
	}
	sqliteOld := func(name string) (store.Store, func(context.Context) (int64, error), error) {
		base, err := store.OpenSQLite(filepath.Join(dir, name, "base.db"))
		if err != nil {
			return nil, nil, err
		}
		st, err := openLegacySQLite(ctx, filepath.Join(dir, name, "samples.db"), base)
		if err != nil {
			_ = base.Close()
			return nil, nil, err
		}
		return closeBoth{st, base}, st.bytes, nil
	}
	if err := l.compare(ctx, rep, "SQLite", sqliteOld, sqliteNew); err != nil {
		return err
	}

	if err := pingPostgres(ctx, o.postgresDSN); err != nil {
		rep.add("layout: PostgreSQL", "skipped", "-", "-")
		rep.note("layout: PostgreSQL skipped: %v", err)
		return nil
	}
	var drops []func()
	defer func() {
		for _, d := range drops {
			d()
		}
	}()
	schema := func() (string, error) {
		dsn, drop, err := benchSchema(ctx, o.postgresDSN)
		if err == nil {
			drops = append(drops, drop)
		}
		return dsn, err
	}
	pgNew := func(string) (store.Store, func(context.Context) (int64, error), error) {
		dsn, err := schema()
		if err != nil {
			return nil, nil, err
		}
		st, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		return st, func(ctx context.Context) (int64, error) {
			return postgresDSNBytes(ctx, dsn, "samples", "series", "sample_chunks")
		}, nil
	}
	pgOld := func(string) (store.Store, func(context.Context) (int64, error), error) {
		baseDSN, err := schema()
		if err != nil {
			return nil, nil, err
		}
		base, err := store.OpenPostgres(ctx, baseDSN)
		if err != nil {
			return nil, nil, err
		}
		dsn, err := schema()
		if err != nil {
			_ = base.Close()
			return nil, nil, err
		}
		st, err := openLegacyPostgres(ctx, dsn, base)
		if err != nil {
			_ = base.Close()
			return nil, nil, err
		}
		return closeBoth{st, base}, st.bytes, nil
	}
	return l.compare(ctx, rep, "PostgreSQL", pgOld, pgNew)
}

// closeBoth is a legacy store whose Close also closes the base store of
// its other tables.
type closeBoth struct {
	store.Store
	base store.Store
}

func (c closeBoth) Close() error { return errors.Join(c.Store.Close(), c.base.Close()) }

// layoutRun is the batch both layouts get.
type layoutRun struct {
	o      options
	dir    string
	batch  string // the CSV file
	n      int64
	chunks [][]telemetry.Sample // the batch parsed, in StoreBatch's chunks
	boxes  []string
	// posts are the same samples as boxes posting every 5 minutes send
	// them: one append per time, one sample of each series in it.
	posts [][]telemetry.Sample
}

// byTime regroups the batch by sample time, in time order.
func byTime(chunks [][]telemetry.Sample) [][]telemetry.Sample {
	at := map[time.Time][]telemetry.Sample{}
	for _, c := range chunks {
		for _, s := range c {
			at[s.Time] = append(at[s.Time], s)
		}
	}
	times := make([]time.Time, 0, len(at))
	for t := range at {
		times = append(times, t)
	}
	slices.SortFunc(times, time.Time.Compare)
	out := make([][]telemetry.Sample, len(times))
	for i, t := range times {
		out[i] = at[t]
	}
	return out
}

// opener opens a fresh store in its own files (named by name), and returns
// how to measure the bytes its samples take.
type opener func(name string) (store.Store, func(context.Context) (int64, error), error)

// compare measures both layouts of one database and adds the rows.
func (l layoutRun) compare(ctx context.Context, rep *report, db string, old, lean opener) error {
	type result struct {
		appendTime, batchTime, window time.Duration
		bytes                         int64
	}
	measure := func(name string, open opener) (result, error) {
		var r result
		st, size, err := open(name + "-append")
		if err != nil {
			return r, err
		}
		defer st.Close()
		t0 := time.Now()
		for _, c := range l.chunks {
			if _, err := st.AppendSamples(ctx, c); err != nil {
				return r, fmt.Errorf("%s %s: %w", db, name, err)
			}
		}
		r.appendTime = time.Since(t0)
		if r.bytes, err = size(ctx); err != nil {
			return r, fmt.Errorf("%s %s: %w", db, name, err)
		}
		if r.window, err = l.readWindows(ctx, st); err != nil {
			return r, fmt.Errorf("%s %s: %w", db, name, err)
		}
		st2, _, err := open(name + "-batch")
		if err != nil {
			return r, err
		}
		defer st2.Close()
		t0 = time.Now()
		got, err := storeBatch(st2, l.dir, l.batch)
		r.batchTime = time.Since(t0)
		if err != nil {
			return r, fmt.Errorf("%s %s: %w", db, name, err)
		}
		if got != l.n {
			return r, fmt.Errorf("%s %s: StoreBatch stored %d samples, want %d", db, name, got, l.n)
		}
		l.o.logf("layout: %s %s: append %s, StoreBatch %s, %s, windows %s", db, name,
			r.appendTime.Round(time.Millisecond), r.batchTime.Round(time.Millisecond), mib(r.bytes), r.window.Round(time.Millisecond))
		return r, nil
	}
	// posts appends the samples as posts. On the lean layout it does so
	// for postRounds days in a row, sealing and compacting after each as
	// the nightly retention run does, so that rows freed by a seal are
	// reused by the next day's (the steady state: about a day of rows
	// beside the chunks of every other day).
	type postsResult struct {
		appendTime, sealTime, window time.Duration
		bytes, sealedBytes           int64
		rounds                       int
	}
	const postRounds = 3
	posts := func(name string, open opener) (postsResult, error) {
		var r postsResult
		st, size, err := open(name + "-posts")
		if err != nil {
			return r, err
		}
		defer st.Close()
		sealer, seals := st.(store.Sealer)
		r.rounds = 1
		if seals {
			r.rounds = postRounds
		}
		for round := range r.rounds {
			shift := -time.Duration(r.rounds-1-round) * 24 * time.Hour // oldest day first
			t0 := time.Now()
			for _, p := range l.posts {
				if shift != 0 {
					p = shifted(p, shift)
				}
				if _, err := st.AppendSamples(ctx, p); err != nil {
					return r, fmt.Errorf("%s %s posts: %w", db, name, err)
				}
			}
			r.appendTime += time.Since(t0)
			if round == 0 {
				if r.bytes, err = size(ctx); err != nil {
					return r, fmt.Errorf("%s %s posts: %w", db, name, err)
				}
			}
			if !seals {
				return r, nil
			}
			t0 = time.Now()
			for after := int64(0); ; {
				res, err := sealer.SealSamples(ctx, time.Now().Add(48*time.Hour), after, 500)
				if err != nil {
					return r, fmt.Errorf("%s %s seal: %w", db, name, err)
				}
				if after = res.Next; !res.More {
					break
				}
			}
			if err := st.Compact(ctx); err != nil {
				return r, fmt.Errorf("%s %s seal: %w", db, name, err)
			}
			r.sealTime += time.Since(t0)
		}
		if r.sealedBytes, err = size(ctx); err != nil {
			return r, fmt.Errorf("%s %s seal: %w", db, name, err)
		}
		if r.window, err = l.readWindowsOf(ctx, st, int64(r.rounds)*l.n); err != nil {
			return r, fmt.Errorf("%s %s sealed: %w", db, name, err)
		}
		l.o.logf("layout: %s %s posts: %d days, append %s, first day %s; sealed in %s, %s, windows %s", db, name, r.rounds,
			r.appendTime.Round(time.Millisecond), mib(r.bytes), r.sealTime.Round(time.Millisecond), mib(r.sealedBytes), r.window.Round(time.Millisecond))
		return r, nil
	}
	o, err := measure("old", old)
	if err != nil {
		return err
	}
	s, err := measure("series", lean)
	if err != nil {
		return err
	}
	op, err := posts("old", old)
	if err != nil {
		return err
	}
	sp, err := posts("series", lean)
	if err != nil {
		return err
	}
	speed := func(d time.Duration) float64 { return float64(l.n) / d.Seconds() }
	perSample := func(b int64) string {
		return strconv.FormatFloat(float64(b)/float64(l.n), 'f', 1, 64) + " bytes/sample"
	}
	perWindow := func(d time.Duration) time.Duration { return d / time.Duration(len(l.boxes)) }
	p := "layout: " + db + " "
	rep.add(p+"AppendSamples, old layout ("+num(l.n)+" samples, chunks of 5,000)", rate(l.n, o.appendTime, "samples"), "-", "1.00")
	rep.add(p+"AppendSamples, series layout", rate(l.n, s.appendTime, "samples"), "old layout", ratio(speed(s.appendTime), speed(o.appendTime)))
	rep.add(p+"StoreBatch, old layout", rate(l.n, o.batchTime, "samples"), "-", "1.00")
	rep.add(p+"StoreBatch, series layout", rate(l.n, s.batchTime, "samples"), "old layout", ratio(speed(s.batchTime), speed(o.batchTime)))
	rep.add(p+"on disk, old layout", perSample(o.bytes), "-", "1.00")
	rep.add(p+"on disk, series layout", perSample(s.bytes), "old layout", ratio(float64(s.bytes), float64(o.bytes)))
	rep.add(p+"window read (one box's day), old layout", ms(perWindow(o.window)), "-", "1.00")
	rep.add(p+"window read (one box's day), series layout", ms(perWindow(s.window)), "old layout", ratio(float64(s.window), float64(o.window)))
	posted := "(" + num(int64(len(l.posts))) + " appends of one sample per series)"
	all := l.n * int64(sp.rounds)
	perSampleOf := func(b, n int64) string {
		return strconv.FormatFloat(float64(b)/float64(n), 'f', 1, 64) + " bytes/sample"
	}
	rep.add(p+"AppendSamples as posts, old layout "+posted, rate(l.n, op.appendTime, "samples"), "-", "1.00")
	rep.add(p+"AppendSamples as posts, series layout (rows)", rate(all, sp.appendTime, "samples"), "old layout",
		ratio(float64(all)/sp.appendTime.Seconds(), speed(op.appendTime)))
	rep.add(p+"on disk as posts, old layout", perSample(op.bytes), "-", "1.00")
	rep.add(p+"on disk as posts, series layout, one day before sealing", perSample(sp.bytes), "old layout", ratio(float64(sp.bytes), float64(op.bytes)))
	rep.add(p+"SealSamples (+ Compact) of the posts", rate(all, sp.sealTime, "samples"), "-", "-")
	rep.add(p+"on disk as posts, series layout, "+strconv.Itoa(sp.rounds)+" days each sealed the night after", perSampleOf(sp.sealedBytes, all), "old layout",
		ratio(float64(sp.sealedBytes)/float64(all), float64(op.bytes)/float64(l.n)))
	rep.add(p+"window read (one box's "+strconv.Itoa(sp.rounds)+" days), sealed", ms(perWindow(sp.window)), "-", "-")
	return nil
}

// shifted returns a copy of samples moved by d.
func shifted(samples []telemetry.Sample, d time.Duration) []telemetry.Sample {
	out := make([]telemetry.Sample, len(samples))
	for i, s := range samples {
		s.Time = s.Time.Add(d)
		out[i] = s
	}
	return out
}

// readWindows reads every box's window twice and returns the time of the
// second pass (the first warms the cache, as a scan's reads would find it).
func (l layoutRun) readWindows(ctx context.Context, st store.Store) (time.Duration, error) {
	return l.readWindowsOf(ctx, st, l.n)
}

// readWindowsOf is readWindows of a store holding want samples.
func (l layoutRun) readWindowsOf(ctx context.Context, st store.Store, want int64) (time.Duration, error) {
	from, to := time.Now().AddDate(0, 0, -30), time.Now().AddDate(0, 0, 1)
	var d time.Duration
	for range 2 {
		t0 := time.Now()
		var got int64
		for _, b := range l.boxes {
			w, err := st.Window(ctx, b, from, to)
			if err != nil {
				return 0, err
			}
			got += int64(len(w))
		}
		d = time.Since(t0)
		if got != want {
			return 0, fmt.Errorf("windows read %d samples, want %d", got, want)
		}
	}
	return d, nil
}

// readChunks parses the batch into chunks of 5,000 samples, as StoreBatch
// stores it, and lists its boxes.
func readChunks(path string) ([][]telemetry.Sample, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open batch: %w", err)
	}
	defer f.Close()
	var chunks [][]telemetry.Sample
	var boxes []string
	seen := map[string]bool{}
	_, err = telemetry.Parse(f, telemetry.Options{Name: filepath.Base(path), ChunkSize: 5000}, func(c []telemetry.Sample) error {
		chunks = append(chunks, append([]telemetry.Sample(nil), c...))
		for _, s := range c {
			if !seen[s.Box] {
				seen[s.Box] = true
				boxes = append(boxes, s.Box)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("parse batch: %w", err)
	}
	return chunks, boxes, nil
}

// sqliteFileBytes checkpoints the WAL of the database at path into it and
// returns the file's size.
func sqliteFileBytes(ctx context.Context, db *sql.DB, path string) (int64, error) {
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return fi.Size(), nil
}

// sqlitePathBytes is sqliteFileBytes through a connection of its own.
func sqlitePathBytes(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return sqliteFileBytes(ctx, db, path)
}

// postgresTableBytes returns the bytes of tables with their indexes (and
// TOAST), after ANALYZE (which the planner of the window reads needs).
func postgresTableBytes(ctx context.Context, pool *pgxpool.Pool, tables ...string) (int64, error) {
	var total int64
	for _, t := range tables {
		if _, err := pool.Exec(ctx, "ANALYZE "+t); err != nil {
			return 0, fmt.Errorf("analyze %s: %w", t, err)
		}
		var n int64
		if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass)`, t).Scan(&n); err != nil {
			return 0, fmt.Errorf("size of %s: %w", t, err)
		}
		total += n
	}
	return total, nil
}

// postgresDSNBytes is postgresTableBytes through a pool of its own.
func postgresDSNBytes(ctx context.Context, dsn string, tables ...string) (int64, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	return postgresTableBytes(ctx, pool, tables...)
}

// pingPostgres says whether PostgreSQL answers at dsn.
func pingPostgres(ctx context.Context, dsn string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return fmt.Errorf("PostgreSQL not reachable at %s: %w", dsn, err)
	}
	return c.Close(ctx)
}

// benchSchema creates a fresh schema and returns a DSN using it and a
// function that drops it.
func benchSchema(ctx context.Context, dsn string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.Background())
	schema := fmt.Sprintf("sanwatch_bench_%016x", rand.Uint64())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	}
	return storetest.WithSearchPath(dsn, schema), drop, nil
}
