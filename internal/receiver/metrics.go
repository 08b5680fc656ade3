package receiver

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the receiver's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	// Posts counts answered posts by HTTP status code.
	Posts *prometheus.CounterVec
	// Bytes counts the bytes of accepted bodies, as sent.
	Bytes prometheus.Counter
	// Samples counts the good lines of accepted bodies.
	Samples prometheus.Counter
	// Outbox is how many accepted batches wait for their workflow to
	// start, as of the last drain.
	Outbox prometheus.Gauge
}

// NewMetrics makes the receiver's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "sanwatch", "receiver"
	m := &Metrics{
		Posts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "posts_total",
			Help: "Posts to /v1/telemetry answered, by HTTP status code."}, []string{"code"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "accepted_bytes_total",
			Help: "Bytes of accepted bodies, as sent."}),
		Samples: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "accepted_samples_total",
			Help: "Good lines of accepted bodies."}),
		Outbox: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "outbox_pending",
			Help: "Accepted batches whose ingest workflow has not started, as of the last drain."}),
	}
	reg.MustRegister(m.Posts, m.Bytes, m.Samples, m.Outbox)
	return m
}

func (m *Metrics) post(code int) {
	if m != nil {
		m.Posts.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

func (m *Metrics) accepted(r Receipt) {
	if m != nil {
		m.Bytes.Add(float64(r.Size))
		m.Samples.Add(float64(r.Samples))
	}
}

func (m *Metrics) pending(n int) {
	if m != nil {
		m.Outbox.Set(float64(n))
	}
}
