package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/simulate"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestPipelineFindsEveryInjectedFault simulates a fleet with a fault of every
// analyzer kind, ingests it with `starter ingest` through worker processes
// (main+email and a separate analysis worker), and checks the stored findings
// against the ground truth: every fault found, nothing else, one email each.
func TestPipelineFindsEveryInjectedFault(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	out := h.starter("simulate", "--boxes", "14", "--hours", "48", "--faults", "10", "--seed", "7",
		"--batch-hours", "24", "--out", filepath.Join(h.dir, "sim"))
	require.Contains(t, out, "simulate: boxes=14")
	h.startWorker("main,email")
	h.startWorker("analysis")

	out = h.starter("ingest", filepath.Join(h.dir, "sim", "batches"))
	require.Contains(t, out, "failed=0")
	m := regexp.MustCompile(`ingest: batches=(\d+) ok=\d+ failed=0 accepted=\d+ rejected=0`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	batches, _ := strconv.Atoi(m[1])
	// A silent box is judged against the whole fleet's clock, which only a
	// scan after the last batch sees (as the scheduled scan does).
	h.starter("scan", "--id", "scan-after-ingest")

	report := h.starter("demo-report", "--faults", filepath.Join(h.dir, "sim", "faults.json"))
	require.Regexp(t, regexp.MustCompile(`demo: boxes=14 samples=\d+ rejected=0 findings=10 faults_detected=10/10 false_findings=0`), report)

	faults, err := simulate.LoadFaults(filepath.Join(h.dir, "sim", "faults.json"))
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, f := range faults {
		kinds[f.Kind] = true
	}
	for _, rule := range finding.Rules {
		require.True(t, kinds[rule], "ground truth lacks a %s fault", rule)
	}

	// One email per injected fault, to the box's owners, none for healthy boxes.
	msgs := h.smtp.WaitMessages(len(faults), time.Minute)
	require.Len(t, msgs, len(faults))
	time.Sleep(time.Second)
	require.Len(t, h.smtp.Messages(), len(faults), "no further emails")
	subjects := map[string]bool{}
	for _, m := range msgs {
		fp := m.Header.Get("X-Sanwatch-Fingerprint")
		require.NotEmpty(t, fp)
		require.False(t, subjects[fp], "two emails for %s", fp)
		subjects[fp] = true
		require.Regexp(t, `^\[sanwatch\]\[(CRITICAL|WARNING)\] box-\d{4} `, m.Header.Get("Subject"))
	}

	// Re-ingesting the same batches changes nothing: same workflows, no new samples or emails.
	st := h.openStore()
	before, err := st.Stats(context.Background())
	require.NoError(t, err)
	out = h.starter("ingest", filepath.Join(h.dir, "sim", "batches"))
	require.Equal(t, batches, strings.Count(out, "(already ingested)"), out)
	after, err := st.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, before.Samples, after.Samples)
	time.Sleep(2 * time.Second)
	require.Len(t, h.smtp.Messages(), len(faults))
}

// TestBadBatchesFailClearly sends malformed input through the real workflow.
func TestBadBatchesFailClearly(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.starter("simulate", "--boxes", "2", "--hours", "6", "--faults", "0", "--out", filepath.Join(h.dir, "sim"))
	acts := h.inProcess(nil)
	dir := filepath.Join(h.dir, "bad")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	header := write("header.csv", "a,b,c\n1,2,3\n")
	garbage := write("garbage.csv", "\x00\x01\x02\xff\xfe binary")
	empty := write("empty.csv", "")
	mostlyBad := write("mostly-bad.csv", "time,box,component,metric,value\n"+
		"2026-10-31T00:00:00Z,box-0001,pool/p0,pool.used_bytes,12\n"+
		"2026-10-31T00:05:00Z,box-0001,pool/p0,pool.used_bytes,abc\n"+
		"2026-10-31T00:10:00Z,box-0001,pool/p0,pool.used_bytes,def\n")
	good := write("good.csv", "time,box,component,metric,value\n"+
		"2026-10-31T00:00:00Z,box-0001,pool/p0,pool.used_bytes,12\n"+
		"2026-10-31T00:05:00Z,box-0001,pool/p0,pool.used_bytes,oops\n"+
		"2026-10-31T00:10:00Z,box-0001,pool/p0,pool.used_bytes,13\n"+
		"2026-10-31T00:10:00Z,box-9999,pool/p0,pool.used_bytes,13\n"+
		"2999-01-01T00:00:00Z,box-0001,pool/p0,pool.used_bytes,14\n"+
		"2026-10-31T00:15:00Z,box-0001,pool/p0,pool.used_bytes,15\n")

	cases := []struct {
		name, path, want string
	}{
		{"wrong header", header, `header.csv:1: header is not time,box,component,metric,value: 3 columns, want 5`},
		{"binary garbage", garbage, "garbage.csv"},
		{"empty file", empty, "empty.csv: empty file"},
		{"mostly bad", mostlyBad, "quarantined: 2 of 3 lines rejected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := h.run("starter", "ingest", tc.path)
			require.Equal(t, 1, code, out)
			require.Contains(t, out, "FAIL "+tc.path)
			require.Contains(t, out, tc.want)
		})
	}

	// `starter ingest` uploaded each of them; the worker moved the refused
	// ones from batches/ to quarantine/, with the reason.
	ctx := context.Background()
	bs, err := blobstore.Open(ctx, h.config().Batches.URL)
	require.NoError(t, err)
	defer bs.Close()
	for _, p := range []string{header, garbage, mostlyBad} {
		id := mustHash(t, p)
		ok, err := bs.Exists(ctx, blobstore.BatchKey(id))
		require.NoError(t, err)
		require.False(t, ok, "%s still in batches/", p)
		_, meta, err := bs.Stat(ctx, blobstore.QuarantineKey(id))
		require.NoError(t, err, p)
		require.NotEmpty(t, meta[activities.MetaReason], p)
		require.Equal(t, filepath.Base(p), meta[activities.MetaName])
	}

	// A path outside ingest.roots, named by a client that starts the
	// workflow with a path (temporal workflow start), is refused by the worker.
	run, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: h.config().Queues.Main},
		workflows.IngestTelemetry, workflows.IngestInput{Path: "/etc/hostname"})
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.ErrorContains(t, err, `ingest "/etc/hostname": path is outside the allowed ingest roots`)

	// The malformed batch's workflow failed once, without retries.
	hash := mustHash(t, header)
	desc, err := h.c.DescribeWorkflowExecution(context.Background(), workflows.IngestWorkflowID(hash), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.GetWorkflowExecutionInfo().GetStatus())

	// A batch with some bad lines: good lines kept, each bad line reported with file:line and reason,
	// the unknown box accepted and flagged.
	out := h.starter("ingest", good)
	require.Contains(t, out, "accepted=4 rejected=2")
	require.Contains(t, out, "good.csv:3:")
	require.Contains(t, out, "good.csv:6:")
	require.Contains(t, out, "boxes not in the inventory (samples kept): box-9999")
	b, err := acts.Store.Batch(context.Background(), mustHash(t, good))
	require.NoError(t, err)
	require.Equal(t, store.BatchStored, b.Status)
	require.Equal(t, blobstore.BatchKey(mustHash(t, good)), b.Path, "the claim check is the object key")
	require.Equal(t, []string{"box-9999"}, b.UnknownBoxes)
}
