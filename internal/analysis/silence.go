package analysis

import (
	"fmt"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// SilentComponent is the component of a silent-box finding: the box's
// telemetry as a whole.
const SilentComponent = "box/telemetry"

// silentRule flags a box whose newest sample is behind the fleet's clock
// (Window.Now) by factor times its usual cadence and at least min_minutes:
// a box that stopped sending is the first thing its owner wants to know.
// The cadence is the median interval of the box's most frequent series.
func silentRule(in *input, th map[string]float64, _ []Advisory) []finding.Finding {
	if in.now.IsZero() || len(in.series) == 0 {
		return nil
	}
	var last time.Time
	var lead series
	for _, s := range in.series {
		if t := s.last().Time; t.After(last) {
			last = t
		}
		if len(s.pts) > len(lead.pts) {
			lead = s
		}
	}
	cadence := lead.step()
	if cadence <= 0 {
		cadence = 5 * time.Minute
	}
	silence := in.now.Sub(last)
	limit := max(time.Duration(th["factor"]*float64(cadence)), time.Duration(th["min_minutes"]*float64(time.Minute)))
	if silence < limit {
		return nil
	}
	return []finding.Finding{{
		Component: SilentComponent,
		Severity:  finding.Critical,
		Title:     fmt.Sprintf("%s has sent nothing for %s", in.box.ID, fmtDuration(silence)),
		Problem: fmt.Sprintf("%s has sent no telemetry since %s, %s ago (it usually reports every %s; the rest of the fleet has reported up to %s). "+
			"Either the box is down or cut off, or its phone-home path is broken; either way nothing on it is being watched.",
			in.box.ID, stamp(last), fmtDuration(silence), fmtDuration(cadence), stamp(in.now)),
		Evidence: finding.Evidence{Metric: lead.metric, Numbers: []finding.Number{
			num("silent_minutes", silence.Minutes(), "min"),
			num("cadence_minutes", cadence.Minutes(), "min"),
			num("last_sample", float64(last.Unix()), "unix_s"),
		}, Series: lead.excerpt(), SpanFrom: last, SpanTo: in.now},
		TimeToImpact: 0,
		Remediation: []string{
			fmt.Sprintf("Check that %s is up: its management interface, its controllers' status LEDs, the site's power and network.", in.box.ID),
			fmt.Sprintf("If it is up, check its telemetry path to sanwatch: the phone-home or collector service on the box, the proxy or firewall between, and the sanwatch receiver's logs for %s.", in.box.ID),
			"This finding resolves by itself when the box reports again.",
		},
	}}
}
