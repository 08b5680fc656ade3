package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// ingestSeries are the series of every box of the ingest batch: 40 per box.
var ingestSeries = func() [][2]string {
	var out [][2]string
	for v := range 8 {
		c := fmt.Sprintf("volume/vol%02d", v)
		out = append(out, [2]string{c, telemetry.VolumeReadLatencyMs}, [2]string{c, telemetry.VolumeWriteLatencyMs}, [2]string{c, telemetry.VolumeIOPS})
	}
	for d := range 6 {
		c := fmt.Sprintf("disk/%02d", d)
		out = append(out, [2]string{c, telemetry.DiskTemperatureC}, [2]string{c, telemetry.DiskReallocatedSectors})
	}
	for p := range 2 {
		c := fmt.Sprintf("pool/p%d", p)
		out = append(out, [2]string{c, telemetry.PoolUsedBytes}, [2]string{c, telemetry.PoolTotalBytes})
	}
	return out
}()

// writeIngestBatch writes a CSV batch of about n samples: boxes of 40 random
// walks with 5-minute points, the newest an hour before now. It returns the
// exact number of samples written and the file size.
func writeIngestBatch(path string, n int) (int64, int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, fmt.Errorf("create batch: %w", err)
	}
	defer f.Close()
	points := 288 // 24 h per series
	perBox := points * len(ingestSeries)
	boxes := max(1, (n+perBox-1)/perBox)
	if n < perBox {
		points = max(1, n/len(ingestSeries))
	}
	end := time.Now().UTC().Truncate(step).Add(-time.Hour)
	start := end.Add(-time.Duration(points) * step)
	r := rand.New(rand.NewPCG(1, 2))
	w := telemetry.NewWriter(f, telemetry.Format{Kind: telemetry.KindCSV})
	var written int64
	for b := range boxes {
		box := fmt.Sprintf("ingest-%05d", b)
		for _, s := range ingestSeries {
			v := 10 + 90*r.Float64()
			for i := range points {
				v = max(0, v+r.NormFloat64())
				if err := w.Write(telemetry.Sample{Time: start.Add(time.Duration(i) * step), Box: box, Component: s[0], Metric: s[1], Value: float64(int64(v*1000)) / 1000}); err != nil {
					return 0, 0, err
				}
				written++
			}
		}
	}
	if err := w.Close(); err != nil {
		return 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat batch: %w", err)
	}
	return written, st.Size(), nil
}

// readAndSplit is the raw baseline: read the file line by line and cut each
// line into its five fields, without parsing any of them.
func readAndSplit(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open batch: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), telemetry.MaxLineBytes+1)
	var lines, fieldBytes int64
	var fields [5][]byte
	for sc.Scan() {
		line := sc.Bytes()
		for i := range 4 {
			j := bytes.IndexByte(line, ',')
			if j < 0 {
				return 0, fmt.Errorf("split line %d: %d fields, want 5", lines+1, i+1)
			}
			fields[i], line = line[:j], line[j+1:]
		}
		fields[4] = line
		for _, f := range fields {
			fieldBytes += int64(len(f))
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read batch: %w", err)
	}
	if fieldBytes == 0 {
		return 0, errors.New("read batch: no data")
	}
	return lines - 1, nil // the header is not a sample
}

// parseOnly runs telemetry.Parse over the file, counting the samples emitted.
func parseOnly(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open batch: %w", err)
	}
	defer f.Close()
	var n int64
	res, err := telemetry.Parse(f, telemetry.Options{Name: filepath.Base(path)}, func(chunk []telemetry.Sample) error {
		n += int64(len(chunk))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("parse batch: %w", err)
	}
	if res.Rejected > 0 {
		return 0, fmt.Errorf("parse batch: %d lines rejected, first: %v", res.Rejected, res.Errors[0])
	}
	return n, nil
}

// storeBatch runs the real StoreBatch activity (in a test activity
// environment, no server) into st and returns the samples it accepted.
func storeBatch(st store.Store, dir, path string) (int64, error) {
	acts := &activities.Activities{
		Store: st,
		Ingest: activities.IngestOptions{
			Roots: []string{dir}, MaxRejectRatio: 0.5, MaxFutureSkew: time.Hour, ChunkRows: 5000, MaxErrors: 20,
		},
	}
	env := newActivityEnv(acts)
	v, err := env.ExecuteActivity(acts.StoreBatch, activities.StoreBatchInput{Path: path})
	if err != nil {
		return 0, fmt.Errorf("store batch: %w", err)
	}
	var sum activities.BatchSummary
	if err := v.Get(&sum); err != nil {
		return 0, fmt.Errorf("decode batch summary: %w", err)
	}
	if sum.AlreadyStored {
		return 0, errors.New("store batch: the fresh store already had the batch")
	}
	return sum.Accepted, nil
}

// benchIngest measures ingest: raw read-and-split, Parse, StoreBatch into
// SQLite and into PostgreSQL, each in samples per second and as a ratio to
// the raw speed.
func benchIngest(ctx context.Context, o options, rep *report) error {
	dir, err := os.MkdirTemp("", "sanwatch-bench-ingest-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "batch.csv")
	n, size, err := writeIngestBatch(path, o.ingestSamples)
	if err != nil {
		return err
	}
	o.logf("ingest: batch of %s samples, %s", num(n), mib(size))

	measure := func(name string, f func() (int64, error)) (time.Duration, error) {
		t0 := time.Now()
		got, err := f()
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if got != n {
			return 0, fmt.Errorf("%s: %d samples, want %d", name, got, n)
		}
		o.logf("ingest: %s %s", name, d.Round(time.Millisecond))
		return d, nil
	}
	raw, err := measure("read and split", func() (int64, error) { return readAndSplit(path) })
	if err != nil {
		return err
	}
	parse, err := measure("parse", func() (int64, error) { return parseOnly(path) })
	if err != nil {
		return err
	}
	sqlite, err := measure("StoreBatch sqlite", func() (int64, error) {
		st, err := store.OpenSQLite(filepath.Join(dir, "data", "sanwatch.db"))
		if err != nil {
			return 0, err
		}
		defer st.Close()
		return storeBatch(st, dir, path)
	})
	if err != nil {
		return err
	}
	pg, err := measure("StoreBatch postgres", func() (int64, error) { return storeBatchPostgres(ctx, o.postgresDSN, dir, path) })
	if err != nil && !errors.Is(err, errSkipped) {
		return err
	}

	rawRate := float64(n) / raw.Seconds()
	rel := func(d time.Duration) string { return ratio(float64(n)/d.Seconds(), rawRate) }
	base := "read and split"
	rep.add(fmt.Sprintf("ingest: read and split (%s samples, %s CSV)", num(n), mib(size)), rate(n, raw, "samples"), "-", "1.00")
	rep.add("ingest: telemetry.Parse", rate(n, parse, "samples"), base, rel(parse))
	rep.add("ingest: StoreBatch -> SQLite", rate(n, sqlite, "samples"), base, rel(sqlite))
	if err != nil {
		rep.add("ingest: StoreBatch -> PostgreSQL", "skipped", base, "-")
		rep.note("ingest: PostgreSQL skipped: %v", err)
	} else {
		rep.add("ingest: StoreBatch -> PostgreSQL", rate(n, pg, "samples"), base, rel(pg))
	}
	rep.note("ingest: StoreBatch is the real activity called in a Temporal test activity environment (no server); " +
		"it reads the file twice (validate + hash, then store in chunks of 5,000 rows), Parse and read-and-split once; the file is in the page cache.")
	return nil
}

// storeBatchPostgres runs StoreBatch into a fresh schema of the PostgreSQL at
// dsn, dropped afterwards. It returns errSkipped (wrapped) when PostgreSQL is
// not reachable.
func storeBatchPostgres(ctx context.Context, dsn, dir, path string) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("%w: PostgreSQL not reachable at SANWATCH_TEST_POSTGRES_DSN or %s: %v", errSkipped, storetest.DefaultPostgresDSN, err)
	}
	defer admin.Close(context.Background())
	schema := fmt.Sprintf("sanwatch_bench_%016x", rand.Uint64())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return 0, fmt.Errorf("create schema %s: %w", schema, err)
	}
	defer func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
	st, err := store.OpenPostgres(ctx, storetest.WithSearchPath(dsn, schema))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return storeBatch(st, dir, path)
}
