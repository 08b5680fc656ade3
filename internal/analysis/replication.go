package analysis

import (
	"fmt"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// replicationRule flags replication groups whose lag stayed above rpo_s for
// the last sustain_points points; critical beyond critical_factor * rpo_s.
func replicationRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	n := int(th["sustain_points"])
	rpo := th["rpo_s"]
	for _, comp := range in.components(telemetry.ReplicationLagS) {
		s, _ := in.get(comp, telemetry.ReplicationLagS)
		pred := func(v float64) bool { return v > rpo }
		last, ok := sustained(s, n, pred)
		if !ok {
			continue
		}
		cur := medianOf(last)
		sev := finding.Warning
		if cur > th["critical_factor"]*rpo {
			sev = finding.Critical
		}
		since := s.pts[len(s.pts)-tailRun(s.values(), pred)].Time
		slope, _ := trend(s.pts[len(s.pts)-len(last):])
		_, name := componentName(comp)
		trendText := "steady"
		if slope > 0 {
			trendText = fmt.Sprintf("still growing by about %.0f s per hour", slope/24)
		} else if slope < 0 {
			trendText = fmt.Sprintf("shrinking by about %.0f s per hour", -slope/24)
		}
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  sev,
			Title:     fmt.Sprintf("replication %s lag %s (RPO %s)", name, fmtSeconds(cur), fmtSeconds(rpo)),
			Problem: fmt.Sprintf("Replication group %s of %s has been %s behind since %s, over its recovery point objective of %s; the lag is %s. A site failure now would lose that much data.",
				name, in.box.ID, fmtSeconds(cur), stamp(since), fmtSeconds(rpo), trendText),
			Evidence: finding.Evidence{Metric: telemetry.ReplicationLagS, Numbers: []finding.Number{
				num("lag", cur, "s"), num("rpo", rpo, "s"), num("lag_over_rpo", cur/rpo, "x"),
				num("lag_slope", slope/24, "s/hour"), num("since", float64(since.Unix()), "unix_s"),
			}, Series: s.excerpt(), Limit: limitOf(rpo), LimitLabel: "RPO", SpanFrom: since, SpanTo: s.last().Time},
			Remediation: []string{
				fmt.Sprintf("Check the replication link of group %s on %s: bandwidth use, packet loss and errors on the replication ports, and the state of the remote array.", name, in.box.ID),
				fmt.Sprintf("Check whether a write burst on the volumes of group %s (a bulk load, a reindex) exceeds the link; throttle it or raise the link bandwidth.", name),
				"If the group is suspended or in error, resume it and watch the lag shrink; if it cannot catch up, schedule a resync off peak.",
			},
		})
	}
	return out
}

// fmtSeconds formats seconds for people: "45 s", "62 min", "3.5 hours".
func fmtSeconds(s float64) string {
	switch {
	case s < 120:
		return fmt.Sprintf("%.0f s", s)
	case s < 7200:
		return fmt.Sprintf("%.0f min", s/60)
	default:
		return fmt.Sprintf("%.1f hours", s/3600)
	}
}
