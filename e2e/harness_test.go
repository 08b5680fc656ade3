// Package e2e runs sanwatch end to end: a real in-process Temporal server
// (temporaltest), the real worker and starter binaries as subprocesses or the
// same wiring in-process, SQLite, and a real SMTP server on loopback.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/internal/search"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
)

// binDir holds the worker and starter binaries built once for the package.
var binDir string

// repoRoot is the module root (the parent of this package).
var repoRoot string

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "sanwatch-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	for _, name := range []string{"worker", "starter"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "./"+name)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// harness is one test's world: a Temporal server, a data directory, a config
// file, an SMTP server.
type harness struct {
	t  *testing.T
	ts *temporaltest.TestServer
	// c is sanwatch's client, built as the binaries build theirs
	// (app.ClientOptions): with codec keys in the config it encrypts, and
	// the in-process workers made from it do too.
	c client.Client
	// raw is a plain client of the server (no codec): what the server stores.
	raw     client.Client
	dir     string
	cfgPath string
	smtp    *smtptest.Server
	env     []string // added to the subprocesses' environment
}

// harnessOptions tune the config the harness writes.
type harnessOptions struct {
	extraYAML string // appended to the generated sanwatch.yaml
	postgres  bool   // use the PostgreSQL store (a fresh schema) instead of SQLite
	// noSearchAttributes leaves the namespace without sanwatch's search
	// attributes (tests of their registration).
	noSearchAttributes bool
	// suggestContinueAsNewAt, when set, is the history length at which the
	// server suggests continuing as new (its default is 4096 events).
	suggestContinueAsNewAt int
	// batchesURL is batches.url (default: file://<dir>/batches, the same
	// for subprocesses and in-process workers whatever their directory).
	batchesURL string
	// env is added to the environment of the subprocesses (credentials of
	// an S3 batch store).
	env []string
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	opts := []temporaltest.TestServerOption{temporaltest.WithT(t)}
	if o.suggestContinueAsNewAt > 0 {
		opts = append(opts, temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.HistoryCountSuggestContinueAsNew.Key():        []dynamicconfig.ConstrainedValue{{Value: o.suggestContinueAsNewAt}},
		})))
	}
	ts := temporaltest.NewServer(opts...)
	h := &harness{t: t, ts: ts, c: ts.GetDefaultClient(), dir: t.TempDir(), smtp: smtptest.Start(t), env: o.env}
	// As a worker does at start: sanwatch's search attributes on the namespace.
	if !o.noSearchAttributes {
		require.NoError(t, search.Register(context.Background(), h.c, ts.GetDefaultNamespace()))
	}
	h.cfgPath = filepath.Join(h.dir, "sanwatch.yaml")
	storeYAML := fmt.Sprintf("driver: sqlite\n  path: %s", filepath.Join(h.dir, "sanwatch.db"))
	if o.postgres {
		storeYAML = fmt.Sprintf("driver: postgres\n  dsn: %q", storetest.PostgresSchema(t))
	}
	batchesURL := o.batchesURL
	if batchesURL == "" {
		batchesURL = "file://" + filepath.Join(h.dir, "batches")
	}
	yaml := fmt.Sprintf(`temporal:
  address: %s
  namespace: %s
store:
  %s
inventory: %s
advisories: %s
ingest:
  roots: [%s]
batches:
  url: %s
smtp:
  host: 127.0.0.1
  port: %d
  from: sanwatch@sanwatch.test
  default_owner: noc@sanwatch.test
  timeout: 3s
  retry_for: 2m
  rate_per_second: 100
remediation:
  reminder: 1h
  escalate_after: 2h
  resolve_after: 2s
  verify_every: 1s
worker:
  metrics_addr: ""
%s`, ts.GetFrontendHostPort(), ts.GetDefaultNamespace(), storeYAML,
		filepath.Join(h.dir, "sim", "fleet.yaml"), filepath.Join(repoRoot, "config", "advisories.yaml"),
		h.dir, batchesURL, h.smtp.Port(), o.extraYAML)
	require.NoError(t, os.WriteFile(h.cfgPath, []byte(yaml), 0o600))
	h.raw = h.c
	if cfg := h.config(); cfg.Codec.KeysFile != "" || cfg.Codec.Keys != "" {
		opts, err := app.ClientOptions(cfg, slog.New(slog.DiscardHandler), nil)
		require.NoError(t, err)
		h.c = ts.NewClientWithOptions(opts)
	}
	return h
}

// config loads the harness's config file as the binaries do.
func (h *harness) config() *config.Config {
	h.t.Helper()
	cfg, err := config.Load(config.LoadOptions{File: h.cfgPath, Env: func(string) (string, bool) { return "", false }})
	require.NoError(h.t, err)
	return cfg
}

// run executes a built binary with the harness config and returns its output and exit code.
func (h *harness) run(name string, args ...string) (string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), append(args, "--config", h.cfgPath)...)
	cmd.Dir = h.dir
	cmd.Env = append(cleanEnv(), h.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("run %s %v: %v", name, args, err)
	}
	return out.String(), code
}

// starter runs the starter binary and fails the test on a non-zero exit.
func (h *harness) starter(args ...string) string {
	h.t.Helper()
	out, code := h.run("starter", args...)
	require.Equal(h.t, 0, code, "starter %v failed:\n%s", args, out)
	return out
}

// cleanEnv is the environment without SANWATCH_ settings of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANWATCH_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a worker subprocess.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, valid after done
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns what the process logged so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startWorker starts a worker subprocess serving queues; it is stopped at cleanup.
func (h *harness) startWorker(queues string, args ...string) *proc {
	h.t.Helper()
	args = append([]string{"--config", h.cfgPath, "--queues", queues, "--set", "log.level=debug"}, args...)
	return h.startProc("worker", args, 20*time.Second)
}

// startProc starts a built binary with args in the harness directory; at
// cleanup it gets SIGTERM, and SIGKILL after grace.
func (h *harness) startProc(name string, args []string, grace time.Duration) *proc {
	h.t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Dir = h.dir
	p.cmd.Env = append(cleanEnv(), h.env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(h.t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	h.t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// kill stops a worker subprocess abruptly (SIGKILL), as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
}

// inProcess starts workers for all queues inside the test process, with the
// same wiring as the worker binary, and returns the activities (for the store).
func (h *harness) inProcess(mutate func(*activities.Activities)) *activities.Activities {
	h.t.Helper()
	cfg := h.config()
	logger := app.Logger(cfg, os.Stderr)
	acts, err := app.NewActivities(context.Background(), cfg, h.c, nil, logger)
	require.NoError(h.t, err)
	if mutate != nil {
		mutate(acts)
	}
	ws, err := app.NewWorkers(h.c, cfg, acts)
	require.NoError(h.t, err)
	for _, w := range ws {
		require.NoError(h.t, w.Start())
	}
	h.t.Cleanup(func() {
		for _, w := range ws {
			w.Stop()
		}
		acts.Store.Close()
	})
	return acts
}

// openStore opens the harness store (for assertions).
func (h *harness) openStore() store.Store {
	h.t.Helper()
	st, err := app.OpenStore(context.Background(), h.config())
	require.NoError(h.t, err)
	h.t.Cleanup(func() { st.Close() })
	return st
}

// mustHash returns a batch file's content hash (its batch id).
func mustHash(t *testing.T, path string) string {
	t.Helper()
	h, err := activities.HashFile(path)
	require.NoError(t, err)
	return h
}
