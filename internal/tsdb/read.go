package tsdb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// ErrTooManyPoints is returned by a read that would return more than
// Options.MaxPoints samples: retrying does not help; a shorter window or a
// higher samples.max_points does.
var ErrTooManyPoints = errors.New("too many points")

// maxRowsPerLine bounds one line of an export, so that one long series is
// never held whole in memory before it is counted.
const maxRowsPerLine = 10_000

// Prometheus refuses a query_range of more than 11,000 points a series.
const maxStepsPerSeries = 10_000

// minStep is the smallest step of a query_range: finer than exporters scrape.
const minStep = 15 * time.Second

// series is one series read back: its labels and samples in time order.
type series struct {
	labels     map[string]string
	timestamps []int64 // milliseconds
	values     []float64
}

// quote returns s as a PromQL string literal.
func quote(s string) string { return strconv.Quote(s) }

// nativeSelector selects sanwatch's own series of a box, of one kind of
// component when kind is not empty.
func nativeSelector(box, kind string) string {
	sel := `{__name__=~"` + NamePrefix + `.+",` + LabelBox + `=` + quote(box)
	if kind != "" {
		sel += `,` + LabelComponent + `=~` + quote(regexp.QuoteMeta(kind+"/")+".*")
	}
	return sel + "}"
}

// msRange turns [from, to) into the inclusive millisecond range the engines
// take, or ok false when it is empty. Times before 1970 are 1970; times
// beyond what the engine accepts are cut there.
func msRange(from, to time.Time) (lo, hi int64, ok bool) {
	ceil := func(t time.Time) int64 {
		if t.Before(time.Unix(0, 0)) {
			return 0
		}
		if limit := time.Now().Add(MaxFutureSkew + time.Hour); t.After(limit) {
			t = limit
		}
		ms := t.UnixMilli()
		if time.UnixMilli(ms).Before(t) {
			ms++
		}
		return ms
	}
	lo, hi = ceil(from), ceil(to)-1
	return lo, hi, hi >= lo && to.After(from)
}

// read returns the series matching selector with samples in [lo, hi] ms,
// raw (export) or stepped (query_range), counting points against max.
func (b *Backend) read(ctx context.Context, selector string, lo, hi int64, budget *int) ([]series, error) {
	if b.o.API == APIPrometheus {
		return b.queryRange(ctx, selector, lo, hi, budget)
	}
	return b.export(ctx, selector, lo, hi, budget)
}

// export reads raw samples with /api/v1/export, a JSON line per series
// part, decoded one line at a time.
func (b *Backend) export(ctx context.Context, selector string, lo, hi int64, budget *int) ([]series, error) {
	q := url.Values{"match[]": {selector}, "start": {formatSeconds(lo)}, "end": {formatSeconds(hi)},
		"max_rows_per_line": {strconv.Itoa(maxRowsPerLine)}}
	resp, err := b.request(ctx, "/api/v1/export", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	byKey := map[string]int{}
	var out []series
	for {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []*float64        `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := dec.Decode(&line); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("export: decode: %w", err)
		}
		if len(line.Values) != len(line.Timestamps) {
			return nil, fmt.Errorf("export: %d values for %d timestamps", len(line.Values), len(line.Timestamps))
		}
		if *budget -= len(line.Values); *budget < 0 {
			return nil, ErrTooManyPoints
		}
		key := labelKey(line.Metric)
		i, seen := byKey[key]
		if !seen {
			i = len(out)
			byKey[key] = i
			out = append(out, series{labels: line.Metric})
		}
		for j, v := range line.Values {
			if v == nil || line.Timestamps[j] < lo || line.Timestamps[j] > hi {
				continue
			}
			out[i].timestamps = append(out[i].timestamps, line.Timestamps[j])
			out[i].values = append(out[i].values, *v)
		}
	}
	return out, nil
}

// queryRange reads with /api/v1/query_range at a step that keeps each
// series under the engine's limit; the body is bounded by max.
func (b *Backend) queryRange(ctx context.Context, selector string, lo, hi int64, budget *int) ([]series, error) {
	span := time.Duration(hi-lo) * time.Millisecond
	step := max(minStep, (span/maxStepsPerSeries).Round(time.Second)+time.Second)
	q := url.Values{"query": {selector}, "start": {formatSeconds(lo)}, "end": {formatSeconds(hi)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	resp, err := b.request(ctx, "/api/v1/query_range", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// A point is at least ~20 bytes of JSON: a body beyond 64 bytes a
	// point of what is left is too many points.
	limit := int64(*budget)*64 + 4096
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("query_range: read: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, ErrTooManyPoints
	}
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query_range: decode: %w", err)
	}
	out := make([]series, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		if *budget -= len(res.Values); *budget < 0 {
			return nil, ErrTooManyPoints
		}
		s := series{labels: res.Metric}
		for _, p := range res.Values {
			ts, _ := p[0].(float64)
			str, _ := p[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("query_range: value %q: %w", str, err)
			}
			s.timestamps = append(s.timestamps, int64(math.Round(ts*1000)))
			s.values = append(s.values, v)
		}
		out = append(out, s)
	}
	return out, nil
}

// labelKey is a stable key of a label set.
func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(k)
		sb.WriteByte(0)
		sb.WriteString(l[k])
		sb.WriteByte(0)
	}
	return sb.String()
}

// Window returns box's samples with from <= time < to, ordered by
// component, metric, time. A window of more than MaxPoints samples fails
// with ErrTooManyPoints.
func (b *Backend) Window(ctx context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	w, err := b.window(ctx, box, "", from, to)
	if err != nil {
		return nil, fmt.Errorf("window of %s: %w", box, err)
	}
	return w, nil
}

// WindowKind is Window restricted to the components of one kind.
func (b *Backend) WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	w, err := b.window(ctx, box, kind, from, to)
	if err != nil {
		return nil, fmt.Errorf("%s window of %s: %w", kind, box, err)
	}
	return w, nil
}

func (b *Backend) window(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	lo, hi, ok := msRange(from, to)
	if !ok {
		return nil, nil
	}
	budget := b.o.MaxPoints
	var out []telemetry.Sample
	if b.o.Mapping != nil {
		for _, e := range b.o.Mapping.Entries {
			ss, err := b.read(ctx, e.boxSelector(e.BoxLabel, box), lo, hi, &budget)
			if err != nil {
				return nil, b.readErr(err, e.where(), from, to)
			}
			for _, s := range ss {
				comp, err := e.componentOf(s.labels)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", e.where(), err)
				}
				if kind != "" && !strings.HasPrefix(comp, kind+"/") {
					continue
				}
				out = appendSeries(out, box, comp, e.Metric, e.scale(), s)
			}
		}
	} else {
		ss, err := b.read(ctx, nativeSelector(box, kind), lo, hi, &budget)
		if err != nil {
			return nil, b.readErr(err, "", from, to)
		}
		for _, s := range ss {
			out = appendSeries(out, box, s.labels[LabelComponent], s.labels[LabelMetric], 1, s)
		}
	}
	slices.SortStableFunc(out, func(x, y telemetry.Sample) int {
		return cmp.Or(strings.Compare(x.Component, y.Component), strings.Compare(x.Metric, y.Metric), x.Time.Compare(y.Time))
	})
	// The engine keeps samples written twice for one time until it
	// deduplicates: keep the last read of each time.
	return slices.CompactFunc(out, func(x, y telemetry.Sample) bool {
		return x.Component == y.Component && x.Metric == y.Metric && x.Time.Equal(y.Time)
	}), nil
}

func (b *Backend) readErr(err error, where string, from, to time.Time) error {
	if where != "" {
		where += ": "
	}
	if errors.Is(err, ErrTooManyPoints) {
		return fmt.Errorf("%s%s to %s holds more than samples.max_points = %d points: shorten analysis.window or raise samples.max_points: %w",
			where, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), b.o.MaxPoints, ErrTooManyPoints)
	}
	return fmt.Errorf("%s%w", where, err)
}

func appendSeries(out []telemetry.Sample, box, comp, metric string, scale float64, s series) []telemetry.Sample {
	for i, ms := range s.timestamps {
		out = append(out, telemetry.Sample{Time: time.UnixMilli(ms).UTC(), Box: box, Component: comp, Metric: metric, Value: s.values[i] * scale})
	}
	return out
}

// lookbacks are the windows LatestSample tries, nearest first, before the
// whole time since 1970.
var lookbacks = []time.Duration{3 * 24 * time.Hour, 62 * 24 * time.Hour}

// promLookbacks are the windows LatestSample tries with the Prometheus
// API: a box silent for longer has no data there.
var promLookbacks = []time.Duration{3 * 24 * time.Hour, 31 * 24 * time.Hour}

// LatestSample returns the time of box's newest sample, or an error
// wrapping store.ErrNotFound.
func (b *Backend) LatestSample(ctx context.Context, box string) (time.Time, error) {
	var sels []string
	if b.o.Mapping != nil {
		for _, e := range b.o.Mapping.Entries {
			sels = append(sels, e.boxSelector(e.BoxLabel, box))
		}
	} else {
		sels = []string{nativeSelector(box, "")}
	}
	at := time.Now().Add(MaxFutureSkew).Truncate(time.Second)
	all := time.Duration(at.Unix()/86400) * 24 * time.Hour
	tries := append(slices.Clone(lookbacks), all)
	if b.o.API == APIPrometheus {
		// A subquery's steps must not skip a sample (5 minutes of
		// lookback each) and must stay few: up to 31 days back.
		at, tries = time.Now().Add(time.Minute).Truncate(time.Second), promLookbacks
	}
	for _, lb := range tries {
		var newest float64
		for _, sel := range sels {
			v, found, err := b.instant(ctx, b.latestQuery(sel, lb), at)
			if err != nil {
				return time.Time{}, fmt.Errorf("latest sample of %s: %w", box, err)
			}
			if found && v > newest {
				newest = v
			}
		}
		if newest > 0 {
			return time.UnixMilli(int64(math.Round(newest * 1000))).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("latest sample of %s: %w", box, store.ErrNotFound)
}

// latestQuery returns the time of the newest sample of sel over lookback,
// in seconds: VictoriaMetrics has tlast_over_time; Prometheus a subquery.
func (b *Backend) latestQuery(sel string, lookback time.Duration) string {
	d := strconv.FormatInt(int64(lookback/time.Second), 10) + "s"
	if b.o.API == APIPrometheus {
		step := "1m"
		if lookback > 3*24*time.Hour {
			step = "5m"
		}
		return "max(max_over_time(timestamp(" + sel + ")[" + d + ":" + step + "]))"
	}
	return "max(tlast_over_time(" + sel + "[" + d + "]))"
}

// instant runs an instant query whose answer is one number.
func (b *Backend) instant(ctx context.Context, query string, at time.Time) (float64, bool, error) {
	resp, err := b.request(ctx, "/api/v1/query", url.Values{"query": {query}, "time": {strconv.FormatInt(at.Unix(), 10)}}, nil)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return 0, false, fmt.Errorf("query: decode: %w", err)
	}
	if len(r.Data.Result) == 0 {
		return 0, false, nil
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, false, fmt.Errorf("query: value %q: %w", str, err)
	}
	return v, !math.IsNaN(v), nil
}

// CountSamples returns how many of sanwatch's own samples the engine holds.
// It reads every sample's count over all time: for reports (Stats), not for
// a hot path. With a mapping it returns 0: the samples are not sanwatch's.
func (b *Backend) CountSamples(ctx context.Context) (int64, error) {
	if b.o.Mapping != nil {
		return 0, nil
	}
	at := time.Now().Add(MaxFutureSkew).Truncate(time.Second)
	d := strconv.FormatInt(at.Unix()/86400, 10) + "d"
	v, _, err := b.instant(ctx, `sum(count_over_time({__name__=~"`+NamePrefix+`.+"}[`+d+`]))`, at)
	if err != nil {
		return 0, fmt.Errorf("count samples: %w", err)
	}
	return int64(v), nil
}
