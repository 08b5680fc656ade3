// Package tsdbtest starts a real VictoriaMetrics or a real Prometheus for
// tests, holding the series a test gives, and an authenticating gateway in
// front of either.
package tsdbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Binary is the VictoriaMetrics executable tests run (Debian's package
// victoria-metrics); SANWATCH_VICTORIA_METRICS overrides it.
func Binary() string {
	if b := os.Getenv("SANWATCH_VICTORIA_METRICS"); b != "" {
		return b
	}
	return "victoria-metrics"
}

// VM is a running VictoriaMetrics.
type VM struct {
	URL     string // http://127.0.0.1:port
	DataDir string // its -storageDataPath
	cmd     *exec.Cmd
	log     *bytes.Buffer
	stop    sync.Once
}

// Start starts VictoriaMetrics on a free loopback port with its storage in
// a temporary directory, waits until it answers, and stops it at cleanup.
// A missing binary fails the test under CI=true and skips it elsewhere.
func Start(tb testing.TB, extra ...string) *VM {
	tb.Helper()
	bin, err := exec.LookPath(Binary())
	if err != nil {
		msg := fmt.Sprintf("VictoriaMetrics is not installed (%s): apt-get install -y victoria-metrics, or set SANWATCH_VICTORIA_METRICS", Binary())
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	vm, err := Launch(bin, tb.TempDir(), extra...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(vm.Stop)
	return vm
}

// Launch starts bin on a free loopback port with its storage under dir and
// waits until it answers; the caller stops it. For the bench, outside tests.
func Launch(bin, dir string, extra ...string) (*VM, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	vm := &VM{URL: "http://" + addr, DataDir: filepath.Join(dir, "data"), log: &bytes.Buffer{}}
	args := append([]string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + vm.DataDir,
		"-retentionPeriod=100y",
		"-search.latencyOffset=0",
		"-search.disableCache",
		"-dedup.minScrapeInterval=1ms",
		"-loggerLevel=ERROR",
	}, extra...)
	vm.cmd = exec.Command(bin, args...)
	vm.cmd.Stdout, vm.cmd.Stderr = vm.log, vm.log
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(vm.URL + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return vm, nil
			}
		}
		if time.Now().After(deadline) {
			vm.Stop()
			return nil, fmt.Errorf("VictoriaMetrics on %s did not answer in 15s: %v\n%s", addr, err, vm.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops VictoriaMetrics and waits for it to exit.
func (vm *VM) Stop() {
	vm.stop.Do(func() {
		_ = vm.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = vm.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = vm.cmd.Process.Kill()
			<-done
		}
	})
}

// Flush makes everything written searchable and on disk.
func (vm *VM) Flush(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, vm.URL+"/internal/force_flush", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return resp.Body.Close()
}

// Import writes series with /api/v1/import, as a scrape would have, and
// flushes them: they are searchable when it returns.
func (vm *VM) Import(ctx context.Context, series ...Series) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, s := range series {
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("import: encode: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, vm.URL+"/api/v1/import", &body)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("import: %s", resp.Status)
	}
	return vm.Flush(ctx)
}
