package analysis

import (
	"fmt"
	"math"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// wearRule flags SSDs whose wear (median of the newest points) is at
// warning_pct or critical_pct, or whose robust wear trend reaches 100%
// within forecast_days.
func wearRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	for _, comp := range in.components(telemetry.DiskWearPct) {
		s, _ := in.get(comp, telemetry.DiskWearPct)
		cur := level(s.values())
		toFull := math.Inf(1)
		slope := 0.0
		if len(s.pts) >= int(th["min_points"]) {
			if sl, ok := trend(s.pts); ok && sl > 0 {
				slope = sl
				toFull = max(0, (100-cur)/sl)
			}
		}
		var sev finding.Severity
		switch {
		case cur >= th["critical_pct"]:
			sev = finding.Critical
		case cur >= th["warning_pct"] || toFull < th["forecast_days"]:
			sev = finding.Warning
		default:
			continue
		}
		_, name := componentName(comp)
		title := fmt.Sprintf("SSD disk %s wear %.0f%%", name, cur)
		problem := fmt.Sprintf("SSD disk %s of %s has used %.1f%% of its rated write endurance", name, in.box.ID, cur)
		nums := []finding.Number{num("wear", cur, "%"), num("slope", slope, "%/day")}
		var tti time.Duration
		by := "soon"
		if finite(toFull) {
			at := s.last().Time.Add(days(toFull))
			by = "before " + stamp(at)
			title += fmt.Sprintf(" (100%% in %s)", fmtDays(toFull))
			problem += fmt.Sprintf(" and wears %.2f%% per day: it reaches 100%% on %s, in %s", slope, stamp(at), fmtDays(toFull))
			nums = append(nums, num("days_to_worn_out", toFull, "days"), num("worn_out_at", float64(at.Unix()), "unix_s"))
			tti = days(toFull)
		}
		problem += ". A worn-out SSD turns read-only or fails."
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  sev,
			Title:     title,
			Problem:   problem,
			Evidence:  finding.Evidence{Metric: telemetry.DiskWearPct, Numbers: nums, Series: s.excerpt()},
			Remediation: []string{
				fmt.Sprintf("Order a replacement SSD for disk %s of %s and swap it %s: copy it to a hot spare first (proactive sparing), then replace it.", name, in.box.ID, by),
				fmt.Sprintf("Check which volumes write most to the pool of disk %s; move write-heavy volumes to disks with more endurance left.", name),
				"Check the other SSDs of the same batch and pool: they have usually worn at the same rate.",
			},
			TimeToImpact: tti,
		})
	}
	return out
}
