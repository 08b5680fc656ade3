package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestOwnMetricsExposed(t *testing.T) {
	m := New()
	m.SamplesIngested.Add(42)
	m.LinesRejected.Inc()
	m.BatchesQuarantined.Inc()
	m.Findings.WithLabelValues("capacity_forecast", "critical").Add(2)
	m.EmailsSent.WithLabelValues("alert").Inc()
	m.EmailsFailed.WithLabelValues("reminder").Inc()

	code, body := get(t, m.Handler(), "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		"sanwatch_samples_ingested_total 42",
		"sanwatch_lines_rejected_total 1",
		"sanwatch_batches_quarantined_total 1",
		`sanwatch_findings_total{rule="capacity_forecast",severity="critical"} 2`,
		`sanwatch_emails_sent_total{kind="alert"} 1`,
		`sanwatch_emails_failed_total{kind="reminder"} 1`,
		"go_goroutines ",
	} {
		require.Contains(t, body, want)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, c.Write(&out))
	return out.GetCounter().GetValue()
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.SamplesIngested.Add(3)
	require.Equal(t, 3.0, counterValue(t, a.SamplesIngested))
	require.Equal(t, 0.0, counterValue(t, b.SamplesIngested))
	// Nothing of ours leaks into the global registry.
	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		require.False(t, strings.HasPrefix(mf.GetName(), "sanwatch_"), mf.GetName())
	}
}

func TestTemporalHandler(t *testing.T) {
	m := New()
	h := m.TemporalHandler()
	tq := h.WithTags(map[string]string{"namespace": "default", "task_queue": "sanwatch"})

	tq.Counter("temporal_request").Inc(2)
	tq.Counter("temporal_request").Inc(3)
	tq.Counter("temporal_request").Inc(-1) // ignored: counters only go up
	// Same name, another label set: must coexist with the first.
	tq.WithTags(map[string]string{"operation": "PollWorkflowTaskQueue"}).Counter("temporal_request").Inc(1)
	// WithTags overwrites an existing tag.
	tq.WithTags(map[string]string{"task_queue": "sanwatch-email"}).Counter("temporal_request").Inc(7)
	h.Gauge("sticky.cache.size").Update(12.5)
	tq.Timer("temporal_activity_execution_latency").Record(1500 * time.Millisecond)
	h.WithTags(map[string]string{"le": "x", "worker-type": "ActivityWorker"}).Counter("odd").Inc(1)
	h.Gauge("odd_total").Update(4) // same final name as a counter: renamed, not broken

	// Gather runs the registry's consistency checks; it must not fail.
	_, err := m.Registry().Gather()
	require.NoError(t, err)

	code, body := get(t, m.Handler(), "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`temporal_request_total{namespace="default",task_queue="sanwatch"} 5`,
		`temporal_request_total{namespace="default",operation="PollWorkflowTaskQueue",task_queue="sanwatch"} 1`,
		`temporal_request_total{namespace="default",task_queue="sanwatch-email"} 7`,
		"temporal_sticky_cache_size 12.5",
		`temporal_activity_execution_latency_seconds_sum{namespace="default",task_queue="sanwatch"} 1.5`,
		`temporal_activity_execution_latency_seconds_count{namespace="default",task_queue="sanwatch"} 1`,
		`temporal_odd_total{tag_le="x",worker_type="ActivityWorker"} 1`,
		"temporal_odd_total_gauge 4",
	} {
		require.Contains(t, body, want)
	}
}

func TestTemporalHandlerConcurrentUse(t *testing.T) {
	m := New()
	h := m.TemporalHandler().WithTags(map[string]string{"namespace": "default"})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 250; j++ {
				h.Counter("temporal_request").Inc(1)
				h.Timer("temporal_request_latency").Record(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	_, body := get(t, m.Handler(), "/metrics")
	require.Contains(t, body, `temporal_request_total{namespace="default"} 1000`)
	require.Contains(t, body, `temporal_request_latency_seconds_count{namespace="default"} 1000`)
}

func TestMetricName(t *testing.T) {
	tests := []struct {
		name, in, suffix, want string
	}{
		{name: "already prefixed", in: "temporal_request", suffix: "_total", want: "temporal_request_total"},
		{name: "dots", in: "sticky.cache.hit", suffix: "", want: "temporal_sticky_cache_hit"},
		{name: "suffix kept once", in: "poll_total", suffix: "_total", want: "temporal_poll_total"},
		{name: "invalid characters", in: "a-b c/d", suffix: "_seconds", want: "temporal_a_b_c_d_seconds"},
		{name: "leading digit", in: "9lives", suffix: "", want: "temporal__9lives"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, metricName(tc.in, tc.suffix))
		})
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name     string
		health   func() error
		wantCode int
		wantBody string
	}{
		{name: "nil check", health: nil, wantCode: http.StatusOK, wantBody: "ok\n"},
		{name: "healthy", health: func() error { return nil }, wantCode: http.StatusOK, wantBody: "ok\n"},
		{name: "unhealthy", health: func() error { return errors.New("temporal unreachable") },
			wantCode: http.StatusServiceUnavailable, wantBody: "temporal unreachable\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, NewMux(New(), tc.health), "/healthz")
			require.Equal(t, tc.wantCode, code)
			require.Equal(t, tc.wantBody, body)
		})
	}
}

// TestPprofOnlyOnItsOwnMux: the metrics mux, which is reached over the
// network, serves no /debug/pprof (cmdline would show the process's argv);
// the pprof mux does.
func TestPprofOnlyOnItsOwnMux(t *testing.T) {
	tests := []struct {
		name     string
		mux      http.Handler
		path     string
		wantCode int
	}{
		{name: "metrics: index", mux: NewMux(New(), nil), path: "/debug/pprof/", wantCode: http.StatusNotFound},
		{name: "metrics: cmdline", mux: NewMux(New(), nil), path: "/debug/pprof/cmdline", wantCode: http.StatusNotFound},
		{name: "metrics: heap", mux: NewMux(New(), nil), path: "/debug/pprof/heap", wantCode: http.StatusNotFound},
		{name: "pprof: index", mux: NewPprofMux(), path: "/debug/pprof/", wantCode: http.StatusOK},
		{name: "pprof: cmdline", mux: NewPprofMux(), path: "/debug/pprof/cmdline", wantCode: http.StatusOK},
		{name: "pprof: no metrics", mux: NewPprofMux(), path: "/metrics", wantCode: http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := get(t, tc.mux, tc.path)
			require.Equal(t, tc.wantCode, code)
		})
	}
}

func TestServePprof(t *testing.T) {
	t.Run("loopback", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServePprof(ctx, addr) }()
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/debug/pprof/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 5*time.Second, 20*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
	})
	t.Run("all interfaces refused", func(t *testing.T) {
		err := ServePprof(context.Background(), "0.0.0.0:0")
		require.ErrorIs(t, err, ErrNotLoopback)
		require.ErrorContains(t, err, "listen for pprof on 0.0.0.0:0: bound to ")
	})
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestServeListenerRealAndGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()

	m := New()
	m.SamplesIngested.Add(7)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, m, func() error { return errors.New("store down") }) }()

	code, body := fetch(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "sanwatch_samples_ingested_total 7")
	code, body = fetch(t, base+"/healthz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "store down\n", body)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("ServeListener did not return after the context was cancelled")
	}
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "the listener must be closed after shutdown")
}

func TestServe(t *testing.T) {
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		err = Serve(context.Background(), ln.Addr().String(), New(), nil)
		require.ErrorContains(t, err, "listen for metrics on "+ln.Addr().String()+": ")
		require.ErrorContains(t, err, "address already in use")
	})
	t.Run("serves until cancelled", func(t *testing.T) {
		// Find a free port, release it, and let Serve bind it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, addr, New(), nil) }()
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 5*time.Second, 20*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
	})
}
