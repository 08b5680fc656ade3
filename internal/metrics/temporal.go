package metrics

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// timerBuckets are the histogram buckets, in seconds, of Temporal timers:
// from 1ms to about 4.4 minutes.
var timerBuckets = prometheus.ExponentialBuckets(0.001, 4, 10)

// TemporalHandler returns a Temporal SDK metrics handler that records into
// m's registry. Names are sanitised ("temporal_" prefix when missing, dots
// and other invalid characters to underscores); counters get a "_total"
// suffix and timers become histograms in seconds with a "_seconds" suffix.
// Tags become labels. Pass it as client.Options.MetricsHandler.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	return &temporalHandler{c: m.temporal}
}

// temporalHandler implements client.MetricsHandler with a fixed tag set.
type temporalHandler struct {
	c    *temporalCollector
	tags map[string]string // sanitised label name -> value
}

var _ client.MetricsHandler = (*temporalHandler)(nil)

// WithTags returns a handler whose tags are h's, overwritten and extended by tags.
func (h *temporalHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[labelName(k)] = v
	}
	return &temporalHandler{c: h.c, tags: merged}
}

// Counter returns the counter name with h's tags.
func (h *temporalHandler) Counter(name string) client.MetricsCounter {
	vec := h.c.vector(kindCounter, metricName(name, "_total"), h.tags).(*prometheus.CounterVec)
	c, err := vec.GetMetricWith(h.tags)
	if err != nil { // a tag value that is not valid UTF-8: drop rather than panic
		return client.MetricsNopHandler.Counter(name)
	}
	return counterFunc(func(d int64) {
		if d > 0 { // prometheus counters only go up; the SDK never sends negatives
			c.Add(float64(d))
		}
	})
}

// Gauge returns the gauge name with h's tags.
func (h *temporalHandler) Gauge(name string) client.MetricsGauge {
	vec := h.c.vector(kindGauge, metricName(name, ""), h.tags).(*prometheus.GaugeVec)
	g, err := vec.GetMetricWith(h.tags)
	if err != nil {
		return client.MetricsNopHandler.Gauge(name)
	}
	return gaugeFunc(g.Set)
}

// Timer returns the timer name with h's tags, recorded as a histogram in seconds.
func (h *temporalHandler) Timer(name string) client.MetricsTimer {
	vec := h.c.vector(kindTimer, metricName(name, "_seconds"), h.tags).(*prometheus.HistogramVec)
	o, err := vec.GetMetricWith(h.tags)
	if err != nil {
		return client.MetricsNopHandler.Timer(name)
	}
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

type metricKind int

const (
	kindCounter metricKind = iota
	kindGauge
	kindTimer
)

// temporalCollector holds the vectors the Temporal handler creates lazily,
// one per (kind, name, sorted label names). The same name may come with
// several label sets, which registered vectors cannot share, so the
// collector is unchecked (Describe sends nothing) and collects them all.
type temporalCollector struct {
	mu   sync.Mutex
	vecs map[string]prometheus.Collector
	// kinds remembers the kind first used for a name, so a name reused
	// with another kind gets a distinct name instead of breaking /metrics.
	kinds map[string]metricKind
}

func newTemporalCollector() *temporalCollector {
	return &temporalCollector{vecs: map[string]prometheus.Collector{}, kinds: map[string]metricKind{}}
}

// vector returns the vector of kind for name and the label names of tags,
// creating it on first use.
func (c *temporalCollector) vector(kind metricKind, name string, tags map[string]string) prometheus.Collector {
	labels := make([]string, 0, len(tags))
	for k := range tags {
		labels = append(labels, k)
	}
	sort.Strings(labels)

	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.kinds[name]; ok && k != kind {
		name += [...]string{"_counter", "_gauge", "_timer"}[kind]
	} else if !ok {
		c.kinds[name] = kind
	}
	key := name + "\xff" + strings.Join(labels, "\xff")
	if v, ok := c.vecs[key]; ok {
		return v
	}
	help := "Temporal SDK metric " + name + "."
	var v prometheus.Collector
	switch kind {
	case kindCounter:
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	case kindGauge:
		v = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	default:
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: timerBuckets}, labels)
	}
	c.vecs[key] = v
	return v
}

// Describe sends nothing: the collector is unchecked because its metrics
// are only known once the SDK uses them.
func (c *temporalCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the metrics of every vector created so far.
func (c *temporalCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	vecs := make([]prometheus.Collector, 0, len(c.vecs))
	for _, v := range c.vecs {
		vecs = append(vecs, v)
	}
	c.mu.Unlock()
	for _, v := range vecs {
		v.Collect(ch)
	}
}

// metricName turns a Temporal metric name into a Prometheus one: invalid
// characters become underscores, "temporal_" is prefixed when missing and
// suffix is appended when missing.
func metricName(name, suffix string) string {
	n := sanitize(name)
	if !strings.HasPrefix(n, "temporal_") {
		n = "temporal_" + n
	}
	if suffix != "" && !strings.HasSuffix(n, suffix) {
		n += suffix
	}
	return n
}

// labelName sanitises a tag name into a label name, prefixing "tag_" to
// names Prometheus reserves ("__..." and the histogram bucket label "le").
func labelName(tag string) string {
	n := sanitize(tag)
	if strings.HasPrefix(n, "__") || n == "le" || n == "quantile" {
		n = "tag_" + n
	}
	return n
}

// sanitize replaces every character that is not valid in a Prometheus
// metric or label name with an underscore, and prefixes a leading digit.
func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
