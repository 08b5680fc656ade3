package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/workflows"
)

// latencyPoints is the length of each latency batch: 48 h at 5 minutes, the
// last latencyFaultPoints of them 8x the first.
const (
	latencyPoints      = 576
	latencyFaultPoints = 48
	latencyRatePerSec  = 100
	latencyWait        = 3 * time.Minute
)

// latencyBox is the id of the i-th box of the latency measure.
func latencyBox(i int) string { return fmt.Sprintf("lat-%04d", i) }

// writeLatencyBatch writes one box's batch: volume/vol0 read latency about
// 1 ms, then about 8 ms for the last 4 hours, ending at end.
func writeLatencyBatch(path, box string, end time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	defer f.Close()
	w := telemetry.NewWriter(f, telemetry.Format{Kind: telemetry.KindCSV})
	start := end.Add(-latencyPoints * step)
	for i := range latencyPoints {
		v := 1 + float64(i%5)*0.02
		if i >= latencyPoints-latencyFaultPoints {
			v = 8 + float64(i%3)*0.1
		}
		s := telemetry.Sample{Time: start.Add(time.Duration(i) * step), Box: box, Component: "volume/vol0", Metric: telemetry.VolumeReadLatencyMs, Value: v}
		if err := w.Write(s); err != nil {
			return err
		}
	}
	return w.Close()
}

// benchLatency measures, per batch, the time from starting IngestTelemetry to
// the remediation email about its finding being accepted by SMTP: an
// Temporal server (-server), workers wired as the worker binary does, a real
// SQLite store and the real email sender to an SMTP sink on loopback.
func benchLatency(ctx context.Context, o options, rep *report) error {
	dir, err := os.MkdirTemp("", "sanwatch-bench-latency-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	sink, err := startMailSink()
	if err != nil {
		return err
	}
	defer sink.Close()

	n := o.latencyBatches
	boxes := make([]fleet.Box, n)
	for i := range boxes {
		boxes[i] = fleet.Box{ID: latencyBox(i), Model: "SW-7000", Firmware: "4.3.1", Site: "bench", Owners: []string{fmt.Sprintf("owner-%04d@example.com", i)}}
	}
	inv, err := fleet.New("bench", nil, boxes)
	if err != nil {
		return err
	}
	cfg := benchConfig("latency", dir)
	if err := fleet.Write(cfg.Inventory, inv); err != nil {
		return err
	}
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.From = "127.0.0.1", sink.port, "sanwatch@bench.test"
	cfg.SMTP.RatePerSecond = latencyRatePerSec
	cfg.SMTP.Timeout = 10 * time.Second
	cfg.Remediation.Enabled = true

	end := time.Now().UTC().Truncate(step)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, latencyBox(i)+".csv")
		if err := writeLatencyBatch(paths[i], latencyBox(i), end); err != nil {
			return err
		}
	}

	tp, err := startServer(ctx, o, o.sectionServer())
	if err != nil {
		return err
	}
	defer tp.stop()
	acts, err := app.NewActivities(ctx, cfg, tp.c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer acts.Store.Close()
	stop, err := startWorkers(tp.c, cfg, acts)
	if err != nil {
		return err
	}
	defer stop()

	lat := make([]time.Duration, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range o.latencyParallel {
		wg.Go(func() {
			for i := range next {
				lat[i], errs[i] = landToEmail(ctx, tp.c, cfg.Queues.Main, sink, paths[i], latencyBox(i))
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	total := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
	}
	o.logf("latency: %d batches in %s, %d emails", n, total.Round(time.Millisecond), sink.count())

	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	rep.add(fmt.Sprintf("latency: batch landed -> email accepted by SMTP, p50 (%d batches, %d in parallel)", n, o.latencyParallel), ms(percentile(sorted, 50)), "-", "-")
	rep.add("latency: p99", ms(percentile(sorted, 99)), "p50", ratio(float64(percentile(sorted, 99)), float64(percentile(sorted, 50))))
	rep.add("latency: max", ms(sorted[len(sorted)-1]), "p50", ratio(float64(sorted[len(sorted)-1]), float64(percentile(sorted, 50))))
	rep.note("latency: each batch is one box, %d points of volume.read_latency_ms (1 ms, then 8 ms for the last %d); "+
		"measured from ExecuteWorkflow(IngestTelemetry) to the end of SMTP DATA of the first email with its X-Sanwatch-Fingerprint: "+
		"store batch -> AnalyzeBoxes child -> DispatchFindings -> Remediate (signal-with-start) -> SendEmail. "+
		"SQLite store, %s, smtp.rate_per_second = %d (default 5 would pace the emails), %d batches in %s.",
		latencyPoints, latencyFaultPoints, tp.describe(), latencyRatePerSec, n, total.Round(time.Millisecond))
	return nil
}

// landToEmail starts IngestTelemetry for one batch and waits for the email
// about its latency finding; it returns the time between the two.
func landToEmail(ctx context.Context, c client.Client, queue string, sink *mailSink, path, box string) (time.Duration, error) {
	id, err := activities.HashFile(path)
	if err != nil {
		return 0, err
	}
	fp := finding.Fingerprint(box, finding.RuleLatency, "volume/vol0")
	t0 := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.IngestWorkflowID(id), TaskQueue: queue},
		workflows.IngestTelemetry, workflows.IngestInput{Path: path, BatchID: id})
	if err != nil {
		return 0, fmt.Errorf("start ingest: %w", err)
	}
	at, err := sink.wait(fp, latencyWait)
	if err != nil {
		return 0, err
	}
	var res workflows.IngestResult
	if err := run.Get(ctx, &res); err != nil {
		return 0, fmt.Errorf("ingest %s: %w", filepath.Base(path), err)
	}
	if res.Analysis == nil || res.Analysis.Findings != 1 {
		return 0, fmt.Errorf("ingest %s: analysis %+v, want one finding", filepath.Base(path), res.Analysis)
	}
	return at.Sub(t0), nil
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(0, min(len(sorted), k)-1)]
}
