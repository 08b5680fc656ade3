package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// wearing is an SSD wear percentage starting at start and growing perDay.
func wearing(start, perDay float64) func(int, *rand.Rand) float64 {
	return func(i int, r *rand.Rand) float64 {
		return start + perDay*float64(i)*interval.Hours()/24 + noise(r, 0.02)
	}
}

func TestWearRule(t *testing.T) {
	const disk = "disk/3"
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "90% and rising is a warning with a forecast",
			box:  healthyBox().set(disk, telemetry.DiskWearPct, wearing(89, 0.5)),
			want: []want{{finding.RuleSSDWear, disk, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.InDelta(t, 0.5, findNumber(t, f, "slope"), 0.1)
				require.InDelta(t, 20, f.TimeToImpact.Hours()/24, 4)
				require.Regexp(t, `^SSD disk 3 wear 90% \(100% in \d+ days\)$`, f.Title)
			},
		},
		{
			name: "96% is critical",
			box:  healthyBox().set(disk, telemetry.DiskWearPct, wearing(96, 0.1)),
			want: []want{{finding.RuleSSDWear, disk, finding.Critical}},
		},
		{
			name: "70% wearing 2% a day reaches 100% within 30 days",
			box:  healthyBox().set(disk, telemetry.DiskWearPct, wearing(70, 2)),
			want: []want{{finding.RuleSSDWear, disk, finding.Warning}},
		},
		{
			name: "a single reading of 99% is ignored",
			box: healthyBox().set(disk, telemetry.DiskWearPct, func(i int, _ *rand.Rand) float64 {
				if i == points-1 {
					return 99
				}
				return 40
			}),
		},
		{
			name: "per-box thresholds silence 90%",
			box:  healthyBox().set(disk, telemetry.DiskWearPct, wearing(89, 0.5)),
			options: Options{Overrides: map[string]Thresholds{testBox: {finding.RuleSSDWear: {
				"warning_pct": 95, "critical_pct": 99, "forecast_days": 7,
			}}}},
		},
	}
	runRuleCases(t, cases)
}
