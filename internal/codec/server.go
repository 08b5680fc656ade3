package codec

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// MaxRequestBytes bounds the body of one /encode or /decode request.
const MaxRequestBytes = 32 << 20

// MinTokenLen is the shortest bearer token the codec server accepts.
const MinTokenLen = 16

// corsHeaders are the request headers a browser may send: the Temporal UI
// sends X-Namespace and, when it passes a token, Authorization.
const corsHeaders = "Authorization, Content-Type, X-Namespace"

// ServerOptions configure Handler.
type ServerOptions struct {
	// Token is the bearer token every /encode and /decode request must
	// carry (Authorization: Bearer <token>); empty: no authentication, for
	// a server that only loopback callers can reach.
	Token string
	// CORSOrigins are the browser origins (the Temporal UI) allowed to call.
	CORSOrigins []string
	// Logger receives one line per refused request; nil: slog.Default().
	Logger *slog.Logger
}

// Handler returns the codec server's handler: POST /encode and /decode
// (converter.NewPayloadCodecHTTPHandler over c, behind the bearer token),
// CORS for the allowed origins with preflight answered, and GET /healthz.
func Handler(c converter.PayloadCodec, o ServerOptions) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	codecs := converter.NewPayloadCodecHTTPHandler(c)
	want := []byte("Bearer " + o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		// Without a token only loopback host names are answered, so a web
		// page cannot reach the server through a DNS name rebound to 127.0.0.1.
		if o.Token == "" && !loopbackHost(r.Host) {
			logger.Warn("codec server: request for a host name that is not loopback refused", "host", r.Host, "remote", r.RemoteAddr)
			http.Error(w, "without codec.auth_token_file the codec server answers only 127.0.0.1, [::1] and localhost", http.StatusForbidden)
			return
		}
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(o.CORSOrigins, origin)
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				logger.Warn("codec server: preflight from an origin not in codec.cors_origins refused",
					"origin", origin, "remote", r.RemoteAddr)
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", corsHeaders)
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost || !(strings.HasSuffix(r.URL.Path, "/encode") || strings.HasSuffix(r.URL.Path, "/decode")) {
			http.NotFound(w, r)
			return
		}
		if o.Token != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				reason := "wrong bearer token"
				if got == "" {
					reason = "no Authorization header"
				}
				logger.Warn("codec server: request refused", "reason", reason, "path", r.URL.Path,
					"remote", r.RemoteAddr, "namespace", r.Header.Get("X-Namespace"))
				w.Header().Set("WWW-Authenticate", `Bearer realm="sanwatch codec"`)
				http.Error(w, "unauthorized: send Authorization: Bearer <token of codec.auth_token_file>", http.StatusUnauthorized)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		logger.Debug("codec server: request", "path", r.URL.Path, "remote", r.RemoteAddr, "namespace", r.Header.Get("X-Namespace"))
		codecs.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether an HTTP Host header (host or host:port)
// names the loopback interface.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether a listen address host:port binds only the
// loopback interface (127.0.0.0/8, ::1 or localhost).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadToken reads a bearer token from path: the file's content, surrounding
// white space trimmed, at least MinTokenLen characters, no inner white space.
// Errors name the file, never its content.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read codec auth token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case len(tok) < MinTokenLen:
		return "", fmt.Errorf("codec auth token file %s: the token is %d characters, must be at least %d (make one with `openssl rand -hex 32`)",
			path, len(tok), MinTokenLen)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("codec auth token file %s: the token must be one word (no white space)", path)
	}
	return tok, nil
}

// ErrNoAuth is returned by CheckListen for a server without a token that
// would listen beyond loopback.
var ErrNoAuth = errors.New("codec server without codec.auth_token_file listens only on loopback")

// CheckListen refuses to serve decrypted payloads without a token on an
// address other hosts can reach, unless insecure is set explicitly.
func CheckListen(addr, token string, insecure bool) error {
	if token == "" && !insecure && !IsLoopback(addr) {
		return fmt.Errorf("%w: %s is not loopback; set codec.auth_token_file (or --insecure-no-auth where the port is published on loopback only)", ErrNoAuth, addr)
	}
	return nil
}
