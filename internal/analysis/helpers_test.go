package analysis

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// The synthetic windows follow the simulator contract: 48 h of 5-minute
// samples, faults starting at 75% of the window and active at the end.
const (
	testBox    = "box-0042"
	tib        = float64(1 << 40)
	points     = 576
	interval   = 5 * time.Minute
	onsetIndex = points * 3 / 4
)

var (
	testEnd   = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	testStart = testEnd.Add(-points * interval)
)

// at returns the time of point i.
func at(i int) time.Time { return testStart.Add(time.Duration(i) * interval) }

// gen builds one series of points values, value(i, rng) for point i, with a
// random source seeded from the series name so every run is the same.
func gen(component, metric string, value func(i int, r *rand.Rand) float64) []telemetry.Sample {
	h := fnv.New64a()
	_, _ = h.Write([]byte(component + metric))
	r := rand.New(rand.NewPCG(h.Sum64(), 42))
	out := make([]telemetry.Sample, points)
	for i := range out {
		out[i] = telemetry.Sample{Time: at(i), Box: testBox, Component: component, Metric: metric, Value: value(i, r)}
	}
	return out
}

// noise returns a uniform value in [-a, a].
func noise(r *rand.Rand, a float64) float64 { return (r.Float64()*2 - 1) * a }

// diurnal is a daily sine in [-1, 1].
func diurnal(i int) float64 { return math.Sin(2 * math.Pi * float64(i) * interval.Hours() / 24) }

// constant returns a generator of a constant value.
func constant(v float64) func(int, *rand.Rand) float64 {
	return func(int, *rand.Rand) float64 { return v }
}

// box is a set of series keyed by component and metric.
type box map[[2]string][]telemetry.Sample

// set replaces the series of metric on component.
func (b box) set(component, metric string, value func(i int, r *rand.Rand) float64) box {
	b[[2]string{component, metric}] = gen(component, metric, value)
	return b
}

// last keeps only the last hours of every series: a box that started
// reporting that long before testEnd.
func (b box) last(hours float64) box {
	from := testEnd.Add(-time.Duration(hours * float64(time.Hour)))
	out := box{}
	for k, s := range b {
		i := 0
		for i < len(s) && s[i].Time.Before(from) {
			i++
		}
		out[k] = s[i:]
	}
	return out
}

// window returns the box as a Window ordered like store.Window.
func (b box) window(fb fleet.Box) Window {
	var samples []telemetry.Sample
	for _, s := range b {
		samples = append(samples, s...)
	}
	slices.SortFunc(samples, sampleOrder)
	if fb.ID == "" {
		fb.ID = testBox
	}
	return Window{Box: fb, Start: testStart, End: testEnd, Samples: samples}
}

// healthyBox returns a box of 100 series, all inside the contract's
// healthy ranges. The series are built once and shared (they are never
// changed); set replaces them in the returned copy.
func healthyBox() box { return maps.Clone(healthy()) }

var healthy = sync.OnceValue(func() box {
	b := box{}
	for p, pool := range []string{"pool/ssd_r6", "pool/nl_r6"} {
		total := float64(50+50*p) * tib
		used := (0.6 + 0.1*float64(p)) * total
		b.set(pool, telemetry.PoolTotalBytes, constant(total))
		b.set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 {
			return used + 0.003*total*float64(i)*interval.Hours()/24 + noise(r, 0.0005*total)
		})
	}
	for v := range 8 {
		vol := fmt.Sprintf("volume/vol%02d", v)
		read, write := 0.5+0.2*float64(v), 0.3+0.15*float64(v)
		b.set(vol, telemetry.VolumeReadLatencyMs, func(i int, r *rand.Rand) float64 {
			return read * (1 + 0.15*diurnal(i)) * (1 + noise(r, 0.1))
		})
		b.set(vol, telemetry.VolumeWriteLatencyMs, func(i int, r *rand.Rand) float64 {
			return write * (1 + 0.15*diurnal(i)) * (1 + noise(r, 0.1))
		})
		b.set(vol, telemetry.VolumeIOPS, func(i int, r *rand.Rand) float64 {
			return 2000 * (1 + 0.3*diurnal(i)) * (1 + noise(r, 0.1))
		})
	}
	for d := range 12 {
		disk := fmt.Sprintf("disk/%d", d)
		b.set(disk, telemetry.DiskReallocatedSectors, constant(float64(d%9)))
		b.set(disk, telemetry.DiskPendingSectors, constant(0))
		b.set(disk, telemetry.DiskMediaErrors, constant(float64(d%3)))
		b.set(disk, telemetry.DiskTemperatureC, func(i int, r *rand.Rand) float64 { return 35 + noise(r, 2) })
		if d < 6 {
			wear := 5 + 10*float64(d)
			b.set(disk, telemetry.DiskWearPct, func(i int, r *rand.Rand) float64 {
				return wear + 0.002*float64(i)*interval.Hours()/24
			})
		}
	}
	for p := range 4 {
		port := fmt.Sprintf("port/0:%d:1", p)
		b.set(port, telemetry.PortCRCErrors, func(i int, r *rand.Rand) float64 { return float64(100*p + i/144) })
		b.set(port, telemetry.PortLinkResets, constant(float64(p)))
	}
	for n := range 2 {
		node := fmt.Sprintf("node/%d", n)
		b.set(node, telemetry.NodeCPUBusyPct, func(i int, r *rand.Rand) float64 { return 40 + 15*diurnal(i) + noise(r, 5) })
		b.set(node, telemetry.CacheReadHitPct, func(i int, r *rand.Rand) float64 { return 85 + noise(r, 5) })
		b.set(node, telemetry.CacheWritePendingPct, func(i int, r *rand.Rand) float64 { return 17 + 10*diurnal(i) + noise(r, 3) })
		b.set(fmt.Sprintf("battery/%d", n), telemetry.BatteryChargePct, func(i int, r *rand.Rand) float64 { return 97.5 + noise(r, 2.5) })
	}
	b.set("replication/rg1", telemetry.ReplicationLagS, func(i int, r *rand.Rand) float64 { return 30 + noise(r, 25) })
	b.set("replication/rg2", telemetry.ReplicationLagS, func(i int, r *rand.Rand) float64 { return 20 + noise(r, 15) })
	return b
})

// want is the identity of an expected finding.
type want struct {
	rule, component string
	severity        finding.Severity
}

// got reduces findings to their identities.
func got(fs []finding.Finding) []want {
	out := []want{}
	for _, f := range fs {
		out = append(out, want{f.Rule, f.Component, f.Severity})
	}
	return out
}

// ruleCase is one synthetic window with its known answer.
type ruleCase struct {
	name      string
	box       box
	fleetBox  fleet.Box
	options   Options
	want      []want
	checkFunc func(t *testing.T, fs []finding.Finding)
}

// runRuleCases analyses each case with a fresh engine and requires exactly
// the wanted findings (so a fault of one kind raises nothing of another).
func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.options)
			require.NoError(t, err)
			fs, err := e.Analyze(context.Background(), tc.box.window(tc.fleetBox))
			require.NoError(t, err)
			expected := tc.want
			if expected == nil {
				expected = []want{}
			}
			require.Equal(t, expected, got(fs))
			for _, f := range fs {
				requireComplete(t, f)
			}
			if tc.checkFunc != nil {
				tc.checkFunc(t, fs)
			}
		})
	}
}

// requireComplete checks the fields every built-in finding must carry.
func requireComplete(t *testing.T, f finding.Finding) {
	t.Helper()
	require.Equal(t, testBox, f.Box)
	require.NotEmpty(t, f.Title)
	require.NotEmpty(t, f.Problem)
	require.Contains(t, f.Problem, testBox)
	require.NotEmpty(t, f.Remediation)
	require.Equal(t, testEnd, f.DetectedAt)
	require.Equal(t, testStart, f.Evidence.WindowStart)
	require.Equal(t, testEnd, f.Evidence.WindowEnd)
	require.NotEmpty(t, f.Evidence.Metric)
	require.LessOrEqual(t, len(f.Evidence.Series), excerptPoints)
	if f.Rule != finding.RuleFirmwareAdvisory {
		require.NotEmpty(t, f.Evidence.Numbers)
		require.NotEmpty(t, f.Evidence.Series)
		_, name := componentName(f.Component)
		require.Contains(t, f.Remediation[0], name)
	}
}

// override returns options with per-box thresholds for testBox.
func override(rule, key string, v float64) Options {
	return Options{Overrides: map[string]Thresholds{testBox: {rule: {key: v}}}}
}

// after returns a generator that follows healthy before onset and fault
// from onset on.
func after(onset int, healthy, fault func(i int, r *rand.Rand) float64) func(int, *rand.Rand) float64 {
	return func(i int, r *rand.Rand) float64 {
		if i < onset {
			return healthy(i, r)
		}
		return fault(i, r)
	}
}

// findNumber returns the value of the named evidence number.
func findNumber(t *testing.T, f finding.Finding, name string) float64 {
	t.Helper()
	for _, n := range f.Evidence.Numbers {
		if n.Name == name {
			return n.Value
		}
	}
	require.Failf(t, "missing number", "finding %s has no number %q", f.Fingerprint(), name)
	return 0
}
