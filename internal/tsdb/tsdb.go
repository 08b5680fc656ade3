// Package tsdb keeps sanwatch's samples in a Prometheus-compatible
// time-series engine instead of SQL rows: it writes them with the
// VictoriaMetrics import API and reads windows back with the export API
// (VictoriaMetrics) or query_range (any Prometheus-compatible engine). With
// a mapping (Mapping) it reads, instead, metrics that exporters already put
// in the engine, named and labelled their own way.
//
// Native series are named sanwatch_<metric> with every character outside
// [a-zA-Z0-9_] turned into '_', and labelled box, component and metric
// (the catalogue name, exact): label values may hold anything, so odd ids
// round-trip unchanged.
package tsdb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/pemfile"
)

// APIs a backend speaks.
const (
	// APIVictoriaMetrics writes with /api/v1/import and reads raw samples
	// with /api/v1/export.
	APIVictoriaMetrics = "victoriametrics"
	// APIPrometheus reads with /api/v1/query_range (stepped) and
	// /api/v1/query; it cannot write: Prometheus has no import API.
	APIPrometheus = "prometheus"
)

// Defaults of Options.
const (
	DefaultMaxPoints = 1_000_000
	DefaultTimeout   = 30 * time.Second
)

// Options say how to reach the engine.
type Options struct {
	URL string // base URL, e.g. http://127.0.0.1:8428
	API string // APIVictoriaMetrics or APIPrometheus
	// Basic auth (Username and Password) or a bearer token; secrets.
	Username, Password string
	BearerToken        string
	// CAFile verifies the engine's certificate; CertFile and KeyFile are
	// the client certificate (mTLS).
	CAFile, CertFile, KeyFile string
	// MaxPoints bounds the samples one read may return: a window with more
	// fails (export) or is stepped to fit (query_range).
	MaxPoints int
	Timeout   time.Duration // of one HTTP request
	// Mapping, when set, reads existing exporter metrics instead of
	// sanwatch's own series; writes are then refused.
	Mapping *Mapping
	// FlushAfterWrite asks the engine to make written samples searchable at
	// once (VictoriaMetrics /internal/force_flush) after every write, as
	// the SQL stores are. Under a high write rate it makes many small parts
	// for the engine to merge. A writer that knows where its batch ends
	// leaves it off and calls Flush once at the end instead (the worker's
	// StoreBatch does, for samples.flush_writes).
	FlushAfterWrite bool
}

// Backend is a samples backend on a time-series engine. It is safe for
// concurrent use.
type Backend struct {
	o    Options
	base *url.URL
	http *http.Client
}

// Open checks o and returns a backend; it does not contact the engine.
func Open(o Options) (*Backend, error) {
	if o.API == "" {
		o.API = APIVictoriaMetrics
	}
	if o.API != APIVictoriaMetrics && o.API != APIPrometheus {
		return nil, fmt.Errorf("open samples backend: api %q: allowed %s, %s", o.API, APIVictoriaMetrics, APIPrometheus)
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("open samples backend: url %q: want http(s)://host[:port][/path]", o.URL)
	}
	if u.User != nil {
		return nil, errors.New("open samples backend: url must not hold credentials: use samples.username and samples.password_file")
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = DefaultMaxPoints
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Username != "" && o.BearerToken != "" {
		return nil, errors.New("open samples backend: basic auth and a bearer token are exclusive")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pool, err := pemfile.CertPool(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("open samples backend: samples.tls.ca_file: %w", err)
			}
			tc.RootCAs = pool
		}
		if (o.CertFile == "") != (o.KeyFile == "") {
			return nil, errors.New("open samples backend: samples.tls.cert_file and samples.tls.key_file go together")
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("open samples backend: load client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Backend{o: o, base: u, http: &http.Client{Transport: tr, Timeout: o.Timeout}}, nil
}

// Close releases idle connections.
func (b *Backend) Close() error {
	b.http.CloseIdleConnections()
	return nil
}

// API returns the API the backend speaks.
func (b *Backend) API() string { return b.o.API }

// MaxPoints returns the bound on one read.
func (b *Backend) MaxPoints() int { return b.o.MaxPoints }

// request sends one request to path with the query q and body (nil: GET)
// and returns the response, whose body the caller closes. A status other
// than 2xx is an error holding the start of the engine's answer; the
// credentials are never part of an error.
func (b *Backend) request(ctx context.Context, path string, q url.Values, body io.Reader) (*http.Response, error) {
	u := *b.base
	u.Path += path
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	if q != nil {
		if body == nil && len(q.Encode()) > 4000 {
			// Long selectors go in a form body; both engines accept it.
			method, body = http.MethodPost, strings.NewReader(q.Encode())
		} else {
			u.RawQuery = q.Encode()
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if method == http.MethodPost && u.RawQuery == "" && q != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case b.o.Username != "":
		req.SetBasicAuth(b.o.Username, b.o.Password)
	case b.o.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+b.o.BearerToken)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, without the query
		}
		return nil, fmt.Errorf("%s %s%s: %w", method, b.base.Host, path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%s %s%s: %s: %s", method, b.base.Host, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}
