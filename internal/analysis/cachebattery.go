package analysis

import (
	"fmt"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// sustained returns the last n values of s when all of them satisfy ok.
func sustained(s series, n int, ok func(float64) bool) ([]float64, bool) {
	v := s.values()
	if n < 1 || len(v) < n || tailRun(v, ok) < n {
		return nil, false
	}
	return v[len(v)-n:], true
}

// cacheBatteryRule flags cache batteries whose charge stayed under
// min_charge_pct for sustain_points points (critical under
// critical_charge_pct), and nodes whose write cache stayed more than
// max_write_pending_pct full.
func cacheBatteryRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	n := int(th["sustain_points"])
	for _, comp := range in.components(telemetry.BatteryChargePct) {
		s, _ := in.get(comp, telemetry.BatteryChargePct)
		last, ok := sustained(s, n, func(v float64) bool { return v < th["min_charge_pct"] })
		if !ok {
			continue
		}
		cur := medianOf(last)
		sev := finding.Warning
		if cur < th["critical_charge_pct"] {
			sev = finding.Critical
		}
		_, name := componentName(comp)
		since := s.pts[len(s.pts)-tailRun(s.values(), func(v float64) bool { return v < th["min_charge_pct"] })].Time
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  sev,
			Title:     fmt.Sprintf("cache battery %s at %.0f%% charge", name, cur),
			Problem: fmt.Sprintf("Cache battery %s of %s has been at %.0f%% charge since %s, under the %g%% needed to protect the write cache; on a power loss, cached writes may be lost, and the array may switch to write-through (slow writes).",
				name, in.box.ID, cur, stamp(since), th["min_charge_pct"]),
			Evidence: finding.Evidence{Metric: telemetry.BatteryChargePct, Numbers: []finding.Number{
				num("charge", cur, "%"), num("min_charge", th["min_charge_pct"], "%"), num("since", float64(since.Unix()), "unix_s"),
			}, Series: s.excerpt(), Limit: limitOf(th["min_charge_pct"]), LimitLabel: "minimum charge", SpanFrom: since, SpanTo: s.last().Time},
			Remediation: []string{
				fmt.Sprintf("Replace cache battery %s of %s (order the FRU for model %s).", name, in.box.ID, orUnknown(in.box.Model)),
				"Until it is replaced, check the array's event log for a charger fault and whether write caching was disabled; plan for lower write performance.",
				"Check that the controller enclosure is not running hot: heat shortens battery life.",
			},
		})
	}
	for _, comp := range in.components(telemetry.CacheWritePendingPct) {
		s, _ := in.get(comp, telemetry.CacheWritePendingPct)
		last, ok := sustained(s, n, func(v float64) bool { return v > th["max_write_pending_pct"] })
		if !ok {
			continue
		}
		cur := medianOf(last)
		_, name := componentName(comp)
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  finding.Warning,
			Title:     fmt.Sprintf("node %s write cache %.0f%% pending", name, cur),
			Problem: fmt.Sprintf("The write cache of node %s of %s has stayed %.0f%% full of data not yet written to disk for the last %d samples (limit %g%%): the back end cannot keep up, and hosts will soon see write latency climb as the cache throttles them.",
				name, in.box.ID, cur, n, th["max_write_pending_pct"]),
			Evidence: finding.Evidence{Metric: telemetry.CacheWritePendingPct, Numbers: []finding.Number{
				num("write_pending", cur, "%"), num("max_write_pending", th["max_write_pending_pct"], "%"),
			}, Series: s.excerpt()},
			Remediation: []string{
				fmt.Sprintf("Find the volumes with the most writes on node %s of %s and rate-limit or move the heaviest ones.", name, in.box.ID),
				fmt.Sprintf("Check the back end of node %s: a failing or rebuilding disk, or a full pool, slows destaging.", name),
				"Check the cache batteries: a weak battery can force cache write-through and destage storms.",
			},
		})
	}
	return out
}

// orUnknown returns s, or "unknown" when s is empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
