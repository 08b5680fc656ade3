package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// latencySeries is a healthy latency around base with diurnal swing and
// noise, multiplied by factor from onset (points counts from the end when
// negative).
func latencySeries(base, factor float64, onset int) func(int, *rand.Rand) float64 {
	return func(i int, r *rand.Rand) float64 {
		v := base * (1 + 0.15*diurnal(i)) * (1 + noise(r, 0.1))
		if i >= onset {
			v *= factor
		}
		return v
	}
}

func TestLatencyRule(t *testing.T) {
	const vol = "volume/vol03"
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "read latency x5 from onset",
			box:  healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1.1, 5, onsetIndex)),
			want: []want{{finding.RuleLatency, vol, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.Regexp(t, `^volume vol03 read latency [45]\.\dx baseline for 12\.\d hours$`, f.Title)
				require.Equal(t, telemetry.VolumeReadLatencyMs, f.Evidence.Metric)
				require.InDelta(t, 5, findNumber(t, f, "ratio"), 0.6)
				require.InDelta(t, 1.1, findNumber(t, f, "baseline_median"), 0.15)
				require.Greater(t, findNumber(t, f, "z_score"), 6.0)
				require.Contains(t, f.Remediation[1], "IOPS did not rise")
			},
		},
		{
			name: "small write latency x4 is still found",
			box:  healthyBox().set(vol, telemetry.VolumeWriteLatencyMs, latencySeries(0.3, 4, onsetIndex)),
			want: []want{{finding.RuleLatency, vol, finding.Warning}},
		},
		{
			name: "x12 is critical and names both read and write",
			box: healthyBox().set(vol, telemetry.VolumeWriteLatencyMs, latencySeries(0.5, 12, onsetIndex)).
				set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1, 4, onsetIndex)),
			want: []want{{finding.RuleLatency, vol, finding.Critical}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Contains(t, fs[0].Title, "write latency")
				require.Contains(t, fs[0].Problem, "Read latency is up too")
			},
		},
		{
			name: "a single spike is not a finding",
			box:  healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1, 20, points-1)),
		},
		{
			name: "five high points are not sustained",
			box:  healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1, 8, points-5)),
		},
		{
			name: "six high points are",
			box:  healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1, 8, points-6)),
			want: []want{{finding.RuleLatency, vol, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Contains(t, fs[0].Title, "baseline for 30 min")
			},
		},
		{
			name: "higher IOPS with the latency suggests overload",
			box: healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1, 5, onsetIndex)).
				set(vol, telemetry.VolumeIOPS, latencySeries(2000, 3, onsetIndex)),
			want: []want{{finding.RuleLatency, vol, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Contains(t, fs[0].Remediation[1], "the volume is overloaded")
			},
		},
		{
			name:    "per-box min_ratio 6 silences x5",
			box:     healthyBox().set(vol, telemetry.VolumeReadLatencyMs, latencySeries(1.1, 5, onsetIndex)),
			options: override(finding.RuleLatency, "min_ratio", 6),
		},
	}
	runRuleCases(t, cases)
}
