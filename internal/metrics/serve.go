package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ShutdownTimeout bounds how long Serve waits for in-flight requests once
// its context is done.
const ShutdownTimeout = 5 * time.Second

// NewMux returns the handler of the monitoring endpoints: /metrics (m's
// registry) and /healthz (200 "ok" when health returns nil, 503 with the
// error otherwise; a nil health is always ok). It does not serve
// /debug/pprof: the metrics listener is reached over the network, and pprof
// has its own loopback listener (NewPprofMux, ServePprof).
func NewMux(m *Metrics, health func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if health != nil {
			if err := health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err.Error())
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// NewPprofMux returns the handler of /debug/pprof/*: profiles, goroutine
// dumps and the process's command line, without authentication. Serve it
// on loopback only (ServePprof).
func NewPprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ErrNotLoopback is returned by ServePprof for an address that is not bound
// to a loopback interface.
var ErrNotLoopback = errors.New("not a loopback address")

// ServePprof listens on addr, which must be a loopback address (127.0.0.0/8
// or ::1; a name such as localhost must resolve to one), and serves
// NewPprofMux until ctx is done, like Serve.
func ServePprof(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for pprof on %s: %w", addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("listen for pprof on %s: bound to %s: %w", addr, ln.Addr(), ErrNotLoopback)
	}
	return serve(ctx, ln, NewPprofMux(), "pprof")
}

// Serve listens on addr and serves NewMux(m, health) until ctx is done, then
// shuts the server down gracefully. It returns nil after a graceful shutdown
// and the error otherwise (address in use, ...).
func Serve(ctx context.Context, addr string, m *Metrics, health func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, m, health)
}

// ServeListener is Serve on a listener the caller opened (for example on
// 127.0.0.1:0, to learn the port). It closes ln.
func ServeListener(ctx context.Context, ln net.Listener, m *Metrics, health func() error) error {
	return serve(ctx, ln, NewMux(m, health), "metrics")
}

// serve serves h on ln until ctx is done, then shuts down gracefully; what
// names the server in errors.
func serve(ctx context.Context, ln net.Listener, h http.Handler, what string) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	select {
	case err := <-done:
		return fmt.Errorf("serve %s on %s: %w", what, ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s server: %w", what, err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s on %s: %w", what, ln.Addr(), err)
	}
	return nil
}
