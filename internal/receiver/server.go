package receiver

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sanwatch/sanwatch/internal/pemfile"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Options configure the HTTP side of the receiver (receiver.* in the config).
type Options struct {
	Addr string // host:port to listen on
	// CertFile and KeyFile are the server certificate (PEM); without them
	// the receiver speaks plain HTTP, on a loopback Addr only unless
	// AllowPlainHTTP.
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates: a box presenting one is
	// the box named by its common name. RequireClientCert refuses
	// connections without one.
	ClientCAFile      string
	RequireClientCert bool
	// AllowPlainHTTP lets plain HTTP listen on a non-loopback address: only
	// behind a proxy that terminates TLS on a private network.
	AllowPlainHTTP bool
	// BoxRate and BoxBurst bound posts per box (a second on average, at once).
	BoxRate  float64
	BoxBurst int
	// ReadHeaderTimeout cuts off a client whose headers are slow; ReadTimeout
	// one whose whole request is.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// SweepEvery is how often the outbox is drained (0: never).
	SweepEvery time.Duration
	// Metrics, when set, count posts, bytes and the outbox.
	Metrics *Metrics
}

// maxHeaderBytes bounds a request's headers.
const maxHeaderBytes = 64 << 10

// Server is the HTTP receiver over an Intake.
type Server struct {
	intake *Intake
	opts   Options
	logger *slog.Logger

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewServer returns a receiver serving in with opts.
func NewServer(in *Intake, opts Options) *Server {
	return &Server{intake: in, opts: opts, logger: in.logger(), limiters: make(map[string]*rate.Limiter)}
}

// Handler returns the receiver's routes: POST /v1/telemetry,
// GET /v1/batches/{id} and GET /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/telemetry", s.post)
	mux.HandleFunc("GET /v1/batches/{id}", s.batch)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// errorBody is the JSON of every refusal.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, reason string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sanwatch"`)
	}
	writeJSON(w, status, errorBody{Error: reason, Status: status})
}

// retryAfter sets Retry-After to d in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

// allow takes one post of box from its rate limit, or says how long to wait.
func (s *Server) allow(box string) (bool, time.Duration) {
	s.limMu.Lock()
	l, ok := s.limiters[box]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.opts.BoxRate), s.opts.BoxBurst)
		s.limiters[box] = l
	}
	s.limMu.Unlock()
	now := time.Now()
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) post(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	defer func() { s.opts.Metrics.post(w.code) }()
	start := time.Now()
	box, rej := s.authenticate(r.Context(), r)
	if rej != nil {
		s.refuse(w, r, box, rej)
		return
	}
	if ok, wait := s.allow(box); !ok {
		retryAfter(w, wait)
		s.refuse(w, r, box, reject(http.StatusTooManyRequests, "too many posts from box %q: at most %g a second, %d at once (receiver.box_rate, receiver.box_burst)",
			box, s.opts.BoxRate, s.opts.BoxBurst))
		return
	}
	lim := s.intake.Limits.MaxBody
	if r.ContentLength > lim {
		s.refuse(w, r, box, reject(http.StatusRequestEntityTooLarge, "body too large: %d bytes, more than %d (receiver.max_body)", r.ContentLength, lim))
		return
	}
	gz := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		s.refuse(w, r, box, reject(http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q: send gzip or none", enc))
		return
	}
	// One byte more than the limit, so that Accept sees a body that is too
	// large; past that the server closes the connection.
	body := http.MaxBytesReader(w, r.Body, lim+1)
	rc, err := s.intake.Accept(r.Context(), Source{Box: box, Kind: store.SourceHTTP, Name: r.RemoteAddr, Gzip: gz}, body)
	if err != nil {
		var un *UnavailableError
		if errors.As(err, &un) {
			retryAfter(w, un.RetryAfter)
			s.logger.Error("post not stored", "box", box, "remote", r.RemoteAddr, "error", err)
			writeError(w, http.StatusServiceUnavailable, un.Reason+": try again later")
			return
		}
		var rej *RejectError
		if errors.As(err, &rej) {
			s.refuse(w, r, box, rej)
			return
		}
		s.logger.Error("post failed", "box", box, "remote", r.RemoteAddr, "error", err)
		writeError(w, httpStatus(err), "internal error")
		return
	}
	s.logger.Info("batch accepted", "box", box, "remote", r.RemoteAddr, "batch", short(rc.BatchID),
		"status", rc.Status, "duplicate", rc.Duplicate, "bytes", rc.Size, "samples", rc.Samples,
		"rejected", rc.Rejected, "took", time.Since(start).Round(time.Millisecond))
	s.opts.Metrics.accepted(rc)
	w.Header().Set("Location", "/v1/batches/"+rc.BatchID)
	writeJSON(w, http.StatusAccepted, rc)
}

// refuse answers a refused request and logs it (never its credentials).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, box string, rej *RejectError) {
	s.logger.Warn("post refused", "box", box, "remote", r.RemoteAddr, "status", rej.Status, "reason", rej.Reason)
	if rej.Status == http.StatusRequestEntityTooLarge {
		w.Header().Set("Connection", "close")
	}
	if rej.Status == http.StatusServiceUnavailable {
		retryAfter(w, s.intake.retryAfter())
	}
	writeError(w, rej.Status, rej.Reason)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	box, rej := s.authenticate(r.Context(), r)
	if rej != nil {
		writeError(w, rej.Status, rej.Reason)
		return
	}
	id := strings.ToLower(r.PathValue("id"))
	notFound := fmt.Sprintf("no batch %q of box %q", id, box)
	if _, err := hex.DecodeString(id); err != nil || len(id) != 64 {
		writeError(w, http.StatusNotFound, notFound+": a batch id is 64 hex digits (the sha256 of the body)")
		return
	}
	st, err := s.intake.Status(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && st.Box != box):
		writeError(w, http.StatusNotFound, notFound)
	case err != nil:
		s.logger.Error("batch status", "batch", short(id), "error", err)
		retryAfter(w, s.intake.retryAfter())
		writeError(w, http.StatusServiceUnavailable, "cannot read the batch's status now: try again later")
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// TLSConfig returns the server's TLS configuration, or nil for plain HTTP.
// Client certificates are verified against ClientCAFile: an expired or
// unknown one fails the handshake.
func (o Options) TLSConfig() (*tls.Config, error) {
	if o.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load receiver.cert_file/key_file: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if o.ClientCAFile != "" {
		pool, err := pemfile.CertPool(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("receiver.client_ca_file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if o.RequireClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

// checkPlain refuses plain HTTP on an address other hosts reach: tokens
// would cross the network in clear.
func (o Options) checkPlain() error {
	if o.CertFile != "" || o.AllowPlainHTTP {
		return nil
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return fmt.Errorf("receiver.addr %q: %w", o.Addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("receiver.addr %q is not a loopback address and no TLS is configured: tokens would cross the network in clear; "+
		"set receiver.cert_file and receiver.key_file (or listen on 127.0.0.1 behind a proxy that terminates TLS)", o.Addr)
}

// httpServer returns the server with the timeouts that cut off slow
// clients. It speaks HTTP/1.1 only, over TLS too: the header and body
// timeouts that cut off a slow client are HTTP/1's, and a box posting a
// batch every few minutes gains nothing from HTTP/2's streams.
func (s *Server) httpServer(tc *tls.Config) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Server{
		Protocols:         &protocols,
		Handler:           s.Handler(),
		TLSConfig:         tc,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		// The answer waits for the store and the workflow start.
		WriteTimeout:   s.opts.ReadTimeout + s.intake.Limits.StartTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

// ListenAndServe listens on Options.Addr and serves until ctx is done; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.opts.checkPlain(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on receiver.addr %s: %w", s.opts.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// shutdownGrace is how long in-flight posts get to finish at shutdown.
const shutdownGrace = 30 * time.Second

// Serve serves on ln (with TLS when configured) and drains the outbox every
// SweepEvery, until ctx is done; then it stops taking connections and
// lets the posts in flight finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tc, err := s.opts.TLSConfig()
	if err != nil {
		_ = ln.Close()
		return err
	}
	srv := s.httpServer(tc)
	if err := s.intake.RemoveStaleTemp(2*s.opts.ReadTimeout + time.Hour); err != nil {
		s.logger.Warn("clean temporary bodies", "error", err)
	}
	dctx, stopDrain := context.WithCancel(ctx)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		s.drainLoop(dctx)
	}()
	served := make(chan error, 1)
	if tc != nil {
		s.logger.Info("receiver listening", "addr", ln.Addr().String(), "scheme", "https", "client_certs", tc.ClientAuth.String())
		go func() { served <- srv.ServeTLS(ln, "", "") }()
	} else {
		s.logger.Info("receiver listening", "addr", ln.Addr().String(), "scheme", "http")
		go func() { served <- srv.Serve(ln) }()
	}
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		err = srv.Shutdown(sctx)
		cancel()
		<-served
	}
	stopDrain()
	<-drained
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// drainLoop drains the outbox every SweepEvery until ctx is done.
func (s *Server) drainLoop(ctx context.Context) {
	if s.opts.SweepEvery <= 0 {
		return
	}
	t := time.NewTicker(s.opts.SweepEvery)
	defer t.Stop()
	for {
		s.drainOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drainOnce drains the outbox, logs what it did and updates the gauge.
func (s *Server) drainOnce(ctx context.Context) {
	res, err := s.intake.Drain(ctx)
	if err == nil {
		s.opts.Metrics.pending(res.Pending)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		s.logger.Warn("drain outbox", "error", err)
	case res.Started > 0 || res.Failed > 0:
		s.logger.Info("outbox drained", "started", res.Started, "failed", res.Failed, "pending", res.Pending)
	}
}
