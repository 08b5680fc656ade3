package analysis

import (
	"fmt"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// counterGrowth sums the reset-aware increases of a counter and counts the
// intervals that increased.
func counterGrowth(vals []float64) (delta float64, steps int) {
	for _, d := range counterDeltas(vals) {
		if d > 0 {
			delta += d
			steps++
		}
	}
	return delta, steps
}

// diskRule finds disks whose SMART-style counters keep growing: reallocated
// sectors up by min_delta in at least min_steps intervals, or pending
// sectors above zero for pending_points points and above where they started.
// Critical when reallocated sectors grew by critical_delta or media errors
// grew as well.
func diskRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	for _, comp := range in.componentsWithAny(telemetry.DiskReallocatedSectors, telemetry.DiskPendingSectors) {
		var (
			realloc, pending           series
			rDelta, mDelta             float64
			rSteps                     int
			rNow, pNow, pStart         float64
			reallocHit, pendingHit     bool
			hasRealloc, hasPending, ok bool
		)
		if realloc, hasRealloc = in.get(comp, telemetry.DiskReallocatedSectors); hasRealloc {
			v := realloc.values()
			rDelta, rSteps = counterGrowth(v)
			rNow = v[len(v)-1]
			reallocHit = rDelta >= th["min_delta"] && rSteps >= int(th["min_steps"])
		}
		if pending, hasPending = in.get(comp, telemetry.DiskPendingSectors); hasPending {
			v := pending.values()
			n := int(th["pending_points"])
			pStart, pNow = v[0], v[len(v)-1]
			pendingHit = len(v) > n && tailRun(v, func(x float64) bool { return x > 0 && x > pStart }) >= n
		}
		if !reallocHit && !pendingHit {
			continue
		}
		var media series
		if media, ok = in.get(comp, telemetry.DiskMediaErrors); ok {
			mDelta, _ = counterGrowth(media.values())
		}
		_, name := componentName(comp)
		hours := in.end.Sub(in.start).Hours()
		sev := finding.Warning
		if rDelta >= th["critical_delta"] || mDelta > 0 {
			sev = finding.Critical
		}
		lead, title := realloc, fmt.Sprintf("disk %s reallocated sectors +%.0f in %.0fh", name, rDelta, hours)
		if !reallocHit {
			lead, title = pending, fmt.Sprintf("disk %s pending sectors rising to %.0f", name, pNow)
		}
		problem := fmt.Sprintf("Disk %s of %s is remapping failing sectors:", name, in.box.ID)
		if hasRealloc {
			problem += fmt.Sprintf(" reallocated sectors grew by %.0f in %d separate intervals over the last %.0f hours (now %.0f);", rDelta, rSteps, hours, rNow)
		}
		if hasPending && (pStart != 0 || pNow != 0) {
			problem += fmt.Sprintf(" pending sectors went from %.0f to %.0f;", pStart, pNow)
		}
		if mDelta > 0 {
			problem += fmt.Sprintf(" media errors grew by %.0f;", mDelta)
		}
		problem = problem[:len(problem)-1] + ". A disk in this state usually fails within days to weeks."
		nums := []finding.Number{
			num("reallocated_delta", rDelta, "sectors"),
			num("reallocated_steps", float64(rSteps), "intervals"),
			num("reallocated_now", rNow, "sectors"),
		}
		if hasPending {
			nums = append(nums, num("pending_now", pNow, "sectors"), num("pending_delta", pNow-pStart, "sectors"))
		}
		nums = append(nums, num("media_errors_delta", mDelta, "errors"))
		rem := []string{
			fmt.Sprintf("Copy disk %s of %s to a hot spare now (proactive sparing or copy-back) and replace it; do not wait for it to fail, because a second failure during a rebuild can lose data.", name, in.box.ID),
			fmt.Sprintf("Check that the RAID group of disk %s has a healthy spare and that no other disk in it shows growing reallocated or pending sectors.", name),
		}
		if temp, ok := in.get(comp, telemetry.DiskTemperatureC); ok {
			t := level(temp.values())
			nums = append(nums, num("temperature", t, "C"))
			rem = append(rem, fmt.Sprintf("Check the enclosure of disk %s: it runs at %.0f C; check fans and airflow if it is above 50 C.", name, t))
		}
		out = append(out, finding.Finding{
			Component:   comp,
			Severity:    sev,
			Title:       title,
			Problem:     problem,
			Evidence:    finding.Evidence{Metric: lead.metric, Numbers: nums, Series: lead.excerpt()},
			Remediation: rem,
		})
	}
	return out
}
