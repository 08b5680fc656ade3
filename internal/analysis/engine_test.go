package analysis

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// faultyBox has one fault of every kind on top of a healthy box.
func faultyBox() box {
	return healthyBox().
		set("pool/ssd_r6", telemetry.PoolTotalBytes, constant(100*tib)).
		set("pool/ssd_r6", telemetry.PoolUsedBytes, fillingPool(onsetIndex, 5)).
		set("volume/vol03", telemetry.VolumeReadLatencyMs, latencySeries(1.1, 5, onsetIndex)).
		set("disk/7", telemetry.DiskReallocatedSectors, steps(4, onsetIndex, 24, 2, 10)).
		set("disk/3", telemetry.DiskWearPct, wearing(89, 0.5)).
		set("port/0:2:1", telemetry.PortCRCErrors, errorCounter(200, onsetIndex, 5, 50)).
		set("battery/1", telemetry.BatteryChargePct, stepTo(onsetIndex, 97, 30)).
		set("node/0", telemetry.NodeCPUBusyPct, stepTo(onsetIndex, 40, 95)).
		set("replication/rg2", telemetry.ReplicationLagS, lagTo(onsetIndex, 1800))
}

func TestAnalyzeFindsEveryFaultAndNothingElse(t *testing.T) {
	e, err := New(Options{Advisories: testAdvisories(t)})
	require.NoError(t, err)
	w := faultyBox().window(fleet.Box{Model: "SW-7000", Firmware: "4.2.3"})
	fs, err := e.Analyze(context.Background(), w)
	require.NoError(t, err)
	require.Equal(t, []want{
		{finding.RuleCacheBattery, "battery/1", finding.Warning},
		{finding.RuleCapacity, "pool/ssd_r6", finding.Critical},
		{finding.RuleSaturation, "node/0", finding.Warning},
		{finding.RuleDiskFailure, "disk/7", finding.Warning},
		{finding.RuleFirmwareAdvisory, "firmware/SWA-2026-014", finding.Critical},
		{finding.RuleLatency, "volume/vol03", finding.Warning},
		{finding.RulePortErrors, "port/0:2:1", finding.Warning},
		{finding.RuleReplicationLag, "replication/rg2", finding.Warning},
		{finding.RuleSSDWear, "disk/3", finding.Warning},
	}, got(fs))
	require.True(t, slices.IsSortedFunc(fs, func(a, b finding.Finding) int {
		return strings.Compare(a.Fingerprint(), b.Fingerprint())
	}))
	for _, f := range fs {
		requireComplete(t, f)
		_, err := json.Marshal(f)
		require.NoError(t, err, f.Fingerprint())
	}
}

func TestAnalyzeIsDeterministic(t *testing.T) {
	e, err := New(Options{Advisories: testAdvisories(t)})
	require.NoError(t, err)
	w := faultyBox().window(fleet.Box{Model: "SW-7000", Firmware: "4.2.3"})
	first, err := e.Analyze(context.Background(), w)
	require.NoError(t, err)
	require.NotEmpty(t, first)

	t.Run("same window", func(t *testing.T) {
		again, err := e.Analyze(context.Background(), w)
		require.NoError(t, err)
		require.Equal(t, first, again)
	})
	t.Run("shuffled samples", func(t *testing.T) {
		shuffled := w
		shuffled.Samples = slices.Clone(w.Samples)
		r := rand.New(rand.NewPCG(7, 7))
		r.Shuffle(len(shuffled.Samples), func(i, j int) {
			shuffled.Samples[i], shuffled.Samples[j] = shuffled.Samples[j], shuffled.Samples[i]
		})
		again, err := e.Analyze(context.Background(), shuffled)
		require.NoError(t, err)
		require.Equal(t, first, again)
	})
	t.Run("a NaN sample is dropped", func(t *testing.T) {
		noisy := w
		noisy.Samples = slices.Clone(w.Samples)
		noisy.Samples[10].Value = nanValue()
		again, err := e.Analyze(context.Background(), noisy)
		require.NoError(t, err)
		require.Equal(t, got(first), got(again))
	})
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestAnalyzeEdgeCases(t *testing.T) {
	e, err := New(Options{})
	require.NoError(t, err)
	t.Run("missing box id", func(t *testing.T) {
		_, err := e.Analyze(context.Background(), Window{})
		require.EqualError(t, err, "analyze window: missing box id")
	})
	t.Run("empty window", func(t *testing.T) {
		fs, err := e.Analyze(context.Background(), Window{Box: fleet.Box{ID: testBox}})
		require.NoError(t, err)
		require.Empty(t, fs)
	})
	t.Run("unknown metrics are ignored", func(t *testing.T) {
		b := box{}.set("fan/0", "fan.rpm", constant(0)).set("pool/x", "pool.iops", constant(1e9))
		fs, err := e.Analyze(context.Background(), b.window(fleet.Box{}))
		require.NoError(t, err)
		require.Empty(t, fs)
	})
	t.Run("start and end default to the samples", func(t *testing.T) {
		w := healthyBox().set("node/0", telemetry.NodeCPUBusyPct, stepTo(onsetIndex, 40, 95)).window(fleet.Box{})
		w.Start, w.End = time.Time{}, time.Time{}
		fs, err := e.Analyze(context.Background(), w)
		require.NoError(t, err)
		require.Len(t, fs, 1)
		require.Equal(t, at(points-1).Add(time.Second), fs[0].DetectedAt)
		require.Equal(t, testStart, fs[0].Evidence.WindowStart)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.Analyze(ctx, healthyBox().window(fleet.Box{}))
		require.EqualError(t, err, "analyze box box-0042: context canceled")
	})
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		err  string
	}{
		{name: "bad threshold", o: Options{Thresholds: Thresholds{finding.RuleLatency: {"z": -2}}},
			err: "check thresholds: invalid threshold latency_anomaly.z = -2: allowed 0 to 1000 MADs"},
		{name: "bad override", o: Options{Overrides: map[string]Thresholds{"box-7": {finding.RuleSaturation: {"busy_pct": 101}}}},
			err: "check threshold overrides of box box-7: invalid threshold controller_saturation.busy_pct = 101: allowed 0 to 100 %"},
		{name: "override inconsistent with the global thresholds",
			o: Options{
				Thresholds: Thresholds{finding.RuleCapacity: {"warning_days": 30, "critical_days": 20}},
				Overrides:  map[string]Thresholds{"box-7": {finding.RuleCapacity: {"warning_days": 10}}},
			},
			err: "check threshold overrides of box box-7: invalid thresholds capacity_forecast.critical_days = 20 and capacity_forecast.warning_days = 10: critical_days must not be above warning_days"},
		{name: "override without box", o: Options{Overrides: map[string]Thresholds{"": {}}},
			err: "check threshold overrides: empty box id"},
		{name: "bad advisory", o: Options{Advisories: []Advisory{{ID: "A-1", Model: "m", Title: "t", FirmwareMin: "1", FirmwareMax: "x", FixedIn: "2"}}},
			err: `check advisories[0]: advisory A-1: firmware_max: parse version "x": part "x" is not a number`},
		{name: "duplicate advisory", o: Options{Advisories: []Advisory{
			{ID: "A-1", Model: "m", Title: "t", FirmwareMin: "1", FirmwareMax: "2", FixedIn: "3"},
			{ID: "A-1", Model: "m", Title: "t", FirmwareMin: "1", FirmwareMax: "2", FixedIn: "3"},
		}}, err: `check advisories[1]: duplicate id "A-1"`},
		{name: "external without name", o: Options{External: []ExternalAnalyzer{{Command: []string{"sh"}}}},
			err: "check external analyzers[0]: missing name"},
		{name: "external name with slash", o: Options{External: []ExternalAnalyzer{{Name: "a/b", Command: []string{"sh"}}}},
			err: `check external analyzer "a/b": name: allowed up to 64 of A-Z a-z 0-9 . _ -`},
		{name: "external without command", o: Options{External: []ExternalAnalyzer{{Name: "smart"}}},
			err: `check external analyzer "smart": missing command`},
		{name: "duplicate external", o: Options{External: []ExternalAnalyzer{{Name: "smart", Command: []string{"sh"}}, {Name: "smart", Command: []string{"sh"}}}},
			err: `check external analyzer "smart": duplicate name`},
		{name: "negative timeout", o: Options{External: []ExternalAnalyzer{{Name: "smart", Command: []string{"sh"}, Timeout: -time.Second}}},
			err: `check external analyzer "smart": timeout -1s: allowed 0 (default 30s) or more`},
		{name: "negative output limit", o: Options{External: []ExternalAnalyzer{{Name: "smart", Command: []string{"sh"}, MaxOutputBytes: -1}}},
			err: `check external analyzer "smart": max output bytes -1: allowed 0 (default 4194304) or more`},
		{name: "command not found", o: Options{External: []ExternalAnalyzer{{Name: "smart", Command: []string{"no-such-analyzer-xyz"}}}},
			err: `check external analyzer "smart": exec: "no-such-analyzer-xyz": executable file not found in $PATH`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.o)
			require.EqualError(t, err, tc.err)
			require.Nil(t, e)
		})
	}
}

func TestThresholdsFor(t *testing.T) {
	e, err := New(Options{
		Thresholds: Thresholds{finding.RuleCapacity: {"warning_days": 21}},
		Overrides:  map[string]Thresholds{"box-7": {finding.RuleCapacity: {"critical_days": 3}, finding.RuleReplicationLag: {"rpo_s": 60}}},
	})
	require.NoError(t, err)
	cases := []struct {
		name, box, rule, key string
		want                 float64
	}{
		{"configured value", "box-1", finding.RuleCapacity, "warning_days", 21},
		{"default", "box-1", finding.RuleCapacity, "critical_days", 7},
		{"override", "box-7", finding.RuleCapacity, "critical_days", 3},
		{"configured value kept beside an override", "box-7", finding.RuleCapacity, "warning_days", 21},
		{"override of another rule", "box-7", finding.RuleReplicationLag, "rpo_s", 60},
		{"other rules keep defaults", "box-7", finding.RuleSaturation, "busy_pct", 90},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, e.ThresholdsFor(tc.box)[tc.rule][tc.key])
		})
	}
	t.Run("result is a copy", func(t *testing.T) {
		e.ThresholdsFor("box-7")[finding.RuleCapacity]["critical_days"] = 99
		require.Equal(t, 3.0, e.ThresholdsFor("box-7")[finding.RuleCapacity]["critical_days"])
	})
}
