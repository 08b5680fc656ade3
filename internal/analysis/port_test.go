package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// errorCounter counts from base and, from onset, gains +lo..+hi every interval.
func errorCounter(base float64, onset, lo, hi int) func(int, *rand.Rand) float64 {
	v := base
	return func(i int, r *rand.Rand) float64 {
		if i == 0 {
			v = base
		}
		if i >= onset {
			v += float64(lo + r.IntN(hi-lo+1))
		}
		return v
	}
}

func TestPortRule(t *testing.T) {
	const port = "port/0:2:1"
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "CRC errors every interval",
			box:  healthyBox().set(port, telemetry.PortCRCErrors, errorCounter(200, onsetIndex, 5, 50)),
			want: []want{{finding.RulePortErrors, port, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.Regexp(t, `^port 0:2:1 CRC errors \+\d+ in 6\.0 hours$`, f.Title)
				require.Contains(t, f.Remediation[0], "Replace the cable and the SFP of port 0:2:1 on box-0042")
			},
		},
		{
			name: "the slowest contract fault, +5 per interval",
			box:  healthyBox().set(port, telemetry.PortCRCErrors, errorCounter(200, onsetIndex, 5, 5)),
			want: []want{{finding.RulePortErrors, port, finding.Warning}},
		},
		{
			name: "link resets make it critical",
			box: healthyBox().set(port, telemetry.PortCRCErrors, errorCounter(200, onsetIndex, 5, 50)).
				set(port, telemetry.PortLinkResets, errorCounter(2, onsetIndex, 1, 2)),
			want: []want{{finding.RulePortErrors, port, finding.Critical}},
		},
		{
			name: "a counter reset to zero",
			box: healthyBox().set(port, telemetry.PortCRCErrors, func(i int, _ *rand.Rand) float64 {
				if i >= points-3 {
					return 0
				}
				return 5000
			}),
		},
		{
			name: "a reset followed by slow counting",
			box: healthyBox().set(port, telemetry.PortCRCErrors, func(i int, _ *rand.Rand) float64 {
				if i >= points-10 {
					return float64(i - (points - 10) + 40)
				}
				return 5000
			}),
		},
		{
			name: "one burst of 500",
			box: healthyBox().set(port, telemetry.PortCRCErrors, func(i int, _ *rand.Rand) float64 {
				if i >= points-2 {
					return 700
				}
				return 200
			}),
		},
		{
			name:    "per-box min_errors 5000",
			box:     healthyBox().set(port, telemetry.PortCRCErrors, errorCounter(200, onsetIndex, 5, 50)),
			options: override(finding.RulePortErrors, "min_errors", 5000),
		},
	}
	runRuleCases(t, cases)
}
