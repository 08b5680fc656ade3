package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// benchTSDB compares the samples in SQLite with the samples in a real
// VictoriaMetrics: ingest samples/s, a scan's window reads (boxes/s), and
// bytes per sample on disk, in the same run on the same samples.
func benchTSDB(ctx context.Context, o options, rep *report) error {
	boxes, series, points := 200, 60, 288 // a day of 5-minute samples of 60 series per box
	if o.quick {
		boxes, points = 20, 48
	}
	bin, err := exec.LookPath(tsdbtest.Binary())
	if err != nil {
		return fmt.Errorf("VictoriaMetrics is not installed (apt-get install -y victoria-metrics): %w", err)
	}
	dir, err := os.MkdirTemp("", "sanwatch-bench-tsdb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	vm, err := tsdbtest.Launch(bin, filepath.Join(dir, "vm"))
	if err != nil {
		return err
	}
	defer vm.Stop()
	eng, err := tsdb.Open(tsdb.Options{URL: vm.URL, MaxPoints: 10_000_000})
	if err != nil {
		return err
	}
	defer eng.Close()
	sqlPath := filepath.Join(dir, "sanwatch.db")
	sq, err := store.OpenSQLite(sqlPath)
	if err != nil {
		return err
	}
	defer sq.Close()

	end := time.Now().Truncate(time.Minute)
	start := end.Add(-time.Duration(points) * 5 * time.Minute)
	prefix := "tsdb"
	box := func(i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }
	// One chunk per box: its day of samples, as one batch carries it.
	chunk := func(b int) []telemetry.Sample {
		out := make([]telemetry.Sample, 0, series*points)
		for s := range series {
			metric := telemetry.Catalogue[s%len(telemetry.Catalogue)]
			comp := fmt.Sprintf("disk/%d", s/len(telemetry.Catalogue))
			for p := range points {
				out = append(out, telemetry.Sample{Time: start.Add(time.Duration(p) * 5 * time.Minute), Box: box(b),
					Component: comp, Metric: metric, Value: float64((b + s + p) % 97)})
			}
		}
		return out
	}
	total := int64(boxes * series * points)
	// ingestThen appends each box's day in 5,000-sample writes, as
	// StoreBatch does, then calls afterBatch (when not nil) once a batch.
	ingestThen := func(append func(context.Context, []telemetry.Sample) (int64, error), afterBatch func(context.Context) error) (time.Duration, error) {
		t0 := time.Now()
		for b := range boxes {
			c := chunk(b)
			for i := 0; i < len(c); i += 5000 {
				if _, err := append(ctx, c[i:min(i+5000, len(c))]); err != nil {
					return 0, err
				}
			}
			if afterBatch != nil {
				if err := afterBatch(ctx); err != nil {
					return 0, err
				}
			}
		}
		return time.Since(t0), nil
	}
	ingest := func(append func(context.Context, []telemetry.Sample) (int64, error)) (time.Duration, error) {
		return ingestThen(append, nil)
	}
	sqlDur, err := ingest(sq.AppendSamples)
	if err != nil {
		return fmt.Errorf("sqlite ingest: %w", err)
	}
	vmDur, err := ingest(eng.AppendSamples)
	if err != nil {
		return fmt.Errorf("victoriametrics ingest: %w", err)
	}
	if err := eng.Flush(ctx); err != nil {
		return err
	}
	sqlRate, vmRate := float64(total)/sqlDur.Seconds(), float64(total)/vmDur.Seconds()
	rep.add("tsdb: ingest into VictoriaMetrics (import API, 5,000-sample requests)", fmt.Sprintf("%.0f samples/s", vmRate),
		fmt.Sprintf("SQLite %.0f samples/s", sqlRate), fmt.Sprintf("%.2f×", vmRate/sqlRate))

	read := func(window func(context.Context, string, time.Time, time.Time) ([]telemetry.Sample, error)) (float64, error) {
		t0 := time.Now()
		for b := range boxes {
			w, err := window(ctx, box(b), start, end.Add(time.Minute))
			if err != nil {
				return 0, err
			}
			if len(w) != series*points {
				return 0, fmt.Errorf("window of %s: %d samples, want %d", box(b), len(w), series*points)
			}
		}
		return float64(boxes) / time.Since(t0).Seconds(), nil
	}
	sqlScan, err := read(sq.Window)
	if err != nil {
		return fmt.Errorf("sqlite window: %w", err)
	}
	vmScan, err := read(eng.Window)
	if err != nil {
		return fmt.Errorf("victoriametrics window: %w", err)
	}
	rep.add(fmt.Sprintf("tsdb: scan window reads (%d samples a box)", series*points), fmt.Sprintf("%.1f boxes/s from VictoriaMetrics", vmScan),
		fmt.Sprintf("%.1f boxes/s from SQLite", sqlScan), fmt.Sprintf("%.2f×", vmScan/sqlScan))

	sqlBytes, err := dirSize(dir, func(p string) bool { return filepath.Dir(p) == dir })
	if err != nil {
		return err
	}
	vmBytes, err := dirSize(vm.DataDir, func(string) bool { return true })
	if err != nil {
		return err
	}
	rep.add("tsdb: bytes per sample on disk", fmt.Sprintf("%.1f B (VictoriaMetrics data dir after a flush)", float64(vmBytes)/float64(total)),
		fmt.Sprintf("%.1f B (SQLite file + WAL)", float64(sqlBytes)/float64(total)), fmt.Sprintf("%.2f×", float64(sqlBytes)/float64(vmBytes)))
	// Again with samples.flush_writes (the default): a batch searchable
	// once StoreBatch ends, as the analysis after it needs; one flush a
	// batch (StoreBatch's SampleFlusher). On other boxes.
	prefix = "flush"
	flushDur, err := ingestThen(eng.AppendSamples, eng.Flush)
	if err != nil {
		return fmt.Errorf("victoriametrics ingest with flush: %w", err)
	}
	flushRate := float64(total) / flushDur.Seconds()
	rep.add("tsdb: ingest into VictoriaMetrics, samples.flush_writes: true (the default: one flush a batch)", fmt.Sprintf("%.0f samples/s", flushRate),
		fmt.Sprintf("SQLite %.0f samples/s", sqlRate), fmt.Sprintf("%.2f×", flushRate/sqlRate))
	rep.note("tsdb: %d boxes × %d series × %d points = %d samples, each box's day as one batch; VictoriaMetrics %s on loopback, started by the bench; "+
		"its size is measured right after /internal/force_flush, before its background merges shrink it further.", boxes, series, points, total, bin)
	return nil
}

// dirSize sums the sizes of the regular files under root that keep says to count.
func dirSize(root string, keep func(path string) bool) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && keep(p) {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
