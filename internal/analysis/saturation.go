package analysis

import (
	"fmt"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// saturationRule flags controller nodes whose CPU stayed at busy_pct or
// more for the last sustain_points points.
func saturationRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	n := int(th["sustain_points"])
	for _, comp := range in.components(telemetry.NodeCPUBusyPct) {
		s, _ := in.get(comp, telemetry.NodeCPUBusyPct)
		pred := func(v float64) bool { return v >= th["busy_pct"] }
		last, ok := sustained(s, n, pred)
		if !ok {
			continue
		}
		cur := medianOf(last)
		run := tailRun(s.values(), pred)
		dur := s.last().Time.Sub(s.pts[len(s.pts)-run].Time) + s.step()
		_, name := componentName(comp)
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  finding.Warning,
			Title:     fmt.Sprintf("node %s CPU %.0f%% busy for %s", name, cur, fmtDuration(dur)),
			Problem: fmt.Sprintf("Controller node %s of %s has been %.0f%% busy for %s (at least %g%% in every one of the last %d samples): it has no headroom left, so any burst or a failover of the partner node will push host latency up.",
				name, in.box.ID, cur, fmtDuration(dur), th["busy_pct"], run),
			Evidence: finding.Evidence{Metric: telemetry.NodeCPUBusyPct, Numbers: []finding.Number{
				num("cpu_busy", cur, "%"), num("busy_limit", th["busy_pct"], "%"), num("duration", dur.Minutes(), "min"),
			}, Series: s.excerpt(), Limit: limitOf(th["busy_pct"]), LimitLabel: "busy limit", SpanFrom: s.last().Time.Add(-dur), SpanTo: s.last().Time},
			Remediation: []string{
				fmt.Sprintf("Find the volumes and hosts driving node %s of %s (top volumes by IOPS) and move some of them to the partner node.", name, in.box.ID),
				"Check for background work on the node: RAID rebuilds, deduplication or compression jobs, snapshot deletion, replication resyncs; reschedule them off peak.",
				"If the load is permanent, plan more controller capacity (a larger model or another array) before a node failover has to carry it alone.",
			},
		})
	}
	return out
}
