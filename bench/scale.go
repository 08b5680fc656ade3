package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// sampleEvery is how often the scale scan samples memory and progress.
const sampleEvery = 250 * time.Millisecond

// memSample is one sample taken while the scale scan runs.
type memSample struct {
	done, total int
	heapInUse   uint64
}

// sampler samples Go heap in use and the scan's progress query.
type sampler struct {
	c  client.Client
	id string

	mu      sync.Mutex
	samples []memSample
}

// run samples every sampleEvery until ctx is done.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var p workflows.ScanProgress
		v, err := s.c.QueryWorkflow(ctx, s.id, "", workflows.QueryProgress)
		if err != nil || v.Get(&p) != nil || p.Total == 0 {
			continue // between runs (continue-as-new) or not started yet
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.mu.Lock()
		s.samples = append(s.samples, memSample{done: p.Done, total: p.Total, heapInUse: ms.HeapInuse})
		s.mu.Unlock()
	}
}

// at returns the first sample at or past pct percent of the scan.
func (s *sampler) at(pct int) (memSample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.samples {
		if m.done*100 >= pct*m.total {
			return m, true
		}
	}
	return memSample{}, false
}

// runHistory is the history size of one run of a workflow.
type runHistory struct {
	runID  string
	events int
}

// historyRuns walks a workflow's continue-as-new chain from its latest run
// back to its first, counting each run's history events.
func historyRuns(ctx context.Context, c client.Client, id string) ([]runHistory, error) {
	var runs []runHistory
	runID := ""
	for {
		it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		rh := runHistory{runID: runID}
		prev := ""
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("read history of %s run %q: %w", id, runID, err)
			}
			if rh.events == 0 {
				prev = e.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
			}
			rh.events++
		}
		runs = append([]runHistory{rh}, runs...)
		if prev == "" {
			return runs, nil
		}
		runID = prev
	}
}

// benchScale runs a FleetScan of many light boxes through a Temporal server
// (-server) and reports the history size of every run, the peak RSS
// and the Go heap in use along the scan.
func benchScale(ctx context.Context, o options, rep *report) error {
	rssReset := resetPeakRSS()
	s, err := newScanSetup("scale", o.scaleBoxes, lightShape, o.scaleShardSize, o.scaleMaxInFlight, o.analysisConcurrency)
	if err != nil {
		return err
	}
	defer s.close()
	n := o.scaleBoxes
	tp, err := startServer(ctx, o, o.sectionServer())
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

	const id = "bench-scale"
	smp := &sampler{c: tp.c, id: id}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { smp.run(sctx) })
	t0 := time.Now()
	run, err := fleetScan(ctx, tp.c, s.cfg, id, s.window, o.scaleShardSize, o.scaleMaxInFlight)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	var sr store.ScanReport
	err = run.Get(ctx, &sr)
	d := time.Since(t0)
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("fleet scan: %w", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	end := memSample{done: sr.Analysed, total: sr.Boxes, heapInUse: ms.HeapInuse}
	o.logf("scale: %d boxes in %s, %d runs", sr.Analysed, d.Round(time.Millisecond), sr.Runs)
	if sr.Analysed != n || sr.Findings != s.store.expectedFaults() {
		return fmt.Errorf("fleet scan: analysed %d boxes with %d findings, want %d and %d", sr.Analysed, sr.Findings, n, s.store.expectedFaults())
	}

	runs, err := historyRuns(ctx, tp.c, id)
	if err != nil {
		return err
	}
	maxEvents, total := 0, 0
	for _, r := range runs {
		maxEvents = max(maxEvents, r.events)
		total += r.events
	}
	if len(runs) != sr.Runs {
		return fmt.Errorf("history: %d runs in the continue-as-new chain, the scan report says %d", len(runs), sr.Runs)
	}
	peak, err := procStatus("VmHWM")
	if err != nil {
		return err
	}

	rep.add(fmt.Sprintf("scale: FleetScan of %s boxes (%d series x %d points, shard %d) through the %s", num(int64(n)), lightShape.Series(), lightShape.Points, o.scaleShardSize, tp.describe()),
		rate(int64(n), d, "boxes"), "-", "-")
	rep.add("scale: workflow runs (continue-as-new)", num(int64(len(runs))), "-", "-")
	rep.add("scale: max history events per run", num(int64(maxEvents)), "limit 10,000", ratio(float64(maxEvents), 10_000))
	where := "the bench process"
	if tp.pid() == 0 {
		where += ", includes the in-process Temporal server"
	}
	rep.add("scale: peak RSS (VmHWM of "+where+")", mib(peak), "-", "-")
	if pid := tp.pid(); pid != 0 {
		sp, err := procStatusOf(strconv.Itoa(pid), "VmHWM")
		if err != nil {
			return err
		}
		rep.add("scale: peak RSS of the external Temporal server process (VmHWM, whole life)", mib(sp), "-", "-")
	}
	var base float64
	for _, pct := range []int{25, 50, 75, 100} {
		m, ok := smp.at(pct)
		if pct == 100 || !ok {
			m = end // completion, or the scan was faster than one sample
		}
		if base == 0 {
			base = float64(m.heapInUse)
		}
		rep.add(fmt.Sprintf("scale: Go heap in use at %d%% (%s of %s boxes done)", pct, num(int64(m.done)), num(int64(m.total))),
			mib(int64(m.heapInUse)), "at 25%", ratio(float64(m.heapInUse), base))
	}
	rep.note("scale: shard size %d, max in flight %d, analysis concurrency %d, page size %d; %s history events in all; "+
		"heap in use is the bench process's, sampled every %s with the progress query (%d samples)%s.",
		o.scaleShardSize, o.scaleMaxInFlight, o.analysisConcurrency, scanPageSize, num(int64(total)), sampleEvery, len(smp.samples), heapWhat(tp))
	if rssReset != nil {
		rep.note("scale: peak RSS could not be reset before the scan (%v): it is the whole bench's peak.", rssReset)
	} else {
		rep.note("scale: peak RSS was reset (/proc/self/clear_refs) before the scale scan, so it covers that scan (and what earlier sections left in memory).")
	}
	return nil
}

// heapWhat says whether the bench's heap includes the Temporal server.
func heapWhat(t *temporal) string {
	if t.pid() == 0 {
		return " and includes the in-process Temporal server and its in-memory SQLite"
	}
	return ": the workers only, the Temporal server is its own process"
}
