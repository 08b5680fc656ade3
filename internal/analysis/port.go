package analysis

import (
	"fmt"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// growth is the recent growth of a counter.
type growth struct {
	s        series
	recent   float64 // increase over the last sustain intervals
	window   float64 // increase over the whole window
	hit      bool
	duration time.Duration
}

// rateGrowth measures a counter over its recent span: the last hours (or,
// when that holds fewer, the last n+1 points), reset-aware. It hits when the
// counter grew by minSum over the span in at least n separate intervals:
// errors that come in bursts count, a single burst does not.
func rateGrowth(s series, hours float64, n int, minSum float64) growth {
	g := growth{s: s}
	vals := s.values()
	for _, x := range counterDeltas(vals) {
		g.window += x
	}
	from := s.last().Time.Add(-time.Duration(hours * float64(time.Hour)))
	i := len(s.pts) - 1
	for i > 0 && s.pts[i-1].Time.After(from) {
		i--
	}
	if len(s.pts)-i < n+1 {
		i = len(s.pts) - 1 - n
	}
	i = max(i, 1) // the first interval ends at point i
	if i >= len(s.pts) {
		return g
	}
	active := 0
	for k := i; k < len(vals); k++ {
		// Only increases count: a reset (the counter cleared) or a dip is
		// no evidence of new errors, whatever value it restarts from.
		if x := vals[k] - vals[k-1]; x > 0 {
			g.recent += x
			active++
		}
	}
	g.hit = active >= n && g.recent >= minSum
	g.duration = s.last().Time.Sub(s.pts[i-1].Time)
	return g
}

// portRule flags ports whose CRC error or link reset counters grew over the
// last rate_hours by min_errors (min_resets), in at least sustain_points
// separate intervals, judged by rate so that errors in bursts count. Link
// resets make it critical: they stall I/O on every path.
func portRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	n := int(th["sustain_points"])
	for _, comp := range in.componentsWithAny(telemetry.PortCRCErrors, telemetry.PortLinkResets) {
		var crc, lr growth
		if s, ok := in.get(comp, telemetry.PortCRCErrors); ok {
			crc = rateGrowth(s, th["rate_hours"], n, th["min_errors"])
		}
		if s, ok := in.get(comp, telemetry.PortLinkResets); ok {
			lr = rateGrowth(s, th["rate_hours"], n, th["min_resets"])
		}
		if !crc.hit && !lr.hit {
			continue
		}
		_, name := componentName(comp)
		lead, sev := crc, finding.Warning
		title := fmt.Sprintf("port %s CRC errors +%.0f in %s", name, crc.recent, fmtDuration(crc.duration))
		if lr.hit {
			sev = finding.Critical
			if !crc.hit {
				lead = lr
				title = fmt.Sprintf("port %s link resets +%.0f in %s", name, lr.recent, fmtDuration(lr.duration))
			}
		}
		problem := fmt.Sprintf("Port %s of %s", name, in.box.ID)
		var nums []finding.Number
		if crc.hit {
			problem += fmt.Sprintf(" counted %.0f CRC errors in the last %s, with errors in at least %d separate intervals (%.0f in the whole window)", crc.recent, fmtDuration(crc.duration), n, crc.window)
			nums = append(nums, num("crc_errors_recent", crc.recent, "errors"), num("crc_errors_window", crc.window, "errors"),
				num("crc_errors_rate", crc.recent/crc.duration.Minutes(), "errors/min"))
		}
		if lr.hit {
			if crc.hit {
				problem += " and"
			}
			problem += fmt.Sprintf(" reset its link %.0f times in the last %s (%.0f in the whole window)", lr.recent, fmtDuration(lr.duration), lr.window)
			nums = append(nums, num("link_resets_recent", lr.recent, "resets"), num("link_resets_window", lr.window, "resets"))
		}
		problem += ". Growing CRC errors and link resets mean a bad cable, SFP or connector; hosts see retries and latency, then path failures."
		nums = append(nums, num("intervals", float64(n), "intervals"))
		out = append(out, finding.Finding{
			Component: comp,
			Severity:  sev,
			Title:     title,
			Problem:   problem,
			Evidence: finding.Evidence{Metric: lead.s.metric, Numbers: nums, Series: lead.s.excerpt(),
				SpanFrom: lead.s.last().Time.Add(-lead.duration), SpanTo: lead.s.last().Time},
			Remediation: []string{
				fmt.Sprintf("Replace the cable and the SFP of port %s on %s, and clean the fiber connectors on both ends.", name, in.box.ID),
				fmt.Sprintf("Check the switch port connected to %s: its error counters and the SFP receive power on both sides.", name),
				fmt.Sprintf("If errors continue, move the hosts' paths to another port and disable port %s until it is repaired; check multipath so no host is left on a single path.", name),
			},
		})
	}
	return out
}
