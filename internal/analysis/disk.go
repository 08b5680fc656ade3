package analysis

import (
	"fmt"
	"strings"

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

// diskSignal is one reason to think a disk is failing: a SMART counter
// that grew, a level that is high, a gauge that ran low.
type diskSignal struct {
	metric string
	title  string // e.g. "reallocated sectors +12 in 30 days"
	prose  string // a clause of the problem statement
	strong bool   // makes the finding critical on its own
}

// diskCounters are the SMART counters whose growth predicts failure, with
// the name used in titles and the threshold key of the growth that counts.
var diskCounters = []struct {
	metric, name, key string
}{
	{telemetry.DiskReallocatedSectors, "reallocated sectors", "min_delta"},
	{telemetry.DiskReportedUncorrectable, "reported uncorrectable errors (SMART 187)", "uncorrectable_delta"},
	{telemetry.DiskOfflineUncorrectable, "offline uncorrectable sectors (SMART 198)", "uncorrectable_delta"},
	{telemetry.DiskMediaErrors, "media errors", "media_delta"},
}

// diskRule finds disks that are likely to fail, from the SMART counters
// that predict it (reallocated 5, reported uncorrectable 187, offline
// uncorrectable 198, pending 197, NVMe media errors and available spare)
// over the rule's history (30 days by default), on 5-minute and daily data
// alike: a counter that grew (reallocated sectors by min_delta in at least
// min_steps intervals, uncorrectables and media errors by any), pending
// sectors at pending_min or more for the last pending_points points,
// reallocated sectors at realloc_level or more, or NVMe spare below
// min_spare_pct. Critical when reallocated sectors grew by critical_delta,
// the spare ran low, or two signals agree. Counter resets (a replaced disk)
// and reads that dip to zero are not growth.
func diskRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	metrics := []string{telemetry.DiskReallocatedSectors, telemetry.DiskPendingSectors, telemetry.DiskReportedUncorrectable,
		telemetry.DiskOfflineUncorrectable, telemetry.DiskMediaErrors, telemetry.DiskAvailableSparePct}
	for _, comp := range in.componentsWithAny(metrics...) {
		_, name := componentName(comp)
		days := in.end.Sub(in.start).Hours() / 24
		span := fmt.Sprintf("%.0f days", days)
		if days < 3 {
			span = fmt.Sprintf("%.0fh", in.end.Sub(in.start).Hours())
		}
		var sigs []diskSignal
		var nums []finding.Number
		var lead series
		critical := false
		for _, c := range diskCounters {
			sr, ok := in.get(comp, c.metric)
			if !ok {
				continue
			}
			v := sr.values()
			delta, steps := counterGrowth(v)
			now := v[len(v)-1]
			short := strings.SplitN(c.metric, ".", 2)[1]
			nums = append(nums, num(short+"_now", now, "count"), num(short+"_delta", delta, "count"))
			minSteps := 1
			if c.metric == telemetry.DiskReallocatedSectors {
				minSteps = int(th["min_steps"])
			}
			if delta >= th[c.key] && steps >= minSteps {
				sigs = append(sigs, diskSignal{metric: c.metric,
					title:  fmt.Sprintf("%s +%.0f in %s", c.name, delta, span),
					prose:  fmt.Sprintf("%s grew by %.0f in %d separate intervals over the last %s (now %.0f)", c.name, delta, steps, span, now),
					strong: c.metric == telemetry.DiskReallocatedSectors && delta >= th["critical_delta"]})
				if lead.pts == nil {
					lead = sr
				}
			} else if c.metric == telemetry.DiskReallocatedSectors && th["realloc_level"] > 0 && level(v) >= th["realloc_level"] {
				sigs = append(sigs, diskSignal{metric: c.metric,
					title: fmt.Sprintf("reallocated sectors at %.0f", level(v)),
					prose: fmt.Sprintf("%.0f sectors have been reallocated (at least %.0f is a failing surface even when the count holds still)", level(v), th["realloc_level"])})
				if lead.pts == nil {
					lead = sr
				}
			}
		}
		if sr, ok := in.get(comp, telemetry.DiskPendingSectors); ok {
			v := sr.values()
			n := int(th["pending_points"])
			run := tailRun(v, func(x float64) bool { return x >= th["pending_min"] })
			nums = append(nums, num("pending_sectors_now", v[len(v)-1], "sectors"))
			if len(v) >= n && run >= n {
				sigs = append(sigs, diskSignal{metric: telemetry.DiskPendingSectors,
					title: fmt.Sprintf("pending sectors at %.0f", v[len(v)-1]),
					prose: fmt.Sprintf("%.0f sectors are pending reallocation (unreadable) and have been for the last %d readings", v[len(v)-1], run)})
				if lead.pts == nil {
					lead = sr
				}
			}
		}
		if sr, ok := in.get(comp, telemetry.DiskAvailableSparePct); ok {
			now := sr.last().Value
			nums = append(nums, num("available_spare_now", now, "%"))
			if now < th["min_spare_pct"] {
				sigs = append(sigs, diskSignal{metric: telemetry.DiskAvailableSparePct,
					title: fmt.Sprintf("spare capacity at %.0f%%", now),
					prose: fmt.Sprintf("its spare capacity is down to %.0f%% (below %.0f%%)", now, th["min_spare_pct"]), strong: true})
				if lead.pts == nil {
					lead = sr
				}
			}
		}
		if len(sigs) == 0 {
			continue
		}
		sev := finding.Warning
		for _, s := range sigs {
			critical = critical || s.strong
		}
		if critical || len(sigs) >= 2 {
			sev = finding.Critical
		}
		prose := make([]string, len(sigs))
		for i, s := range sigs {
			prose[i] = s.prose
		}
		title := fmt.Sprintf("disk %s %s", name, sigs[0].title)
		if len(sigs) > 1 {
			title += fmt.Sprintf(" (+%d more signs)", len(sigs)-1)
		}
		problem := fmt.Sprintf("Disk %s of %s shows the SMART signs that precede most drive failures: %s. A disk in this state usually fails within days to weeks.",
			name, in.box.ID, strings.Join(prose, "; "))
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
