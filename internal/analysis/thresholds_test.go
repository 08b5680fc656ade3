package analysis

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
)

func TestDefaultThresholds(t *testing.T) {
	d := DefaultThresholds()
	require.Len(t, d, len(finding.Rules))
	for _, rule := range finding.Rules {
		keys, ok := d[rule]
		require.True(t, ok, rule)
		for k, v := range keys {
			require.NoError(t, CheckThreshold(rule, k, v))
		}
	}
	require.NoError(t, d.Validate())
	require.Equal(t, 14.0, d[finding.RuleCapacity]["warning_days"])
	require.Equal(t, 12.0, d[finding.RuleSaturation]["sustain_points"])
	require.Equal(t, 900.0, d[finding.RuleReplicationLag]["rpo_s"])
	d[finding.RuleCapacity]["warning_days"] = 1
	require.Equal(t, 14.0, DefaultThresholds()[finding.RuleCapacity]["warning_days"], "defaults are a fresh copy")
}

func TestCheckThreshold(t *testing.T) {
	cases := []struct {
		name      string
		rule, key string
		v         float64
		err       string
	}{
		{name: "ok", rule: finding.RuleCapacity, key: "warning_days", v: 21},
		{name: "zero allowed", rule: finding.RuleCapacity, key: "recent_hours", v: 0},
		{name: "unknown rule", rule: "capacity", key: "warning_days", v: 1,
			err: `unknown rule "capacity": allowed capacity_forecast, latency_anomaly, disk_failure_risk, ssd_wear, port_errors, cache_battery, controller_saturation, replication_lag, firmware_advisory, silent_box`},
		{name: "unknown key", rule: finding.RuleSaturation, key: "busy", v: 1,
			err: "unknown threshold controller_saturation.busy: allowed keys busy_pct, sustain_points"},
		{name: "rule without keys", rule: finding.RuleFirmwareAdvisory, key: "x", v: 1,
			err: "unknown threshold firmware_advisory.x: allowed keys none"},
		{name: "negative", rule: finding.RuleCapacity, key: "warning_days", v: -1,
			err: "invalid threshold capacity_forecast.warning_days = -1: allowed 0 to 3650 days"},
		{name: "percent above 100", rule: finding.RuleSSDWear, key: "critical_pct", v: 120,
			err: "invalid threshold ssd_wear.critical_pct = 120: allowed 0 to 100 %"},
		{name: "fraction of points", rule: finding.RuleLatency, key: "sustain_points", v: 2.5,
			err: "invalid threshold latency_anomaly.sustain_points = 2.5: allowed a whole number from 1 to 100000 points"},
		{name: "NaN", rule: finding.RuleReplicationLag, key: "rpo_s", v: math.NaN(),
			err: "invalid threshold replication_lag.rpo_s = NaN: allowed a number from 1 to 1e+09 s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckThreshold(tc.rule, tc.key, tc.v)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
		})
	}
}

func TestThresholdsValidate(t *testing.T) {
	cases := []struct {
		name string
		t    Thresholds
		err  string
	}{
		{name: "nil", t: nil},
		{name: "partial", t: Thresholds{finding.RuleCapacity: {"warning_days": 30}}},
		{name: "bad value", t: Thresholds{finding.RulePortErrors: {"min_errors": 0}},
			err: "invalid threshold port_errors.min_errors = 0: allowed 1 to 1e+12 errors"},
		{name: "unknown rule comes first", t: Thresholds{finding.RulePortErrors: {"min_errors": 0}, "bogus": {"x": 1}},
			err: `unknown rule "bogus": allowed capacity_forecast, latency_anomaly, disk_failure_risk, ssd_wear, port_errors, cache_battery, controller_saturation, replication_lag, firmware_advisory, silent_box`},
		{name: "critical above warning with a default", t: Thresholds{finding.RuleCapacity: {"critical_days": 20}},
			err: "invalid thresholds capacity_forecast.critical_days = 20 and capacity_forecast.warning_days = 14: critical_days must not be above warning_days"},
		{name: "wear pair", t: Thresholds{finding.RuleSSDWear: {"warning_pct": 97}},
			err: "invalid thresholds ssd_wear.warning_pct = 97 and ssd_wear.critical_pct = 95: warning_pct must not be above critical_pct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
		})
	}
}
