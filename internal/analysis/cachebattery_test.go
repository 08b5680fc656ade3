package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// stepTo returns a generator that is healthy before onset and near v after.
func stepTo(onset int, healthy, v float64) func(int, *rand.Rand) float64 {
	return func(i int, r *rand.Rand) float64 {
		if i >= onset {
			return v + noise(r, 1)
		}
		return healthy + noise(r, 2)
	}
}

func TestCacheBatteryRule(t *testing.T) {
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "battery at 30% is a warning on the battery",
			box:  healthyBox().set("battery/1", telemetry.BatteryChargePct, stepTo(onsetIndex, 97, 30)),
			want: []want{{finding.RuleCacheBattery, "battery/1", finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Equal(t, "cache battery 1 at 30% charge", fs[0].Title)
				require.Contains(t, fs[0].Remediation[0], "Replace cache battery 1 of box-0042")
			},
		},
		{
			name: "battery at 12% is critical",
			box:  healthyBox().set("battery/0", telemetry.BatteryChargePct, stepTo(onsetIndex, 97, 12)),
			want: []want{{finding.RuleCacheBattery, "battery/0", finding.Critical}},
		},
		{
			name: "write cache 90% pending is a finding on the node",
			box:  healthyBox().set("node/1", telemetry.CacheWritePendingPct, stepTo(onsetIndex, 20, 90)),
			want: []want{{finding.RuleCacheBattery, "node/1", finding.Warning}},
		},
		{
			name: "one low battery reading",
			box:  healthyBox().set("battery/0", telemetry.BatteryChargePct, stepTo(points-1, 97, 10)),
		},
		{
			name:    "per-box min_charge_pct 20 accepts 30%",
			box:     healthyBox().set("battery/1", telemetry.BatteryChargePct, stepTo(onsetIndex, 97, 30)),
			options: Options{Overrides: map[string]Thresholds{testBox: {finding.RuleCacheBattery: {"min_charge_pct": 20, "critical_charge_pct": 10}}}},
		},
	}
	runRuleCases(t, cases)
}

func TestSaturationRule(t *testing.T) {
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "cpu 95% from onset",
			box:  healthyBox().set("node/0", telemetry.NodeCPUBusyPct, stepTo(onsetIndex, 40, 95)),
			want: []want{{finding.RuleSaturation, "node/0", finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Regexp(t, `^node 0 CPU 9\d% busy for 12\.\d hours$`, fs[0].Title)
			},
		},
		{
			name: "eleven busy points are not sustained",
			box:  healthyBox().set("node/0", telemetry.NodeCPUBusyPct, stepTo(points-11, 40, 95)),
		},
		{
			name:    "per-box busy_pct 99",
			box:     healthyBox().set("node/0", telemetry.NodeCPUBusyPct, stepTo(onsetIndex, 40, 95)),
			options: override(finding.RuleSaturation, "busy_pct", 99),
		},
	}
	runRuleCases(t, cases)
}

// lagTo is a replication lag that is healthy and climbs linearly from
// onset to top at the end.
func lagTo(onset int, top float64) func(int, *rand.Rand) float64 {
	return func(i int, r *rand.Rand) float64 {
		v := 30 + noise(r, 25)
		if i >= onset {
			v += (top - 30) * float64(i-onset+1) / float64(points-onset)
		}
		return v
	}
}

func TestReplicationRule(t *testing.T) {
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "lag climbing to 30 min",
			box:  healthyBox().set("replication/rg2", telemetry.ReplicationLagS, lagTo(onsetIndex, 1800)),
			want: []want{{finding.RuleReplicationLag, "replication/rg2", finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Regexp(t, `^replication rg2 lag \d+ min \(RPO 15 min\)$`, fs[0].Title)
				require.Greater(t, findNumber(t, fs[0], "lag_slope"), 0.0)
			},
		},
		{
			name: "lag of 2 hours is critical",
			box:  healthyBox().set("replication/rg1", telemetry.ReplicationLagS, lagTo(onsetIndex, 7200)),
			want: []want{{finding.RuleReplicationLag, "replication/rg1", finding.Critical}},
		},
		{
			name: "one late reading",
			box: healthyBox().set("replication/rg1", telemetry.ReplicationLagS, func(i int, _ *rand.Rand) float64 {
				if i == points-3 {
					return 5000
				}
				return 40
			}),
		},
		{
			name:    "per-box rpo_s 3600",
			box:     healthyBox().set("replication/rg2", telemetry.ReplicationLagS, lagTo(onsetIndex, 1800)),
			options: override(finding.RuleReplicationLag, "rpo_s", 3600),
		},
	}
	runRuleCases(t, cases)
}
