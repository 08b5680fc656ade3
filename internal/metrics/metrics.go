// Package metrics holds sanwatch's Prometheus metrics, an adapter that feeds
// the Temporal SDK's metrics into the same registry, the HTTP server that
// exposes them with /healthz, and a loopback-only /debug/pprof server.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric sanwatch defines itself.
const Namespace = "sanwatch"

// Metrics is the set of sanwatch's own metrics, registered in a registry of
// its own (never the global one), plus the Temporal SDK metrics fed through
// TemporalHandler. The zero value is not usable; call New.
type Metrics struct {
	// SamplesIngested counts the samples stored from telemetry batches.
	SamplesIngested prometheus.Counter
	// LinesRejected counts the telemetry lines rejected while parsing.
	LinesRejected prometheus.Counter
	// BatchesStored counts the telemetry batches stored.
	BatchesStored prometheus.Counter
	// BatchesQuarantined counts the telemetry batches quarantined as mostly bad.
	BatchesQuarantined prometheus.Counter
	// BoxesAnalyzed counts the boxes the analyzers ran over.
	BoxesAnalyzed prometheus.Counter
	// AnalysisSeconds observes how long analysing one shard of boxes took.
	AnalysisSeconds prometheus.Histogram
	// Findings counts findings by rule and severity.
	Findings *prometheus.CounterVec
	// ExternalFailures counts runs of external analyzers that failed, by analyzer name.
	ExternalFailures *prometheus.CounterVec
	// EmailsSent counts emails accepted by the SMTP server, by kind (alert, reminder, escalation, resolved ...).
	EmailsSent *prometheus.CounterVec
	// EmailsFailed counts emails the SMTP server did not accept, by kind.
	EmailsFailed *prometheus.CounterVec

	registry *prometheus.Registry
	temporal *temporalCollector
}

// New returns Metrics registered in a new registry, together with the Go
// runtime and process collectors.
func New() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		SamplesIngested:    counter("samples_ingested_total", "Telemetry samples stored."),
		LinesRejected:      counter("lines_rejected_total", "Telemetry lines rejected while parsing."),
		BatchesStored:      counter("batches_stored_total", "Telemetry batches stored."),
		BatchesQuarantined: counter("batches_quarantined_total", "Telemetry batches quarantined because too many lines were bad."),
		BoxesAnalyzed:      counter("boxes_analyzed_total", "Boxes the analyzers ran over."),
		AnalysisSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "analysis_shard_seconds",
			Help:    "Time to analyse one shard of boxes.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		Findings:         counterVec("findings_total", "Findings produced, by rule and severity.", "rule", "severity"),
		ExternalFailures: counterVec("external_analyzer_failures_total", "Failed runs of external analyzers, by analyzer.", "analyzer"),
		EmailsSent:       counterVec("emails_sent_total", "Emails accepted by the SMTP server, by kind.", "kind"),
		EmailsFailed:     counterVec("emails_failed_total", "Emails the SMTP server did not accept, by kind.", "kind"),
		registry:         prometheus.NewRegistry(),
		temporal:         newTemporalCollector(),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.SamplesIngested, m.LinesRejected, m.BatchesStored, m.BatchesQuarantined,
		m.BoxesAnalyzed, m.AnalysisSeconds, m.Findings, m.ExternalFailures,
		m.EmailsSent, m.EmailsFailed,
		m.temporal,
	)
	return m
}

// Registry returns the registry all of m's metrics are registered in, for
// callers that add collectors of their own or gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler returns the HTTP handler that serves m's registry in the
// Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
