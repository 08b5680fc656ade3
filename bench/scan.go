package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// scanPageSize is FleetScan's default page of box ids; the in-process scan
// lists boxes the same way.
const scanPageSize = 500

// scanSetup is what both scan paths share: the synthetic store, the
// configuration and the activities built from it.
type scanSetup struct {
	dir    string
	store  *synthStore
	cfg    *config.Config
	acts   *activities.Activities
	window time.Duration
}

// newScanSetup builds activities over a synthetic fleet of n boxes of shape
// s, configured as a worker would be from config.Default() with the given
// shard size, shards in flight and analysis concurrency; remediation is off.
func newScanSetup(section string, n int, s shape, shardSize, inFlight, concurrency int) (*scanSetup, error) {
	dir, err := os.MkdirTemp("", "sanwatch-bench-"+section+"-")
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	cfg := benchConfig(section, dir)
	cfg.Analysis.ShardSize = shardSize
	cfg.Analysis.MaxInFlight = inFlight
	cfg.Worker.AnalysisConcurrency = concurrency
	cfg.Remediation.Enabled = false
	eng, err := app.Engine(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	st := newSynthStore(n, s, time.Now().UTC().Truncate(step))
	acts := &activities.Activities{
		Store: st, Engine: eng, Ingest: app.IngestOptions(cfg), Settings: app.Settings(cfg),
		Remediation: activities.RemediationOptions{Disabled: true},
	}
	return &scanSetup{dir: dir, store: st, cfg: cfg, acts: acts, window: time.Duration(s.Points) * step}, nil
}

func (s *scanSetup) close() { os.RemoveAll(s.dir) }

// scanTotals is what a scan found.
type scanTotals struct {
	Analysed, Findings int
}

// scanInProcess does what FleetScan does with no Temporal at all: count and
// list the boxes page by page, cut pages into shards, run AnalyzeShard (the
// real activity method, in a test activity environment per goroutine) on
// workers goroutines, and save a scan report.
func (s *scanSetup) scanInProcess(ctx context.Context, shardSize, workers int) (scanTotals, error) {
	var tot scanTotals
	total, err := s.acts.CountBoxes(ctx, activities.Selector{})
	if err != nil {
		return tot, err
	}
	started := time.Now()
	shards := make(chan []string)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range workers {
		env := newActivityEnv(s.acts)
		wg.Go(func() {
			for shard := range shards {
				v, err := env.ExecuteActivity(s.acts.AnalyzeShard, activities.AnalyzeShardInput{Boxes: shard, Window: s.window})
				var sr activities.ShardResult
				if err == nil {
					err = v.Get(&sr)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("analyze shard %s: %w", shard[0], err)
				}
				tot.Analysed += sr.Analysed
				tot.Findings += len(sr.Findings)
				mu.Unlock()
			}
		})
	}
	after := ""
	for {
		page, err := s.acts.ListBoxes(ctx, activities.ListBoxesInput{After: after, Limit: scanPageSize})
		if err != nil {
			close(shards)
			wg.Wait()
			return tot, err
		}
		for i := 0; i < len(page); i += shardSize {
			shards <- page[i:min(i+shardSize, len(page))]
		}
		if len(page) > 0 {
			after = page[len(page)-1]
		}
		if len(page) < scanPageSize {
			break
		}
	}
	close(shards)
	wg.Wait()
	if firstErr != nil {
		return tot, firstErr
	}
	err = s.acts.SaveScanReport(ctx, store.ScanReport{
		ID: "inprocess", Selector: "all", StartedAt: started, FinishedAt: time.Now(),
		Boxes: total, Analysed: tot.Analysed, Findings: tot.Findings, Runs: 1,
	})
	return tot, err
}

// startWorkers starts the workers of every queue role exactly as the worker
// binary does (app.NewWorkers, which registers with app.Register).
func startWorkers(c client.Client, cfg *config.Config, acts *activities.Activities) (func(), error) {
	ws, err := app.NewWorkers(c, cfg, acts)
	if err != nil {
		return nil, err
	}
	var started []worker.Worker
	stop := func() {
		for _, w := range started {
			w.Stop()
		}
	}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start worker: %w", err)
		}
		started = append(started, w)
	}
	return stop, nil
}

// fleetScan starts FleetScan with remediation off and returns its run.
func fleetScan(ctx context.Context, c client.Client, cfg *config.Config, id string, window time.Duration, shardSize, inFlight int) (client.WorkflowRun, error) {
	off := false
	in := workflows.FleetScanInput{Window: window.String(), PageSize: scanPageSize, ShardSize: shardSize, MaxInFlight: inFlight, Remediate: &off}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: cfg.Queues.Main}, workflows.FleetScan, in)
	if err != nil {
		return nil, fmt.Errorf("start fleet scan: %w", err)
	}
	return run, nil
}

// benchScan compares a FleetScan through an in-process Temporal server with
// the same AnalyzeShard calls made in-process, on the same synthetic fleet
// with the same shard size and parallelism.
func benchScan(ctx context.Context, o options, rep *report) error {
	s, err := newScanSetup("scan", o.scanBoxes, fullShape, o.shardSize, o.maxInFlight, o.analysisConcurrency)
	if err != nil {
		return err
	}
	defer s.close()
	n := o.scanBoxes
	want := s.store.expectedFaults()

	if err := s.warmUp(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	in, err := s.scanInProcess(ctx, o.shardSize, o.analysisConcurrency)
	if err != nil {
		return fmt.Errorf("in-process scan: %w", err)
	}
	dIn := time.Since(t0)
	o.logf("scan: in-process %d boxes in %s", in.Analysed, dIn.Round(time.Millisecond))
	s.store.resetFindings()

	tp, err := startTemporal()
	if err != nil {
		return err
	}
	defer tp.stop()
	s.acts.Client = tp.c
	stop, err := startWorkers(tp.c, s.cfg, s.acts)
	if err != nil {
		return err
	}
	defer stop()
	t0 = time.Now()
	run, err := fleetScan(ctx, tp.c, s.cfg, "bench-scan", s.window, o.shardSize, o.maxInFlight)
	if err != nil {
		return err
	}
	var sr store.ScanReport
	if err := run.Get(ctx, &sr); err != nil {
		return fmt.Errorf("fleet scan: %w", err)
	}
	dT := time.Since(t0)
	o.logf("scan: temporal %d boxes in %s", sr.Analysed, dT.Round(time.Millisecond))

	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"in-process boxes analysed", in.Analysed, n}, {"in-process findings", in.Findings, want},
		{"temporal boxes analysed", sr.Analysed, n}, {"temporal findings", sr.Findings, want},
	} {
		if c.got != c.want {
			return fmt.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	inRate, tRate := float64(n)/dIn.Seconds(), float64(n)/dT.Seconds()
	overhead := dT.Seconds()/dIn.Seconds() - 1
	rep.add(fmt.Sprintf("scan: in-process AnalyzeShard, no Temporal (%s boxes x %d series x %d points)", num(int64(n)), fullShape.Series(), fullShape.Points),
		rate(int64(n), dIn, "boxes"), "-", "1.00")
	rep.add("scan: FleetScan through Temporal", rate(int64(n), dT, "boxes"), "in-process", ratio(tRate, inRate))
	rep.add("scan: orchestration overhead (temporal time / in-process time - 1)", strconv.FormatFloat(overhead*100, 'f', 1, 64)+"%", "goal < 20%", "-")
	rep.note("scan: both paths run AnalyzeShard on the same synthetic store (series generated on the fly), shard size %d, "+
		"%d analyses at once (worker.analysis_concurrency = in-process goroutines), FleetScan max_in_flight %d, page size %d, remediation off; "+
		"both found the %d injected faults (%s, %s) and nothing else.",
		o.shardSize, o.analysisConcurrency, o.maxInFlight, scanPageSize, want, dIn.Round(time.Millisecond), dT.Round(time.Millisecond))
	return nil
}

// warmUp analyses the first boxes once in-process (heap growth, page
// faults), then forgets their findings.
func (s *scanSetup) warmUp(ctx context.Context) error {
	env := newActivityEnv(s.acts)
	ids, err := s.acts.ListBoxes(ctx, activities.ListBoxesInput{Limit: 50})
	if err != nil {
		return err
	}
	if _, err := env.ExecuteActivity(s.acts.AnalyzeShard, activities.AnalyzeShardInput{Boxes: ids, Window: s.window}); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	s.store.resetFindings()
	return nil
}
