package analysis

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// longSeries is days of 5-minute points ending at end, value(t) each.
func longSeries(component, metric string, end time.Time, days int, value func(t time.Time, r *rand.Rand) float64) []telemetry.Sample {
	r := rand.New(rand.NewPCG(7, 11))
	n := days * 288
	out := make([]telemetry.Sample, n)
	for i := range out {
		t := end.Add(-time.Duration(n-i) * 5 * time.Minute)
		out[i] = telemetry.Sample{Time: t, Box: testBox, Component: component, Metric: metric, Value: value(t, r)}
	}
	return out
}

// analyzeLong runs the engine at its defaults on samples ending at end, the
// way the activity loads them: the rule's own history.
func analyzeLong(t *testing.T, end time.Time, samples ...[]telemetry.Sample) []finding.Finding {
	t.Helper()
	e, err := New(Options{})
	require.NoError(t, err)
	var all []telemetry.Sample
	for _, s := range samples {
		all = append(all, s...)
	}
	fs, err := e.Analyze(context.Background(), Window{Box: fleet.Box{ID: testBox}, Start: end.Add(-DefaultWindow), End: end, Samples: all})
	require.NoError(t, err)
	return fs
}

// quietVolume is a 0.4 ms volume with a mild daily swing and noise.
func quietVolume(t time.Time, r *rand.Rand) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	return 0.4 * (1 + 0.1*math.Sin(2*math.Pi*h/24)) * (1 + 0.1*(r.Float64()-0.5))
}

// Seasonal cases for latency_anomaly: a backup that runs every night is the
// volume's normal; the same latency at an hour when it never happens is not.
func TestLatencySeasonal(t *testing.T) {
	const vol = "volume/db01"
	// 03:30 on a Sunday, in the middle of the backup.
	end := time.Date(2026, 11, 8, 3, 30, 0, 0, time.UTC)
	nightly := func(t time.Time, r *rand.Rand) float64 {
		if t.Hour() >= 2 && t.Hour() < 4 {
			return 3 * (1 + 0.1*(r.Float64()-0.5))
		}
		return quietVolume(t, r)
	}
	cases := []struct {
		name  string
		value func(time.Time, *rand.Rand) float64
		end   time.Time
		want  int
	}{
		{"a nightly 2-hour backup at 3 ms is normal", nightly, end, 0},
		{"a Sunday-only backup is normal on the next Sunday", func(t time.Time, r *rand.Rand) float64 {
			if t.Weekday() == time.Sunday && t.Hour() >= 2 && t.Hour() < 4 {
				return 3
			}
			return quietVolume(t, r)
		}, end, 0},
		{"the same 3 ms at 14:00, when it never happens, is a finding", func(t time.Time, r *rand.Rand) float64 {
			if t.After(end.Add(-90 * time.Minute).Add(11 * time.Hour)) {
				return 3
			}
			return nightly(t, r)
		}, end.Add(11 * time.Hour), 1},
		{"latency up for good, night and day, is a finding", func(t time.Time, r *rand.Rand) float64 {
			if t.After(end.Add(-10 * time.Hour)) {
				return 4 * nightly(t, r)
			}
			return nightly(t, r)
		}, end, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := analyzeLong(t, tc.end, longSeries(vol, telemetry.VolumeWriteLatencyMs, tc.end, 8, tc.value))
			require.Len(t, fs, tc.want, "%v", titles(fs))
			for _, f := range fs {
				require.Equal(t, finding.RuleLatency, f.Rule)
			}
		})
	}
}

func titles(fs []finding.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Title
	}
	return out
}

// Capacity through daily cycles: a pool that fills by day and empties by
// night is not filling up; the same cycle on top of real growth is.
func TestCapacityDailyCycle(t *testing.T) {
	const pool = "pool/p0"
	const total = 100e12
	end := time.Date(2026, 11, 8, 17, 0, 0, 0, time.UTC) // late afternoon: the daily rise is in the last hours
	cycle := func(t time.Time) float64 {                 // +2% of the pool from 08:00 to 18:00, back down by night
		h := float64(t.Hour()) + float64(t.Minute())/60
		switch {
		case h < 8:
			return 0
		case h < 18:
			return 0.02 * (h - 8) / 10
		default:
			return 0.02 * (24 - h) / 6
		}
	}
	cases := []struct {
		name   string
		growth float64 // share of the pool per day
		want   int
	}{
		{"a pool at 70% with zero net growth and a +2% daytime cycle", 0, 0},
		{"the same cycle on top of 3% a day of real growth", 0.03, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			used := longSeries(pool, telemetry.PoolUsedBytes, end, 7, func(ts time.Time, r *rand.Rand) float64 {
				days := ts.Sub(end).Hours() / 24
				return total * (0.70 + tc.growth*days + cycle(ts) + 0.0005*(r.Float64()-0.5))
			})
			tot := longSeries(pool, telemetry.PoolTotalBytes, end, 7, func(time.Time, *rand.Rand) float64 { return total })
			fs := analyzeLong(t, end, used, tot)
			require.Len(t, fs, tc.want, "%v", titles(fs))
		})
	}
}

// Port errors judged by rate: bursts count, a single burst does not.
func TestPortErrorBursts(t *testing.T) {
	const port = "port/0:1:1"
	end := time.Date(2026, 11, 8, 12, 0, 0, 0, time.UTC)
	start := end.Add(-15 * time.Hour)
	cases := []struct {
		name  string
		count func(i int, t time.Time) float64 // counter value at point i (5-minute steps)
		want  int
	}{
		{"CRC errors in bursts: +400 every other interval for 15 h", func(i int, t time.Time) float64 {
			if t.Before(start) {
				return 1000
			}
			n := int(t.Sub(start) / (5 * time.Minute))
			return 1000 + float64((n+1)/2)*400
		}, 1},
		{"one burst of 5,000 and nothing since", func(i int, t time.Time) float64 {
			if t.Before(end.Add(-3 * time.Hour)) {
				return 1000
			}
			return 6000
		}, 0},
		{"a flat counter", func(int, time.Time) float64 { return 1000 }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			crc := longSeries(port, telemetry.PortCRCErrors, end, 2, func(ts time.Time, _ *rand.Rand) float64 {
				i++
				return tc.count(i, ts)
			})
			fs := analyzeLong(t, end, crc)
			require.Len(t, fs, tc.want, "%v", titles(fs))
		})
	}
}

// TestPortErrorsShortSeries: a series shorter than rate_hours is judged on
// all its intervals.
func TestPortErrorsShortSeries(t *testing.T) {
	end := time.Date(2026, 11, 8, 12, 0, 0, 0, time.UTC)
	var crc []telemetry.Sample
	for i := range 24 { // 2 hours, errors in the last 6 intervals
		v := 100.0
		if i >= 18 {
			v += 60 * float64(i-17)
		}
		crc = append(crc, telemetry.Sample{Time: end.Add(-time.Duration(24-i) * 5 * time.Minute), Box: testBox, Component: "port/0:1:1", Metric: telemetry.PortCRCErrors, Value: v})
	}
	fs := analyzeLong(t, end, crc)
	require.Len(t, fs, 1, "%v", titles(fs))
}
