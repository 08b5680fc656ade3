package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// seedBoxes adds n boxes named box-0000000... straight to the store.
func seedBoxes(t *testing.T, st store.Store, n int) {
	t.Helper()
	const chunk = 50_000
	ids := make([]string, 0, chunk)
	for i := 0; i < n; i++ {
		ids = append(ids, boxID(i))
		if len(ids) == chunk || i == n-1 {
			require.NoError(t, st.TouchBoxes(context.Background(), ids))
			ids = ids[:0]
		}
	}
}

func boxID(i int) string { return fmt.Sprintf("box-%07d", i) }

// writeOneSampleBatch writes a CSV batch with one pool sample per box for
// boxes [from, to), at the given time.
func writeOneSampleBatch(t *testing.T, path string, from, to int, at time.Time) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "time,box,component,metric,value")
	ts := at.UTC().Format(time.RFC3339)
	for i := from; i < to; i++ {
		fmt.Fprintf(w, "%s,%s,pool/p0,pool.used_bytes,%d\n", ts, boxID(i), i)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
}

// runSizes are what walking one run's history measured.
type runSizes struct {
	workflowID, runID, workflowType string
	events                          int
	largestPayload                  int // bytes of the largest single Payloads or Payload
	largestEvent                    string
}

// measureRun walks the history of one run and measures its event count and
// its largest payload: inputs, results, signals, markers, memo, search
// attributes, wherever a Payload(s) is in an event.
func measureRun(t *testing.T, c client.Client, workflowID, runID string) runSizes {
	t.Helper()
	r := runSizes{workflowID: workflowID, runID: runID}
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		r.events++
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			r.workflowType = a.GetWorkflowType().GetName()
		}
		walkPayloads(ev.ProtoReflect(), func(size int) {
			if size > r.largestPayload {
				r.largestPayload, r.largestEvent = size, ev.GetEventType().String()
			}
		})
	}
	return r
}

var (
	payloadsName = (&commonpb.Payloads{}).ProtoReflect().Descriptor().FullName()
	payloadName  = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()
)

// walkPayloads calls size with the encoded size of every Payloads and
// Payload message inside m.
func walkPayloads(m protoreflect.Message, size func(int)) {
	switch m.Descriptor().FullName() {
	case payloadsName, payloadName:
		size(proto.Size(m.Interface()))
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkPayloads(v.List().Get(i).Message(), size)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkPayloads(mv.Message(), size)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walkPayloads(v.Message(), size)
		}
		return true
	})
}

// allRuns lists every run of every workflow in the harness's namespace,
// closed ones included (each continue-as-new leaves one).
func allRuns(t *testing.T, h *harness) [][2]string {
	t.Helper()
	var runs [][2]string
	var token []byte
	for {
		resp, err := h.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: h.ts.GetDefaultNamespace(), PageSize: 1000, NextPageToken: token,
		})
		require.NoError(t, err)
		for _, e := range resp.GetExecutions() {
			runs = append(runs, [2]string{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return runs
		}
	}
}

// runChain follows a workflow's runs across continue-as-new from its first
// run and returns their run ids in order.
func runChain(t *testing.T, c client.Client, workflowID string) []string {
	t.Helper()
	desc, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(t, err)
	firstRun := desc.GetWorkflowExecutionInfo().GetFirstRunId()
	require.NotEmpty(t, firstRun)
	chain := []string{firstRun}
	for run := firstRun; ; {
		it := c.GetWorkflowHistory(context.Background(), workflowID, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		require.True(t, it.HasNext())
		ev, err := it.Next()
		require.NoError(t, err)
		next := ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		if next == "" {
			return chain
		}
		chain = append(chain, next)
		run = next
	}
}

// TestScanWithoutAnalysisWorkerEndsWithFailedShards scans with no worker
// polling the analysis queue: every shard fails at analysis.shard_deadline
// and the scan completes and saves its report instead of hanging.
func TestScanWithoutAnalysisWorkerEndsWithFailedShards(t *testing.T) {
	h := newHarness(t, harnessOptions{extraYAML: "  queues: [main, email]\nanalysis:\n  shard_deadline: 3s\n"})
	acts := h.inProcess(nil)
	seedBoxes(t, acts.Store, 6)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "scan-no-analysis", TaskQueue: workflows.TaskQueue},
		workflows.FleetScan, workflows.FleetScanInput{ShardSize: 2})
	require.NoError(t, err)
	var rep store.ScanReport
	require.NoError(t, run.Get(ctx, &rep), "the scan ends although no worker analyses")
	require.Equal(t, 6, rep.Boxes)
	require.Zero(t, rep.Analysed)
	require.Len(t, rep.FailedShards, 3)
	require.Contains(t, rep.FailedShards[0], "box-0000000..box-0000001 (2 boxes)")
	require.Regexp(t, `activity ScheduleTo(Start|Close) timeout`, rep.FailedShards[0])
	saved, err := acts.Store.ScanReport(ctx, "scan-no-analysis")
	require.NoError(t, err)
	require.Equal(t, rep.FailedShards, saved.FailedShards)
	recordHistory(t, h, "scan-no-analysis", "FleetScan-failed-shards")
}

// shortHeartbeatShard runs AnalyzeShard with a heartbeat timeout of 2 s and
// no retry: shorter than one box's external analysis.
func shortHeartbeatShard(ctx workflow.Context, box string) (activities.ShardResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: 2 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var a *activities.Activities
	var res activities.ShardResult
	err := workflow.ExecuteActivity(ctx, a.AnalyzeShard, activities.AnalyzeShardInput{Boxes: []string{box}, CountsOnly: true}).Get(ctx, &res)
	return res, err
}

// TestExternalAnalyzerOutlivesTheHeartbeatTimeout analyses a box with an
// external analyzer that takes 5 s, under a heartbeat timeout of 2 s: the
// activity heartbeats while the script runs, so the shard completes.
func TestExternalAnalyzerOutlivesTheHeartbeatTimeout(t *testing.T) {
	h := newHarness(t, harnessOptions{extraYAML: `  queues: [main]
external:
  - name: slow-check
    command: [sh, -c, "cat >/dev/null; sleep 5"]
    timeout: 30s
`})
	cfg := h.config()
	acts, err := app.NewActivities(context.Background(), cfg, h.c, nil, app.Logger(cfg, os.Stderr))
	require.NoError(t, err)
	t.Cleanup(func() { acts.Store.Close() })
	w := worker.New(h.c, "heartbeat-test", worker.Options{})
	w.RegisterWorkflow(shortHeartbeatShard)
	w.RegisterActivity(acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "slow-external", TaskQueue: "heartbeat-test"}, shortHeartbeatShard, "box-0000001")
	require.NoError(t, err)
	var res activities.ShardResult
	require.NoError(t, run.Get(ctx, &res), "the shard must not time out on heartbeats while the script runs")
	require.Equal(t, 1, res.Analysed)
	require.GreaterOrEqual(t, time.Since(start), 5*time.Second, "the script ran to its end")
}

// TestBoundedPayloadsAtScale ingests one batch of 300,000 boxes through
// IngestTelemetry and scans a fleet of 1,000,000 boxes with FleetScan, then
// walks the history of every run of every workflow started: no payload may
// exceed 256 KB and no run 10,000 events.
func TestBoundedPayloadsAtScale(t *testing.T) {
	const (
		fleetSize  = 1_000_000
		batchBoxes = 300_000
		maxPayload = 256 << 10
		maxEvents  = 10_000
	)
	began := time.Now()
	h := newHarness(t, harnessOptions{extraYAML: "analysis:\n  shard_size: 2000\n  max_in_flight: 4\n"})
	acts := h.inProcess(nil)
	seedBoxes(t, acts.Store, fleetSize)
	batch := filepath.Join(h.dir, "big.csv")
	writeOneSampleBatch(t, batch, 0, batchBoxes, time.Now().Add(-time.Hour))
	t.Logf("seeded %d boxes and wrote a batch of %d boxes in %s", fleetSize, batchBoxes, time.Since(began).Round(time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	step := time.Now()
	ing, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ingest-big", TaskQueue: workflows.TaskQueue},
		workflows.IngestTelemetry, workflows.IngestInput{Path: batch})
	require.NoError(t, err)
	var ir workflows.IngestResult
	require.NoError(t, ing.Get(ctx, &ir))
	require.Equal(t, batchBoxes, ir.Batch.BoxCount)
	require.Equal(t, int64(batchBoxes), ir.Batch.Accepted)
	require.NotNil(t, ir.Analysis)
	require.Equal(t, batchBoxes, ir.Analysis.Boxes)
	require.Equal(t, batchBoxes, ir.Analysis.Analysed)
	t.Logf("ingest and analysis of %d boxes: %s", batchBoxes, time.Since(step).Round(time.Second))

	step = time.Now()
	scan, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "scan-fleet", TaskQueue: workflows.TaskQueue},
		workflows.FleetScan, workflows.FleetScanInput{PageSize: 2000, ShardSize: 2000})
	require.NoError(t, err)
	var rep store.ScanReport
	require.NoError(t, scan.Get(ctx, &rep))
	require.Equal(t, fleetSize, rep.Boxes)
	require.Equal(t, fleetSize, rep.Analysed)
	require.Empty(t, rep.FailedShards)
	t.Logf("scan of %d boxes: %s in %d runs", fleetSize, time.Since(step).Round(time.Second), rep.Runs)

	// Every run of every workflow: the listed ones, and the chains followed
	// from the first runs (so that no run is missed while visibility lags).
	runs := map[[2]string]bool{}
	for _, r := range allRuns(t, h) {
		runs[r] = true
	}
	for _, r := range runChain(t, h.c, "scan-fleet") {
		runs[[2]string{"scan-fleet", r}] = true
	}
	for _, r := range runChain(t, h.c, "ingest-big") {
		runs[[2]string{"ingest-big", r}] = true
	}
	child := workflows.AnalyzeWorkflowID("ingest-big")
	for _, r := range runChain(t, h.c, child) {
		runs[[2]string{child, r}] = true
	}
	childRuns := 0
	for r := range runs {
		if r[0] == child {
			childRuns++
		}
	}
	require.Positive(t, childRuns, "the analysis child is listed")
	var largest, longest runSizes
	byType := map[string]int{}
	for r := range runs {
		m := measureRun(t, h.c, r[0], r[1])
		byType[m.workflowType]++
		require.LessOrEqual(t, m.largestPayload, maxPayload, "run %s/%s (%s): a payload of %d bytes in %s", r[0], r[1], m.workflowType, m.largestPayload, m.largestEvent)
		require.LessOrEqual(t, m.events, maxEvents, "run %s/%s (%s): %d events", r[0], r[1], m.workflowType, m.events)
		if m.largestPayload > largest.largestPayload {
			largest = m
		}
		if m.events > longest.events {
			longest = m
		}
	}
	require.GreaterOrEqual(t, byType["FleetScan"], 2, "the scan continued as new")
	require.GreaterOrEqual(t, byType["AnalyzeBoxes"], 2, "the analysis continued as new")
	t.Logf("runs walked: %d %v", len(runs), byType)
	t.Logf("largest payload: %d bytes (%s, %s %s)", largest.largestPayload, largest.workflowType, largest.workflowID, largest.largestEvent)
	t.Logf("longest history: %d events (%s, %s)", longest.events, longest.workflowType, longest.workflowID)

	// What the summary of the same batch was before bounded-payloads: every
	// box listed (the parser kept at most 200,000), and again as unknown.
	old := activities.BatchSummary{BatchID: ir.Batch.BatchID, Path: batch, Format: "csv", Status: store.BatchStored, Accepted: batchBoxes}
	for i := 0; i < 200_000; i++ {
		old.Boxes = append(old.Boxes, boxID(i))
	}
	old.UnknownBoxes = old.Boxes
	p, err := converter.GetDefaultDataConverter().ToPayloads(old)
	require.NoError(t, err)
	require.Greater(t, proto.Size(p), 2<<20, "the old summary is over the server's 2 MB payload limit")
	t.Logf("the old summary of this batch: %d bytes; this run's summary: %d", proto.Size(p), mustSize(t, ir.Batch))
	t.Logf("whole test: %s", time.Since(began).Round(time.Second))
}

func mustSize(t *testing.T, v any) int {
	p, err := converter.GetDefaultDataConverter().ToPayloads(v)
	require.NoError(t, err)
	return proto.Size(p)
}

// TestBoundedBranchesEndToEnd runs the bounded-payloads branches on a real
// server that suggests continuing as new early: an ingest whose analysis
// continues as new, a scan that does, and a quarantined batch. Their
// histories are the replay corpus of these branches.
func TestBoundedBranchesEndToEnd(t *testing.T) {
	h := newHarness(t, harnessOptions{suggestContinueAsNewAt: 60, extraYAML: "analysis:\n  shard_size: 1\n  max_in_flight: 2\n"})
	acts := h.inProcess(nil)
	batch := filepath.Join(h.dir, "small.csv")
	writeOneSampleBatch(t, batch, 0, 30, time.Now().Add(-time.Hour))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ing, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ingest-small", TaskQueue: workflows.TaskQueue},
		workflows.IngestTelemetry, workflows.IngestInput{Path: batch})
	require.NoError(t, err)
	var ir workflows.IngestResult
	require.NoError(t, ing.Get(ctx, &ir))
	require.Equal(t, 30, ir.Batch.BoxCount)
	require.Empty(t, ir.Batch.Boxes)
	require.Equal(t, 30, ir.Batch.UnknownBoxCount)
	require.Len(t, ir.Batch.UnknownBoxes, activities.MaxListed)
	require.Equal(t, 30, ir.Analysis.Analysed)
	recordHistory(t, h, "ingest-small", "IngestTelemetry-bounded")

	child := workflows.AnalyzeWorkflowID("ingest-small")
	chain := runChain(t, h.c, child)
	require.GreaterOrEqual(t, len(chain), 2, "the analysis continued as new")
	recordRun(t, h, child, chain[0], "AnalyzeBoxes-continue-as-new")
	recordRun(t, h, child, chain[len(chain)-1], "AnalyzeBoxes-bounded")

	scan, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "scan-small", TaskQueue: workflows.TaskQueue},
		workflows.FleetScan, workflows.FleetScanInput{PageSize: 10})
	require.NoError(t, err)
	var rep store.ScanReport
	require.NoError(t, scan.Get(ctx, &rep))
	require.Equal(t, 30, rep.Analysed)
	require.GreaterOrEqual(t, rep.Runs, 2)
	chain = runChain(t, h.c, "scan-small")
	require.Len(t, chain, rep.Runs)
	recordRun(t, h, "scan-small", chain[0], "FleetScan-continue-as-new")
	recordRun(t, h, "scan-small", chain[len(chain)-1], "FleetScan-bounded")

	bad := filepath.Join(h.dir, "bad.csv")
	body := "time,box,component,metric,value\n2026-11-01T00:00:00Z,box-0000001,pool/p0,pool.used_bytes,1\n"
	for range 50 {
		body += "2026-11-01T00:00:00Z,box-0000001,pool/p0,pool.used_bytes,oops\n"
	}
	require.NoError(t, os.WriteFile(bad, []byte(body), 0o644))
	q, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ingest-bad", TaskQueue: workflows.TaskQueue},
		workflows.IngestTelemetry, workflows.IngestInput{Path: bad})
	require.NoError(t, err)
	require.ErrorContains(t, q.Get(ctx, nil), "bad.csv: quarantined: 50 of 51 lines rejected")
	b, err := acts.Store.Batch(ctx, mustHash(t, bad))
	require.NoError(t, err)
	require.Equal(t, store.BatchQuarantined, b.Status)
	recordHistory(t, h, "ingest-bad", "IngestTelemetry-quarantine")
}
