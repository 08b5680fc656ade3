package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// excerptPoints is how many points of the offending series a finding keeps.
const excerptPoints = 48

// series is the points of one metric of one component, in time order.
type series struct {
	component, metric string
	pts               []telemetry.Sample
}

// values returns the values of s.
func (s series) values() []float64 {
	out := make([]float64, len(s.pts))
	for i, p := range s.pts {
		out[i] = p.Value
	}
	return out
}

// last returns the newest point of s; s must not be empty.
func (s series) last() telemetry.Sample { return s.pts[len(s.pts)-1] }

// excerpt returns the last (at most excerptPoints) points of s.
func (s series) excerpt() []finding.Point {
	pts := s.pts[max(0, len(s.pts)-excerptPoints):]
	out := make([]finding.Point, len(pts))
	for i, p := range pts {
		out[i] = finding.Point{Time: p.Time, Value: p.Value}
	}
	return out
}

// step returns the median spacing of the last points of s, or 0.
func (s series) step() time.Duration {
	pts := s.pts[max(0, len(s.pts)-excerptPoints):]
	if len(pts) < 2 {
		return 0
	}
	d := make([]float64, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		d[i-1] = float64(pts[i].Time.Sub(pts[i-1].Time))
	}
	return time.Duration(median(d))
}

// input is one box's window, grouped into series, as the rules see it.
type input struct {
	box        fleet.Box
	start, end time.Time
	now        time.Time // the fleet's clock (Window.Now)
	series     []series
	index      map[string]int // component + "\x00" + metric -> series
}

// get returns the series of metric on component.
func (in *input) get(component, metric string) (series, bool) {
	i, ok := in.index[component+"\x00"+metric]
	if !ok {
		return series{}, false
	}
	return in.series[i], true
}

// components returns the components that report metric, in order.
func (in *input) components(metric string) []string {
	var out []string
	for _, s := range in.series {
		if s.metric == metric {
			out = append(out, s.component)
		}
	}
	return out
}

// componentsWithAny returns the components that report any of metrics, in order.
func (in *input) componentsWithAny(metrics ...string) []string {
	var out []string
	for _, s := range in.series {
		if slices.Contains(metrics, s.metric) && (len(out) == 0 || out[len(out)-1] != s.component) {
			out = append(out, s.component)
		}
	}
	return out
}

// newInput groups w's samples into series. Samples are expected ordered by
// component, metric, time (as the store returns them); any other order is
// sorted first. Non-finite values are dropped. Start and End default to the
// first sample and just after the last one.
func newInput(w Window) *input {
	in := &input{box: w.Box, start: w.Start, end: w.End, now: w.Now}
	samples := w.Samples
	clean := true
	for i := range samples {
		if v := samples[i].Value; v-v != 0 { // NaN or ±Inf
			clean = false
			break
		}
	}
	if !clean {
		samples = slices.DeleteFunc(slices.Clone(samples), func(s telemetry.Sample) bool { return !finite(s.Value) })
	}
	if !group(in, samples) {
		if clean {
			samples = slices.Clone(samples)
		}
		slices.SortStableFunc(samples, sampleOrder)
		group(in, samples)
	}
	if in.start.IsZero() || in.end.IsZero() {
		var lo, hi time.Time
		for _, s := range in.series {
			if first := s.pts[0].Time; lo.IsZero() || first.Before(lo) {
				lo = first
			}
			if last := s.last().Time; last.After(hi) {
				hi = last
			}
		}
		if in.start.IsZero() {
			in.start = lo
		}
		if in.end.IsZero() && !hi.IsZero() {
			in.end = hi.Add(time.Second)
		}
	}
	return in
}

// since returns a view of in with only the points at or after from (and
// start moved up to from). The points are shared, not copied.
func (in *input) since(from time.Time) *input {
	out := &input{box: in.box, start: from, end: in.end, now: in.now, index: map[string]int{}}
	var earliest, first time.Time
	for _, s := range in.series {
		i, _ := slices.BinarySearchFunc(s.pts, from, func(p telemetry.Sample, t time.Time) int { return p.Time.Compare(t) })
		if i == len(s.pts) {
			continue
		}
		out.index[s.component+"\x00"+s.metric] = len(out.series)
		out.series = append(out.series, series{component: s.component, metric: s.metric, pts: s.pts[i:]})
		if first = s.pts[i].Time; earliest.IsZero() || first.Before(earliest) {
			earliest = first
		}
	}
	if earliest.After(from) && earliest.Before(in.start) {
		out.start = earliest // less history than asked for: the window is what there is
	} else if earliest.After(from) {
		out.start = in.start
	}
	return out
}

// group splits samples into runs of one component and metric. It reports
// false, leaving in without series, when samples are not ordered by
// component, metric, time.
func group(in *input, samples []telemetry.Sample) bool {
	in.series, in.index = nil, map[string]int{}
	for i := 0; i < len(samples); {
		c, m := samples[i].Component, samples[i].Metric
		j := i + 1
		for j < len(samples) && samples[j].Component == c && samples[j].Metric == m {
			if !samples[j].Time.After(samples[j-1].Time) {
				in.series = nil
				return false
			}
			j++
		}
		if n := len(in.series); n > 0 {
			p := in.series[n-1]
			if c < p.component || (c == p.component && m <= p.metric) {
				in.series = nil
				return false
			}
		}
		in.index[c+"\x00"+m] = len(in.series)
		in.series = append(in.series, series{component: c, metric: m, pts: samples[i:j:j]})
		i = j
	}
	return true
}

// sampleOrder orders samples by component, metric, time.
func sampleOrder(a, b telemetry.Sample) int {
	if c := strings.Compare(a.Component, b.Component); c != 0 {
		return c
	}
	if c := strings.Compare(a.Metric, b.Metric); c != 0 {
		return c
	}
	return a.Time.Compare(b.Time)
}

// componentName splits "pool/ssd_r6" into "pool" and "ssd_r6". A component
// without a slash has no kind.
func componentName(component string) (kind, name string) {
	if k, n, ok := strings.Cut(component, "/"); ok {
		return k, n
	}
	return "", component
}

// label names a component in prose: "pool ssd_r6", "port 0:1:1".
func label(component string) string {
	kind, name := componentName(component)
	if kind == "" {
		return name
	}
	return kind + " " + name
}

// fmtBytes formats a byte count with binary units: "2.1 TiB".
func fmtBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for ; i < len(units)-1 && (b >= 1024 || b <= -1024); i++ {
		b /= 1024
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// fmtDuration formats a duration for people: "30 min", "5.5 hours", "12 days".
func fmtDuration(d time.Duration) string {
	switch {
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0f min", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	default:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
}

// days converts a number of days into a duration, capped at 100 years so it
// never overflows.
func days(d float64) time.Duration {
	const maxDays = 36500
	return time.Duration(min(d, maxDays) * float64(24*time.Hour))
}

// stamp formats a time for prose: "2026-07-18 14:05 UTC".
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// sortFindings orders findings by fingerprint.
func sortFindings(fs []finding.Finding) {
	slices.SortStableFunc(fs, func(a, b finding.Finding) int {
		return cmp.Compare(a.Fingerprint(), b.Fingerprint())
	})
}
