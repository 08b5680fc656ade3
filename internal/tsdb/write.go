package tsdb

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// NamePrefix starts the name of every series sanwatch writes.
const NamePrefix = "sanwatch_"

// Label names of sanwatch's own series.
const (
	LabelBox       = "box"
	LabelComponent = "component"
	LabelMetric    = "metric"
)

// MaxFutureSkew is how far ahead of the engine's clock a sample may be:
// VictoriaMetrics drops, with only a log line, samples more than two days
// ahead, so AppendSamples refuses them instead of losing them.
const MaxFutureSkew = 47 * time.Hour

// SeriesName returns the series name of a catalogue metric:
// "disk.reallocated_sectors" is "sanwatch_disk_reallocated_sectors". Every
// character outside [a-zA-Z0-9_] becomes '_'; the exact metric is kept in
// the metric label, so two metrics that map to one name stay apart.
func SeriesName(metric string) string {
	var sb strings.Builder
	sb.WriteString(NamePrefix)
	for _, r := range metric {
		if r < 128 && (r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

// ErrReadOnly is returned by writes to a backend that reads through a
// mapping or speaks the Prometheus API.
var ErrReadOnly = errors.New("samples backend is read-only")

type seriesKey struct{ box, component, metric string }

// importLine is one line of the VictoriaMetrics JSON import format.
type importLine struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

// AppendSamples writes samples with /api/v1/import, one JSON line per
// series. Samples with the same box, component, metric and millisecond are
// one: the last in the batch wins. It returns how many samples it wrote.
//
// The engine keeps milliseconds; it does not replace a stored sample of the
// same time, it keeps both until deduplication (-dedup.minScrapeInterval),
// and reads keep the last one returned: writing the same batch again is
// harmless, writing other values for stored times is not supported.
func (b *Backend) AppendSamples(ctx context.Context, samples []telemetry.Sample) (int64, error) {
	if b.o.API != APIVictoriaMetrics || b.o.Mapping != nil {
		return 0, fmt.Errorf("append samples: %w: sanwatch writes samples only to a VictoriaMetrics import API without a mapping", ErrReadOnly)
	}
	if len(samples) == 0 {
		return 0, nil
	}
	type keyed struct {
		k   seriesKey
		ms  int64
		v   float64
		pos int
	}
	latest := time.Now().Add(MaxFutureSkew)
	ks := make([]keyed, len(samples))
	for i, s := range samples {
		if s.Box == "" || s.Component == "" || s.Metric == "" {
			return 0, fmt.Errorf("append samples: sample %d: empty box, component or metric", i)
		}
		if s.Time.IsZero() {
			return 0, fmt.Errorf("append samples: sample %d of %s: zero time", i, s.Box)
		}
		if s.Time.Before(time.Unix(0, 0)) || s.Time.After(latest) {
			return 0, fmt.Errorf("append samples: sample %d of %s: time %s outside 1970..now+%s: the engine keeps no other times",
				i, s.Box, s.Time.UTC().Format(time.RFC3339Nano), MaxFutureSkew)
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			return 0, fmt.Errorf("append samples: sample %d of %s: value %v is not a finite number", i, s.Box, s.Value)
		}
		ks[i] = keyed{k: seriesKey{s.Box, s.Component, s.Metric}, ms: s.Time.UnixMilli(), v: s.Value, pos: i}
	}
	slices.SortFunc(ks, func(a, c keyed) int {
		return cmp.Or(strings.Compare(a.k.box, c.k.box), strings.Compare(a.k.component, c.k.component),
			strings.Compare(a.k.metric, c.k.metric), cmp.Compare(a.ms, c.ms), cmp.Compare(a.pos, c.pos))
	})
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	var n int64
	var line importLine
	var cur seriesKey
	flush := func() error {
		if len(line.Values) == 0 {
			return nil
		}
		n += int64(len(line.Values))
		err := enc.Encode(line)
		line.Values, line.Timestamps = nil, nil
		return err
	}
	for i, k := range ks {
		if i+1 < len(ks) && ks[i+1].k == k.k && ks[i+1].ms == k.ms {
			continue // a later sample of the same series and millisecond wins
		}
		if len(line.Values) == 0 || cur != k.k {
			cur = k.k
			if err := flush(); err != nil {
				return 0, fmt.Errorf("append samples: encode: %w", err)
			}
			line = importLine{Metric: map[string]string{
				"__name__": SeriesName(k.k.metric), LabelBox: k.k.box, LabelComponent: k.k.component, LabelMetric: k.k.metric,
			}}
		}
		line.Values = append(line.Values, k.v)
		line.Timestamps = append(line.Timestamps, k.ms)
	}
	if err := flush(); err != nil {
		return 0, fmt.Errorf("append samples: encode: %w", err)
	}
	resp, err := b.request(ctx, "/api/v1/import", nil, &body)
	if err != nil {
		return 0, fmt.Errorf("append samples: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if b.o.FlushAfterWrite {
		if err := b.Flush(ctx); err != nil {
			return 0, fmt.Errorf("append samples: %w", err)
		}
	}
	return n, nil
}

// Flush makes written samples searchable now (VictoriaMetrics
// /internal/force_flush); without it they are within a few seconds.
func (b *Backend) Flush(ctx context.Context) error {
	resp, err := b.request(ctx, "/internal/force_flush", nil, nil)
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// DeleteSamplesBefore deletes nothing and returns 0: the engine keeps its
// own retention (VictoriaMetrics -retentionPeriod, Prometheus
// --storage.tsdb.retention.time), which is where samples age out; its
// delete API removes whole series, not the samples before a time.
func (b *Backend) DeleteSamplesBefore(_ context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("delete samples before %s: %w (got %d)", before.Format(time.RFC3339), store.ErrBadLimit, limit)
	}
	return 0, nil
}

// Compact does nothing: the engine merges and frees its own storage.
func (b *Backend) Compact(context.Context) error { return nil }

// formatSeconds writes a time as Unix seconds with milliseconds, the form
// both engines take for start, end and time.
func formatSeconds(ms int64) string {
	s := strconv.FormatInt(ms/1000, 10)
	frac := ms % 1000
	if frac < 0 {
		return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
	}
	return fmt.Sprintf("%s.%03d", s, frac)
}
