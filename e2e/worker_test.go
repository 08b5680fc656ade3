package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/workflows"
)

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestWorkerMetricsHealthAndGracefulStop runs the worker binary with its
// metrics endpoint, ingests a batch, reads /healthz and /metrics, finds no
// /debug/pprof there, then stops it with SIGTERM and expects a clean exit.
func TestWorkerMetricsHealthAndGracefulStop(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.starter("simulate", "--boxes", "1", "--hours", "6", "--faults", "0", "--out", filepath.Join(h.dir, "sim"))
	addr := freeAddr(t)
	w := h.startWorker("main,analysis,email", "--metrics-addr", addr)
	base := "http://" + addr
	require.Eventually(t, func() bool {
		code, body := get(t, base+"/healthz")
		return code == http.StatusOK && strings.TrimSpace(body) == "ok"
	}, 20*time.Second, 100*time.Millisecond)

	out := h.starter("ingest", filepath.Join(h.dir, "sim", "batches"))
	m := regexp.MustCompile(`accepted=(\d+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	code, body := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, fmt.Sprintf("sanwatch_samples_ingested_total %s", m[1]))
	require.Regexp(t, `(?m)^temporal_\w+`, body, "Temporal SDK metrics are exported too")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		code, _ = get(t, base+path)
		require.Equal(t, http.StatusNotFound, code, "%s on the metrics listener", path)
	}

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-w.done:
	case <-time.After(45 * time.Second):
		t.Fatal("worker did not stop within 45 s of SIGTERM")
	}
	require.NoError(t, w.err, w.Output())
	require.Contains(t, w.Output(), "worker stopped")
}

// TestWorkerStopsRolesConcurrently runs the worker binary with all three
// roles and worker.shutdown_timeout 5s while an activity hangs on each role's
// queue (main: StoreBatch reading a FIFO nobody writes to; analysis: an
// external analyzer that waits for a file to go away; email: an SMTP server
// that never answers), sends SIGTERM, and expects the process to exit within
// one shutdown_timeout and a margin: the roles stop together, not one after
// another (3 x 5 s).
func TestWorkerStopsRolesConcurrently(t *testing.T) {
	const shutdown = 5 * time.Second
	dir := t.TempDir()
	hold := filepath.Join(dir, "hold")    // while it exists, the analyzer waits
	running := filepath.Join(dir, "busy") // the analyzer writes it while waiting
	t.Cleanup(func() { _ = os.Remove(hold) })
	script := fmt.Sprintf("cat >/dev/null; while [ -e %s ]; do touch %s; sleep 0.1; done", hold, running)
	h := newHarness(t, harnessOptions{extraYAML: fmt.Sprintf(`external:
  - name: hold
    command: ["/bin/sh", "-c", %q]
    timeout: 10m
`, script)})
	writeFleet(t, h)
	h.smtp.FailNext(1000, smtptest.Hang)
	w := h.startWorker("main,analysis,email", "--set", "worker.shutdown_timeout="+shutdown.String(), "--set", "smtp.timeout=10m")

	// email: the finding's first email waits for a greeting that never comes.
	out := h.starter("ingest", faultyBatch(t, h))
	require.Contains(t, out, "findings=1 new=1")
	require.Eventually(t, func() bool { return h.smtp.Connections() > 0 }, 30*time.Second, 50*time.Millisecond, "email activity in flight")

	// analysis: a scan's shard runs the external analyzer, which waits.
	require.NoError(t, os.WriteFile(hold, nil, 0o644))
	h.starter("scan", "--id", "scan-held", "--wait=false")
	require.Eventually(t, func() bool { _, err := os.Stat(running); return err == nil }, 30*time.Second, 50*time.Millisecond, "analysis activity in flight")

	// main: StoreBatch opens a FIFO; the test opens its write end and never writes.
	fifo := filepath.Join(h.dir, "held.csv")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	ctx := context.Background()
	_, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ingest-held", TaskQueue: workflows.TaskQueue},
		workflows.IngestTelemetry, workflows.IngestInput{Path: fifo})
	require.NoError(t, err)
	var fd int
	require.Eventually(t, func() bool {
		// Opening the write end without blocking succeeds only once a reader has it open.
		fd, err = syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "main activity in flight")
	t.Cleanup(func() { _ = syscall.Close(fd) })

	start := time.Now()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not stop within 60 s of SIGTERM")
	}
	took := time.Since(start)
	t.Logf("worker stopped %s after SIGTERM", took.Round(time.Millisecond))
	require.NoError(t, w.err, w.Output())
	require.Contains(t, w.Output(), "worker stopped")
	require.GreaterOrEqual(t, took, shutdown-500*time.Millisecond, "the running activities got their shutdown_timeout")
	require.Less(t, took, shutdown+3*time.Second, "roles stop concurrently, within one shutdown_timeout (took %s)", took)
}
