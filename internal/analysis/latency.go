package analysis

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// anomaly is a sustained departure of a series from its baseline.
type anomaly struct {
	s                     series
	kind                  string // "read" or "write"
	base, spread, current float64
	ratio, z              float64
	hasZ                  bool
	run                   int
	limit                 float64 // the baseline's limit a point must exceed
	since                 time.Time
	duration              time.Duration
}

// baselineSplit returns how many leading points of s fall in the first half
// of the window.
func (in *input) baselineSplit(s series) int {
	mid := in.start.Add(in.end.Sub(in.start) / 2)
	n := 0
	for n < len(s.pts) && s.pts[n].Time.Before(mid) {
		n++
	}
	return n
}

// detectAnomaly compares the newest points of s with the median and MAD of
// the first half of the window. It reports an anomaly when the last
// sustain_points points all exceed median + max(z*1.4826*MAD, min_delta_ms)
// and min_ratio times the median.
func detectAnomaly(in *input, s series, th map[string]float64) (anomaly, bool) {
	nb := in.baselineSplit(s)
	sustain := int(th["sustain_points"])
	if nb < int(th["min_baseline_points"]) || len(s.pts)-nb < sustain {
		return anomaly{}, false
	}
	vals := s.values()
	base := medianOf(vals[:nb])
	if base <= 0 {
		return anomaly{}, false
	}
	m := mad(vals[:nb], base)
	limit := base + max(th["z"]*madScale*m, th["min_delta_ms"])
	floor := th["min_ratio"] * base
	// A point is anomalous when it is above the window's baseline and also
	// above what this volume usually does at this time of day (and of the
	// week): a backup that runs every night is its normal, not a finding.
	run := 0
	for i := len(vals) - 1; i >= nb; i-- {
		v := vals[i]
		if v <= limit || v < floor || seasonallyNormal(s, i, th) {
			break
		}
		run++
	}
	if run < sustain {
		return anomaly{}, false
	}
	cur := medianOf(vals[len(vals)-run:])
	a := anomaly{s: s, base: base, spread: m, current: cur, ratio: cur / base, run: run, limit: max(limit, floor)}
	if m > 0 {
		a.z, a.hasZ = (cur-base)/(madScale*m), true
	}
	a.since = s.pts[len(s.pts)-run].Time
	a.duration = s.last().Time.Sub(a.since) + s.step()
	return a, true
}

// seasonTolerance is how far from the same time of an earlier day a point
// may be to count as that time's reference.
const seasonTolerance = 20 * time.Minute

// seasonallyNormal reports whether point i of s is within what the series
// usually does at that time of day (the median of the same time on up to six
// earlier days, so one odd day does not make a pattern once there are more)
// or at the same time of the week, one to three weeks before.
func seasonallyNormal(s series, i int, th map[string]float64) bool {
	t, v := s.pts[i].Time, s.pts[i].Value
	var daily, weekly []float64
	for k := 1; k <= 21; k++ {
		ref, ok := s.valueNear(t.Add(-time.Duration(k)*24*time.Hour), seasonTolerance)
		if !ok {
			continue
		}
		if k <= 6 {
			daily = append(daily, ref)
		}
		if k%7 == 0 {
			weekly = append(weekly, ref)
		}
	}
	within := func(refs []float64) bool {
		med := medianOf(refs)
		return v <= med*1.5+max(th["z"]*madScale*mad(refs, med), th["min_delta_ms"])
	}
	return (len(daily) >= 1 && within(daily)) || (len(weekly) >= 1 && within(weekly))
}

// valueNear returns the value of the point of s closest to t, if one is
// within tol.
func (s series) valueNear(t time.Time, tol time.Duration) (float64, bool) {
	i, _ := slices.BinarySearchFunc(s.pts, t, func(p telemetry.Sample, t time.Time) int { return p.Time.Compare(t) })
	best, bestD := 0.0, tol+1
	for _, j := range []int{i - 1, i} {
		if j < 0 || j >= len(s.pts) {
			continue
		}
		if d := absDuration(s.pts[j].Time.Sub(t)); d < bestD {
			best, bestD = s.pts[j].Value, d
		}
	}
	return best, bestD <= tol
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// latencyRule finds volumes whose read or write latency left its baseline
// for sustain_points points. One finding per volume: the worse of read and
// write leads, the other is mentioned.
func latencyRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	for _, comp := range in.componentsWithAny(telemetry.VolumeReadLatencyMs, telemetry.VolumeWriteLatencyMs) {
		var found []anomaly
		for _, m := range []struct{ metric, kind string }{
			{telemetry.VolumeReadLatencyMs, "read"},
			{telemetry.VolumeWriteLatencyMs, "write"},
		} {
			s, ok := in.get(comp, m.metric)
			if !ok {
				continue
			}
			if a, ok := detectAnomaly(in, s, th); ok {
				a.kind = m.kind
				found = append(found, a)
			}
		}
		if len(found) == 0 {
			continue
		}
		a := found[0]
		if len(found) == 2 && found[1].ratio > a.ratio {
			a, found[1] = found[1], found[0]
		}
		_, name := componentName(comp)
		sev := finding.Warning
		if a.ratio >= th["critical_ratio"] {
			sev = finding.Critical
		}
		title := fmt.Sprintf("volume %s %s latency %.1fx baseline for %s", name, a.kind, a.ratio, fmtDuration(a.duration))
		problem := fmt.Sprintf("%s latency of volume %s on %s has been %.2f ms since %s (%d samples, %s), %.1fx its baseline median of %.2f ms",
			capitalize(a.kind), name, in.box.ID, a.current, stamp(a.since), a.run, fmtDuration(a.duration), a.ratio, a.base)
		if a.hasZ {
			problem += fmt.Sprintf(" (%.0f robust standard deviations above it)", a.z)
		}
		problem += "."
		if len(found) == 2 {
			o := found[1]
			problem += fmt.Sprintf(" %s latency is up too: %.2f ms, %.1fx its baseline of %.2f ms.", capitalize(o.kind), o.current, o.ratio, o.base)
		}
		nums := []finding.Number{
			num("baseline_median", a.base, "ms"),
			num("baseline_mad", a.spread, "ms"),
			num("current", a.current, "ms"),
			num("ratio", a.ratio, "x"),
			num("delta", a.current-a.base, "ms"),
			num("duration", a.duration.Minutes(), "min"),
			num("onset", float64(a.since.Unix()), "unix_s"),
		}
		if a.hasZ {
			nums = append(nums, num("z_score", a.z, "sigma"))
		}
		rem := []string{
			fmt.Sprintf("Find what changed on volume %s of %s around %s: a new host workload, a snapshot, clone or replication job, or a RAID rebuild in its pool.", name, in.box.ID, stamp(a.since)),
		}
		if iops, ok := in.get(comp, telemetry.VolumeIOPS); ok {
			nb := in.baselineSplit(iops)
			if v := iops.values(); nb > 0 && nb < len(v) {
				ib, ic := medianOf(v[:nb]), medianOf(v[len(v)-min(a.run, len(v)-nb):])
				nums = append(nums, num("iops_baseline", ib, "iops"), num("iops_current", ic, "iops"))
				if ic > 1.5*ib {
					rem = append(rem, fmt.Sprintf("IOPS rose from %.0f to %.0f with the latency: the volume is overloaded. Rate-limit the busiest host (QoS), spread the volume over more disks or move it to a faster pool.", ib, ic))
				} else {
					rem = append(rem, fmt.Sprintf("IOPS did not rise (%.0f before, %.0f now): the back end got slower. Check the disks of its pool (failing disk, rebuild), the controller (CPU busy, write cache pending) and the array's event log.", ib, ic))
				}
			}
		}
		rem = append(rem, fmt.Sprintf("Check the paths to volume %s: CRC errors or link resets on the array ports that map it, and the multipath state on its hosts.", name))
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  sev,
			Title:     title,
			Problem:   problem,
			Evidence: finding.Evidence{Metric: a.s.metric, Numbers: nums, Series: a.s.excerpt(), Limit: &a.limit,
				LimitLabel: "baseline limit", SpanFrom: a.since, SpanTo: a.s.last().Time},
			Remediation: rem,
		})
	}
	return out
}

// capitalize upper-cases the first letter of an ASCII word.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
