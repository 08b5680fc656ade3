package app

import (
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/telemetry"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// TestNewActivitiesFlushOncePerBatch: with the samples in a time-series
// engine and samples.flush_writes, the worker's store does not flush after
// each write and StoreBatch gets the engine to flush once a batch; without
// flush_writes nothing flushes; OpenStore (the starter's) keeps flushing
// after each write as configured.
func TestNewActivitiesFlushOncePerBatch(t *testing.T) {
	vm := tsdbtest.Start(t)
	var mu sync.Mutex
	flushes := 0
	proxy := tsdbtest.StartProxy(t, vm.URL, func(r *http.Request) bool {
		if r.URL.Path == "/internal/force_flush" {
			mu.Lock()
			flushes++
			mu.Unlock()
		}
		return true
	})
	took := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := flushes
		flushes = 0
		return n
	}
	tests := []struct {
		name        string
		backend     string
		flushWrites bool
		wantFlusher bool
	}{
		{"engine, flush_writes", config.SamplesPrometheus, true, true},
		{"engine, no flush_writes", config.SamplesPrometheus, false, false},
		{"sql", config.SamplesSQL, true, false},
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Default()
			cfg.Store.Path, cfg.Inventory, cfg.Batches.URL = filepath.Join(dir, "s.db"), filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "batches")
			cfg.Advisories = "../../config/advisories.yaml"
			cfg.Samples.Backend, cfg.Samples.URL, cfg.Samples.FlushWrites = tc.backend, proxy.URL, tc.flushWrites
			cfg.Samples.TLS = config.SamplesTLS{CAFile: proxy.CAFile, CertFile: proxy.CertFile, KeyFile: proxy.KeyFile}
			acts, err := NewActivities(t.Context(), cfg, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			require.NoError(t, err)
			t.Cleanup(func() { _ = acts.Store.Close() })
			require.Equal(t, tc.wantFlusher, acts.SampleFlusher != nil)

			took()
			_, err = acts.Store.AppendSamples(t.Context(), []telemetry.Sample{{Time: at, Box: "b1", Component: "disk/1", Metric: "disk.temperature_c", Value: 40}})
			require.NoError(t, err)
			require.Zero(t, took(), "the worker's store never flushes after a write")
			if acts.SampleFlusher != nil {
				require.NoError(t, acts.SampleFlusher.Flush(t.Context()))
				require.Equal(t, 1, took())
			}

			st, err := OpenStore(t.Context(), cfg)
			require.NoError(t, err)
			defer st.Close()
			_, err = st.AppendSamples(t.Context(), []telemetry.Sample{{Time: at, Box: "b1", Component: "disk/1", Metric: "disk.temperature_c", Value: 40}})
			require.NoError(t, err)
			want := 0
			if tc.backend == config.SamplesPrometheus && tc.flushWrites {
				want = 1
			}
			require.Equal(t, want, took(), "OpenStore flushes after each write with flush_writes")
		})
	}
}
