package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// check verifies that a scan analysed every box and found exactly the
// injected faults, then forgets the findings for the next scan.
func (s *scanSetup) check(name string, analysed, findings int) error {
	n, want := len(s.store.ids), s.store.expectedFaults()
	s.store.resetFindings()
	if analysed != n || findings != want {
		return fmt.Errorf("%s scan: analysed %d boxes with %d findings, want %d and %d", name, analysed, findings, n, want)
	}
	return nil
}

// timeInProcess times one in-process scan.
func (s *scanSetup) timeInProcess(ctx context.Context, o options) (time.Duration, error) {
	t0 := time.Now()
	tot, err := s.scanInProcess(ctx, o.shardSize, o.analysisConcurrency)
	if err != nil {
		return 0, fmt.Errorf("in-process scan: %w", err)
	}
	return time.Since(t0), s.check("in-process", tot.Analysed, tot.Findings)
}

// timeFleetScan times one FleetScan through the server c.
func (s *scanSetup) timeFleetScan(ctx context.Context, o options, c client.Client, id string) (time.Duration, error) {
	t0 := time.Now()
	run, err := fleetScan(ctx, c, s.cfg, id, s.window, o.shardSize, o.maxInFlight)
	if err != nil {
		return 0, err
	}
	var sr store.ScanReport
	if err := run.Get(ctx, &sr); err != nil {
		return 0, fmt.Errorf("fleet scan: %w", err)
	}
	return time.Since(t0), s.check("temporal", sr.Analysed, sr.Findings)
}

// benchScan compares a FleetScan through Temporal with the same AnalyzeShard
// calls made in-process, on the same synthetic fleet with the same shard size
// and parallelism. It first scans in-process with no server at all, then, for
// each server mode (-server), starts one server (a stopped temporaltest
// server leaves goroutines behind, so there is one per mode and section) and
// the workers, and alternates in-process scans next to them with FleetScans
// through them. The best time of each path is kept.
func benchScan(ctx context.Context, o options, rep *report) error {
	s, err := newScanSetup("scan", o.scanBoxes, fullShape, o.shardSize, o.maxInFlight, o.analysisConcurrency)
	if err != nil {
		return err
	}
	defer s.close()
	n := int64(o.scanBoxes)
	if err := s.warmUp(ctx); err != nil {
		return err
	}
	var base bestOf
	for range o.scanRounds {
		d, err := s.timeInProcess(ctx, o)
		if err != nil {
			return err
		}
		base.keep(d)
	}
	o.logf("scan: in-process %s", base)
	rep.add(fmt.Sprintf("scan: in-process AnalyzeShard, no Temporal (%s boxes x %d series x %d points)", num(n), fullShape.Series(), fullShape.Points),
		rate(n, base.best, "boxes"), "-", "1.00")
	var notes []string
	for _, mode := range o.scanServers() {
		note, err := s.compare(ctx, o, mode, base.best, rep)
		if err != nil {
			return err
		}
		notes = append(notes, note)
	}
	rep.note("scan: all paths run AnalyzeShard on the same synthetic store (%d series x %d points per box generated on the fly; the %d boxes with an injected fault are found, nothing else), "+
		"shard size %d, %d analyses at once (worker.analysis_concurrency = in-process goroutines), FleetScan max_in_flight %d, page size %d, remediation off. "+
		"Best of %d rounds each: in-process with no server %s; %s. "+
		"Each activity costs the server CPU, on the same %d CPUs as the analysis here, so bigger shards cost less orchestration (-shard-size; the configured default is 100).",
		fullShape.Series(), fullShape.Points, s.store.expectedFaults(), o.shardSize, o.analysisConcurrency, o.maxInFlight, scanPageSize, o.scanRounds,
		base, strings.Join(notes, "; "), runtime.NumCPU())
	return nil
}

// compare starts a server of the given mode and the workers, alternates
// in-process scans next to them with FleetScans through them, adds the rows
// of that mode against the in-process time in, and returns a note.
func (s *scanSetup) compare(ctx context.Context, o options, mode string, in time.Duration, rep *report) (string, error) {
	tp, err := startServer(ctx, o, mode)
	if err != nil {
		return "", err
	}
	defer tp.stop()
	s.acts.Client = tp.c
	defer func() { s.acts.Client = nil }()
	stop, err := startWorkers(tp.c, s.cfg, s.acts)
	if err != nil {
		return "", err
	}
	defer stop()
	goroutines := runtime.NumGoroutine()
	var co, tm bestOf
	var serverCPU time.Duration // the external server's CPU time during the FleetScans
	for round := 1; round <= o.scanRounds; round++ {
		d, err := s.timeInProcess(ctx, o)
		if err != nil {
			return "", err
		}
		co.keep(d)
		cpu0, _ := serverCPUTime(tp)
		if d, err = s.timeFleetScan(ctx, o, tp.c, fmt.Sprintf("bench-scan-%d", round)); err != nil {
			return "", err
		}
		cpu1, _ := serverCPUTime(tp)
		serverCPU += cpu1 - cpu0
		tm.keep(d)
		o.logf("scan: %s round %d: in-process next to the server %s, through temporal %s", mode, round, co.all[round-1], tm.all[round-1])
	}

	pct := func(x float64) string { return strconv.FormatFloat(x*100, 'f', 1, 64) + "%" }
	fi, fc, ft := in.Seconds(), co.best.Seconds(), tm.best.Seconds()
	name := tp.describe()
	shards := (o.scanBoxes + o.shardSize - 1) / o.shardSize
	if mode == serverExternal {
		rep.add("scan: same, in-process next to an idle external Temporal server (CLI dev server, own process) and idle workers", rate(int64(o.scanBoxes), co.best, "boxes"), "in-process", ratio(fi, fc))
		rep.add(fmt.Sprintf("scan: FleetScan through the external Temporal server (shard %d, %d in flight)", o.shardSize, o.maxInFlight), rate(int64(o.scanBoxes), tm.best, "boxes"), "in-process", ratio(fi, ft))
		rep.add("scan: orchestration overhead, external server (temporal time / in-process time - 1)", pct(ft/fi-1), "goal < 20%", "-")
		rep.add("scan: of which sharing the CPUs with the idle server process and workers (next-to-server time / in-process time - 1)", pct(fc/fi-1), "-", "-")
		return fmt.Sprintf("next to the external server %s, through it %s; the dev server process (%s, in-memory SQLite, --headless, log level error) used %s of CPU over the %d FleetScans, %s per shard activity",
			co, tm, filepath.Base(o.temporalCLI)+" server start-dev", serverCPU.Round(10*time.Millisecond), o.scanRounds,
			ms(serverCPU/time.Duration(max(1, o.scanRounds*shards)))), nil
	}
	rep.add("scan: same, in-process next to an idle in-process Temporal server", rate(int64(o.scanBoxes), co.best, "boxes"), "in-process", ratio(fi, fc))
	rep.add(fmt.Sprintf("scan: FleetScan through the in-process Temporal server (shard %d, %d in flight)", o.shardSize, o.maxInFlight), rate(int64(o.scanBoxes), tm.best, "boxes"), "in-process", ratio(fi, ft))
	rep.add("scan: orchestration overhead (temporal time / in-process time - 1)", pct(ft/fi-1), "goal < 20%", "-")
	rep.add("scan: of which sharing the process and CPUs with the server (next-to-server time / in-process time - 1)", pct(fc/fi-1), "-", "-")
	return fmt.Sprintf("next to the %s %s, through it %s (server and workers: %s goroutines in the bench process)", name, co, tm, num(int64(goroutines))), nil
}

// serverCPUTime returns the external server process's CPU time so far (0 in process).
func serverCPUTime(t *temporal) (time.Duration, error) {
	if t.pid() == 0 {
		return 0, nil
	}
	return processCPU(t.pid())
}

// bestOf keeps the best of several wall times and lists them all.
type bestOf struct {
	best time.Duration
	all  []string
}

func (b *bestOf) keep(d time.Duration) {
	if b.best == 0 || d < b.best {
		b.best = d
	}
	b.all = append(b.all, d.Round(time.Millisecond).String())
}

// String lists the times in the order they were taken.
func (b bestOf) String() string { return strings.Join(b.all, ", ") }

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
