package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
// metrics endpoint, ingests a batch, reads /healthz, /metrics and
// /debug/pprof, then stops it with SIGTERM and expects a clean exit.
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
	code, _ = get(t, base+"/debug/pprof/")
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-w.done:
	case <-time.After(45 * time.Second):
		t.Fatal("worker did not stop within 45 s of SIGTERM")
	}
	require.NoError(t, w.err, w.Output())
	require.Contains(t, w.Output(), "worker stopped")
}
