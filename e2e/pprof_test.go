package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkerPprofLoopbackOnly runs the worker binary with worker.pprof_addr
// on loopback: /debug/pprof is served there, on a listener of its own, and
// not on the metrics listener.
func TestWorkerPprofLoopbackOnly(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	metricsAddr, pprofAddr := freeAddr(t), freeAddr(t)
	h.startWorker("main", "--metrics-addr", metricsAddr, "--set", "worker.pprof_addr="+pprofAddr)
	require.Eventually(t, func() bool {
		code, _ := get(t, "http://"+pprofAddr+"/debug/pprof/")
		return code == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "pprof served on %s", pprofAddr)

	code, body := get(t, "http://"+pprofAddr+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "worker.pprof_addr="+pprofAddr, "cmdline is the worker's argv")
	code, _ = get(t, "http://"+metricsAddr+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, code, "no pprof on the metrics listener")
	code, _ = get(t, "http://"+pprofAddr+"/metrics")
	require.Equal(t, http.StatusNotFound, code, "no metrics on the pprof listener")
}

// TestWorkerRefusesExposure: the worker binary does not start when pprof
// would listen beyond loopback or a secret is on its command line, and it
// does not echo the secret.
func TestWorkerRefusesExposure(t *testing.T) {
	const secret = "PG-SECRET-ON-ARGV-31337"
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "pprof on all interfaces", args: []string{"--set", "worker.pprof_addr=0.0.0.0:6060"},
			want: `worker: config: worker.pprof_addr = "0.0.0.0:6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "dsn on --set", args: []string{"--set", "store.dsn=postgres://sanwatch:" + secret + "@db/sanwatch"},
			want: `worker: config: store.dsn: set it with SANWATCH_STORE_DSN, store.dsn_file or the config file, not with --set`},
		{name: "api key on --set", args: []string{"--set", "temporal.api_key=" + secret},
			want: `worker: config: temporal.api_key: set it with SANWATCH_TEMPORAL_API_KEY, temporal.api_key_file or the config file, not with --set`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := h.run("worker", tc.args...)
			require.Equal(t, 1, code, out)
			require.Equal(t, tc.want, strings.TrimSpace(out))
			require.NotContains(t, out, secret)
		})
	}
}
