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

// sustainedGrowth reports whether each of the last n intervals of s
// increased (reset-aware) and together by at least minSum.
func sustainedGrowth(s series, n int, minSum float64) growth {
	g := growth{s: s}
	d := counterDeltas(s.values())
	for _, x := range d {
		g.window += x
	}
	if len(d) < n {
		return g
	}
	ok := true
	for _, x := range d[len(d)-n:] {
		g.recent += x
		ok = ok && x > 0
	}
	g.hit = ok && g.recent >= minSum
	g.duration = s.last().Time.Sub(s.pts[len(s.pts)-1-n].Time)
	return g
}

// portRule flags ports whose CRC error or link reset counters grew in every
// one of the last sustain_points intervals, by min_errors (min_resets) in
// total. Link resets make it critical: they stall I/O on every path.
func portRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	var out []finding.Finding
	n := int(th["sustain_points"])
	for _, comp := range in.componentsWithAny(telemetry.PortCRCErrors, telemetry.PortLinkResets) {
		var crc, lr growth
		if s, ok := in.get(comp, telemetry.PortCRCErrors); ok {
			crc = sustainedGrowth(s, n, th["min_errors"])
		}
		if s, ok := in.get(comp, telemetry.PortLinkResets); ok {
			lr = sustainedGrowth(s, n, th["min_resets"])
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
			problem += fmt.Sprintf(" counted %.0f CRC errors in the last %s, more in every interval (%.0f in the whole window)", crc.recent, fmtDuration(crc.duration), crc.window)
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
			Evidence:  finding.Evidence{Metric: lead.s.metric, Numbers: nums, Series: lead.s.excerpt()},
			Remediation: []string{
				fmt.Sprintf("Replace the cable and the SFP of port %s on %s, and clean the fiber connectors on both ends.", name, in.box.ID),
				fmt.Sprintf("Check the switch port connected to %s: its error counters and the SFP receive power on both sides.", name),
				fmt.Sprintf("If errors continue, move the hosts' paths to another port and disable port %s until it is repaired; check multipath so no host is left on a single path.", name),
			},
		})
	}
	return out
}
