package analysis

import (
	"fmt"
	"math"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// levelPoints is how many of the newest points give a series' current level
// (their median), so one noisy point cannot move it.
const levelPoints = 6

// level returns the median of the last levelPoints values.
func level(vals []float64) float64 {
	return medianOf(vals[max(0, len(vals)-levelPoints):])
}

// trend fits a robust line through pts: slope per day, with times counted
// in days before the newest point.
func trend(pts []telemetry.Sample) (slopePerDay float64, ok bool) {
	if len(pts) < 2 {
		return 0, false
	}
	last := pts[len(pts)-1].Time
	ts := make([]float64, len(pts))
	vs := make([]float64, len(pts))
	for i, p := range pts {
		ts[i] = p.Time.Sub(last).Hours() / 24
		vs[i] = p.Value
	}
	slope, _, ok := theilSen(ts, vs)
	return slope, ok
}

// sameHoursYesterday returns the trend of s over the h hours that ended 24
// hours before from+h, when the window has at least minPoints there.
func sameHoursYesterday(s series, from time.Time, h float64, minPoints int) (float64, bool) {
	lo := from.Add(-24 * time.Hour)
	hi := lo.Add(time.Duration(h * float64(time.Hour)))
	var pts []telemetry.Sample
	for _, p := range s.pts {
		if !p.Time.Before(lo) && !p.Time.After(hi) {
			pts = append(pts, p)
		}
	}
	if len(pts) < minPoints {
		return 0, false
	}
	return trend(pts)
}

// capacityRule forecasts when each pool is full: a robust trend of
// pool.used_bytes over the whole window and over the last recent_hours (the
// steeper wins, so a growth that started late in the window is not averaged
// away), against the newest pool.total_bytes.
func capacityRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	minPoints := int(th["min_points"])
	for _, comp := range in.components(telemetry.PoolUsedBytes) {
		used, _ := in.get(comp, telemetry.PoolUsedBytes)
		tot, ok := in.get(comp, telemetry.PoolTotalBytes)
		if !ok || len(used.pts) < minPoints {
			continue
		}
		total := level(tot.values())
		if total <= 0 {
			continue
		}
		vals := used.values()
		current := level(vals)
		slope, ok := trend(used.pts)
		if !ok {
			continue
		}
		basis := "the whole window"
		if h := th["recent_hours"]; h > 0 {
			from := used.last().Time.Add(-time.Duration(h * float64(time.Hour)))
			i := len(used.pts)
			for i > 0 && !used.pts[i-1].Time.Before(from) {
				i--
			}
			if len(used.pts)-i >= minPoints {
				if s, ok := trend(used.pts[i:]); ok {
					// A pool that fills every day and empties every night
					// rises in the recent hours too: only what it rises
					// beyond the same hours of the day before is growth.
					// Without those hours (a box with about a day of
					// history) the recent slope is part of the cycle and
					// is not used.
					y, ok := sameHoursYesterday(used, from, h, minPoints)
					if ok {
						s = slope + (s - y)
					}
					if ok && s > slope {
						slope, basis = s, fmt.Sprintf("the last %g hours", h)
					}
				}
			}
		}
		usedPct := current / total * 100
		// Pools fill by day and free by night (backups, snapshots, batch
		// jobs): less than a day of history is a slice of that cycle, whose
		// trend says nothing about the months ahead. A new box is judged
		// once min_history_hours have come in, unless it is full already.
		// The history covered counts each point's own interval: a day of
		// 5-minute points spans 23h55m from first to last, and covers 24h.
		n := len(used.pts)
		covered := used.last().Time.Sub(used.pts[0].Time) * time.Duration(n) / time.Duration(max(n-1, 1))
		if covered < time.Duration(th["min_history_hours"]*float64(time.Hour)) && usedPct < th["critical_used_pct"] {
			continue
		}
		daysToFull := math.Inf(1)
		if slope > 0 {
			daysToFull = max(0, (total-current)/slope)
		}
		full := usedPct >= th["critical_used_pct"]
		var sev finding.Severity
		switch {
		case full || daysToFull < th["critical_days"]:
			sev = finding.Critical
		case daysToFull < th["warning_days"]:
			sev = finding.Warning
		default:
			continue
		}
		_, name := componentName(comp)
		title := fmt.Sprintf("pool %s full in %s (%.0f%% used)", name, fmtDays(daysToFull), usedPct)
		if full && daysToFull >= th["warning_days"] {
			title = fmt.Sprintf("pool %s %.0f%% full", name, usedPct)
		}
		problem := fmt.Sprintf("Pool %s on %s is %.1f%% full (%s of %s) and grows %s/day (%.2f%% of capacity per day, robust trend over %s).",
			name, in.box.ID, usedPct, fmtBytes(current), fmtBytes(total), fmtBytes(slope), slope/total*100, basis)
		nums := []finding.Number{
			num("used", current, "bytes"),
			num("total", total, "bytes"),
			num("used_pct", usedPct, "%"),
			num("slope", slope, "bytes/day"),
			num("slope_pct", slope/total*100, "%/day"),
		}
		var tti time.Duration
		if finite(daysToFull) {
			fullAt := used.last().Time.Add(days(daysToFull))
			problem += fmt.Sprintf(" At this rate it is full on %s, in %s.", stamp(fullAt), fmtDays(daysToFull))
			nums = append(nums, num("days_to_full", daysToFull, "days"), num("full_at", float64(fullAt.Unix()), "unix_s"))
			tti = days(daysToFull)
		}
		plan := th["plan_days"]
		limit := th["critical_used_pct"] / 100
		need := (current+max(slope, 0)*plan)/max(limit, 0.01) - total
		rem := []string{
			fmt.Sprintf("Expand pool %s on %s by at least %s (forecast need to day %g, keeping it under %g%% used): add disks or grow the pool from the array's management interface.",
				name, in.box.ID, fmtBytes(max(need, 0)), plan, th["critical_used_pct"]),
			fmt.Sprintf("Or move volumes off pool %s to a pool with free space, starting with the fastest-growing ones, until %s is freed.", name, fmtBytes(max(need, 0))),
			fmt.Sprintf("Check for runaway snapshots and thin volumes on pool %s: list snapshots by size and age, delete expired ones, and check the snapshot schedule and retention of the volumes that grew the most.", name),
		}
		if need > 0 {
			nums = append(nums, num("expand_by", need, "bytes"))
		}
		out = append(out, finding.Finding{
			Component:    comp,
			Severity:     sev,
			Title:        title,
			Problem:      problem,
			Evidence:     capacityEvidence(used, nums, total, current, slope, daysToFull),
			Remediation:  rem,
			TimeToImpact: tti,
		})
	}
	return out
}

// fmtDays formats a number of days for a title: "14 hours", "5 days".
func fmtDays(d float64) string {
	switch {
	case !finite(d):
		return "never"
	case d < 2:
		return fmt.Sprintf("%.0f hours", d*24)
	default:
		return fmt.Sprintf("%.0f days", d)
	}
}

// capacityEvidence is the evidence of a capacity finding, with the pool's
// capacity as the limit line and the forecast drawn to the day it is full.
func capacityEvidence(used series, nums []finding.Number, total, current, slope, daysToFull float64) finding.Evidence {
	ev := finding.Evidence{Metric: telemetry.PoolUsedBytes, Numbers: nums, Series: used.excerpt(), Limit: &total, LimitLabel: "capacity"}
	if slope > 0 && daysToFull > 0 && daysToFull < 3650 {
		last := used.last().Time
		ev.Forecast = []finding.Point{
			{Time: last, Value: current},
			{Time: last.Add(time.Duration(daysToFull * float64(24*time.Hour))), Value: total},
		}
	}
	return ev
}
