package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/temporaltest"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/codec"
	"github.com/sanwatch/sanwatch/internal/search"
)

// Server modes (-server): where the Temporal server of a section runs.
const (
	serverInProcess = "inprocess" // temporaltest inside the bench process
	serverExternal  = "external"  // the Temporal CLI dev server as its own process
	serverBoth      = "both"      // scan: one comparison per mode; other sections: external
)

// serverModes are the values -server accepts.
var serverModes = []string{serverInProcess, serverExternal, serverBoth}

// Timeouts of the external dev server.
const (
	externalStartTimeout = 60 * time.Second
	externalStopTimeout  = 10 * time.Second
	healthPoll           = 200 * time.Millisecond
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
const clockTicks = 100

// temporal is a Temporal server and a client of it: in-process (temporaltest)
// or an external Temporal CLI dev server process.
type temporal struct {
	mode string
	c    client.Client

	ts *temporaltest.TestServer // in-process

	cmd    *exec.Cmd // external
	addr   string
	stderr *syncBuffer
	exited chan struct{} // closed when cmd has been waited for
}

// startServer starts a Temporal server of the given mode (inprocess or
// external) and returns it with a client of its "default" namespace.
// Like a worker at start, it registers sanwatch's search attributes.
func startServer(ctx context.Context, o options, mode string) (*temporal, error) {
	var t *temporal
	var err error
	if mode == serverExternal {
		t, err = startExternal(ctx, o.temporalCLI, o.encrypt)
	} else {
		t, err = startInProcess(o.encrypt)
	}
	if err != nil {
		return nil, err
	}
	ns := "default"
	if t.ts != nil {
		ns = t.ts.GetDefaultNamespace()
	}
	if err := search.Register(ctx, t.c, ns); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// clientOptions returns opts, with payload encryption under a fresh random
// key when encrypt is set (-encrypt: what the codec costs), as workers with
// codec keys configured run.
func clientOptions(opts client.Options, encrypt bool) (client.Options, error) {
	if !encrypt {
		return opts, nil
	}
	secret := make([]byte, codec.KeySize)
	if _, err := rand.Read(secret); err != nil {
		return opts, fmt.Errorf("make bench codec key: %w", err)
	}
	pc, err := codec.New([]codec.Key{{ID: "bench", Secret: secret}})
	if err != nil {
		return opts, fmt.Errorf("make bench codec: %w", err)
	}
	return app.WithCodec(opts, pc), nil
}

// startInProcess starts an in-process Temporal server (temporaltest without a
// *testing.T: it then panics on errors, which is turned into an error here).
func startInProcess(encrypt bool) (t *temporal, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("start temporal server: %v", p)
		}
	}()
	ts := temporaltest.NewServer()
	opts, err := clientOptions(client.Options{Logger: tlog.NewStructuredLogger(quietLogger())}, encrypt)
	if err != nil {
		ts.Stop()
		return nil, err
	}
	return &temporal{mode: serverInProcess, ts: ts, c: ts.NewClientWithOptions(opts)}, nil
}

// startExternal starts `cli server start-dev` in its own process group (in
// memory, no UI, on a free loopback port), waits until `cli operator cluster
// health` says it serves, and dials it.
func startExternal(ctx context.Context, cli string, encrypt bool) (*temporal, error) {
	if _, err := os.Stat(cli); err != nil {
		return nil, fmt.Errorf("find temporal cli (make tools, or -temporal-cli): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t := &temporal{mode: serverExternal, addr: addr, stderr: &syncBuffer{}, exited: make(chan struct{})}
	t.cmd = exec.Command(cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--log-level", "error") // the "default" namespace is always created
	t.cmd.Stdout = t.stderr
	t.cmd.Stderr = t.stderr
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	go func() {
		_ = t.cmd.Wait()
		close(t.exited)
	}()
	if err := t.waitHealthy(ctx, cli); err != nil {
		t.stop()
		return nil, err
	}
	opts, err := clientOptions(client.Options{HostPort: addr, Namespace: "default", Logger: tlog.NewStructuredLogger(quietLogger())}, encrypt)
	if err != nil {
		t.stop()
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.stop()
		return nil, fmt.Errorf("connect to temporal dev server at %s: %w", addr, err)
	}
	t.c = c
	t.settle(ctx)
	return t, nil
}

// settle waits, up to externalStartTimeout, until the fresh server uses less
// than a tenth of a CPU (it creates its namespaces and system workflows
// first), so that its start-up is not timed.
func (t *temporal) settle(ctx context.Context) {
	const every = 500 * time.Millisecond
	deadline := time.Now().Add(externalStartTimeout)
	prev, err := processCPU(t.pid())
	for err == nil && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		var cur time.Duration
		if cur, err = processCPU(t.pid()); err == nil && cur-prev < every/10 {
			return
		}
		prev = cur
	}
}

// waitHealthy polls `cli operator cluster health` until it succeeds, the
// server exits or externalStartTimeout passes.
func (t *temporal) waitHealthy(ctx context.Context, cli string) error {
	deadline := time.Now().Add(externalStartTimeout)
	var last string
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(hctx, cli, "operator", "cluster", "health", "--address", t.addr).CombinedOutput()
		cancel()
		if err == nil && strings.Contains(string(out), "SERVING") {
			return nil
		}
		last = strings.TrimSpace(string(out))
		select {
		case <-t.exited:
			return fmt.Errorf("start temporal dev server: exited (%s): %s", t.cmd.ProcessState, strings.TrimSpace(t.stderr.String()))
		case <-ctx.Done():
			return fmt.Errorf("wait for temporal dev server: %w", ctx.Err())
		case <-time.After(healthPoll):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for temporal dev server at %s: not healthy after %s: %s", t.addr, externalStartTimeout, last)
		}
	}
}

// pid returns the external server's process id, or 0 in process.
func (t *temporal) pid() int {
	if t.cmd == nil || t.cmd.Process == nil {
		return 0
	}
	return t.cmd.Process.Pid
}

// describe names the server for the report.
func (t *temporal) describe() string {
	if t.mode == serverExternal {
		return "external Temporal server"
	}
	return "in-process Temporal server"
}

// stop closes the client and stops the server: temporaltest, or the dev
// server's process group (SIGTERM, then SIGKILL after externalStopTimeout).
func (t *temporal) stop() {
	if t.ts != nil {
		defer func() { _ = recover() }() // Stop logs through a nil *testing.T if the server fails to stop
		t.ts.Stop()
		return
	}
	if t.c != nil {
		t.c.Close()
	}
	pid := t.pid()
	if pid == 0 {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(externalStopTimeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-t.exited
	}
}

// freePort returns a TCP port free on loopback right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// processCPU returns the user+system CPU time a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces: fields count from after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("read cpu time: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("read cpu time: short /proc stat")
	}
	var ticks int64
	for _, s := range f[11:13] { // utime and stime, fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read cpu time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// defaultTemporalCLI is $SANWATCH_TEMPORAL_CLI, else bin/temporal of the
// module the bench runs in (`make tools` builds it there).
func defaultTemporalCLI() string {
	if p := os.Getenv("SANWATCH_TEMPORAL_CLI"); p != "" {
		return p
	}
	if root := moduleRoot(); root != "" {
		return filepath.Join(root, "bin", "temporal")
	}
	return filepath.Join("bin", "temporal")
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 { // keep the start: the first error explains the rest
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
