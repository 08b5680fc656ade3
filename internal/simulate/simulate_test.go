package simulate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// testAdvisories mirror config/advisories.yaml.
var testAdvisories = []analysis.Advisory{
	{ID: "SWA-2026-014", Model: "SW-7000", FirmwareMin: "4.2.0", FirmwareMax: "4.2.7", FixedIn: "4.2.8", Severity: finding.Critical, Title: "t"},
	{ID: "SWA-2026-021", Model: "SW-9000", FirmwareMin: "6.1.0", FirmwareMax: "6.1.3", FixedIn: "6.1.4", Severity: finding.Warning, Title: "t"},
	{ID: "SWA-2025-107", Model: "SW-5000", FirmwareMin: "3.0.0", FirmwareMax: "3.0.5", FixedIn: "3.1.0", Severity: finding.Warning, Title: "t"},
}

func run(t *testing.T, o Options) Result {
	t.Helper()
	if o.Out == "" {
		o.Out = t.TempDir()
	}
	if o.Advisories == nil {
		o.Advisories = testAdvisories
	}
	res, err := Run(o)
	require.NoError(t, err)
	return res
}

// hashes returns the sha256 of every file under dir, by relative path.
func hashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum := sha256.Sum256(data)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	require.NoError(t, err)
	return out
}

func TestRunIsDeterministic(t *testing.T) {
	o := Options{Boxes: 12, Hours: 24, Faults: 9, Seed: 42}
	a := run(t, o)
	b := run(t, o)
	ha, hb := hashes(t, filepath.Dir(a.InventoryPath)), hashes(t, filepath.Dir(b.InventoryPath))
	require.Len(t, ha, 2+12) // fleet.yaml, faults.json, one batch per box
	require.Equal(t, ha, hb)
	require.Equal(t, a.Faults, b.Faults)
	require.Equal(t, a.Samples, b.Samples)

	o.Seed = 43
	c := run(t, o)
	hc := hashes(t, filepath.Dir(c.InventoryPath))
	require.Equal(t, slices.Sorted(maps.Keys(ha)), slices.Sorted(maps.Keys(hc)))
	for _, name := range []string{InventoryFile, FaultsFile, filepath.Join(BatchDir, "box-0001-001.csv")} {
		require.NotEqual(t, ha[name], hc[name], name)
	}
}

func TestRunFaultsAndInventory(t *testing.T) {
	o := Options{Boxes: 20, Hours: 48, Faults: 10, Seed: 7, Out: t.TempDir(), Advisories: testAdvisories}
	res := run(t, o)

	require.Equal(t, 20, res.Boxes)
	require.Len(t, res.Faults, 10)
	kinds := []string{}
	boxes := []string{}
	span := time.Duration(o.Hours) * time.Hour
	start := DefaultEnd.Add(-span)
	for _, f := range res.Faults {
		kinds = append(kinds, f.Kind)
		boxes = append(boxes, f.Box)
		at := float64(f.Onset.Sub(start)) / float64(span)
		require.GreaterOrEqual(t, at, 0.65, "onset of %+v", f)
		require.LessOrEqual(t, at, 0.85, "onset of %+v", f)
		require.Equal(t, time.UTC, f.Onset.Location())
	}
	require.ElementsMatch(t, finding.Rules, kinds)
	require.True(t, slices.IsSorted(boxes), "faults sorted by box: %v", boxes)
	require.Len(t, slices.Compact(slices.Clone(boxes)), 10, "one fault per box")

	loaded, err := LoadFaults(res.FaultsPath)
	require.NoError(t, err)
	require.Equal(t, res.Faults, loaded)

	inv, err := fleet.Load(res.InventoryPath)
	require.NoError(t, err)
	require.Equal(t, 20, inv.Len())
	require.Empty(t, inv.Warnings())
	byKind := map[string]Fault{}
	for _, f := range res.Faults {
		byKind[f.Kind] = f
	}
	for _, b := range inv.Boxes() {
		code := b.Site[:3]
		require.Equal(t, []string{"storage-" + code + "@example.com"}, b.Owners, b.ID)
		require.Equal(t, []string{"oncall-" + code + "@example.com"}, b.Escalation, b.ID)
		require.True(t, slices.Contains(b.Tags, "prod") != slices.Contains(b.Tags, "dev"), "%s tags %v", b.ID, b.Tags)
		var matched []string
		for _, a := range testAdvisories {
			if a.Matches(b.Model, b.Firmware) {
				matched = append(matched, a.ID)
			}
		}
		if fw := byKind[finding.RuleFirmwareAdvisory]; fw.Box == b.ID {
			require.Equal(t, []string{strings.TrimPrefix(fw.Component, "firmware/")}, matched, b.ID)
		} else {
			require.Empty(t, matched, "%s %s %s", b.ID, b.Model, b.Firmware)
			require.Contains(t, models, b.Model)
		}
	}
	rep, ok := inv.Box(byKind[finding.RuleReplicationLag].Box)
	require.True(t, ok)
	require.Contains(t, rep.Tags, "replicated")

	// Every fault's component exists in the box's telemetry.
	got := readFleet(t, res.BatchDir, DefaultEnd)
	for _, f := range res.Faults {
		if f.Kind == finding.RuleFirmwareAdvisory || f.Kind == finding.RuleSilentBox { // no component of their own
			continue
		}
		found := false
		for k := range got.series {
			if k.box == f.Box && k.component == f.Component {
				found = true
			}
		}
		require.True(t, found, "no telemetry for %+v", f)
	}
	// Replication series only on replicated boxes.
	for k := range got.series {
		if strings.HasPrefix(k.component, "replication/") {
			b, _ := inv.Box(k.box)
			require.Contains(t, b.Tags, "replicated", k.box)
		}
	}
}

func TestRunWithConfigAdvisories(t *testing.T) {
	advs, err := analysis.LoadAdvisories("../../config/advisories.yaml")
	require.NoError(t, err)
	res := run(t, Options{Boxes: 9, Hours: 12, Faults: 9, Seed: 1, Advisories: advs})
	require.Len(t, res.Faults, 9)
}

type seriesKey struct{ box, component, metric string }

type fleetData struct {
	series  map[seriesKey][]float64
	times   map[seriesKey][]time.Time
	formats map[string]telemetry.Format // by file name
	samples int64
}

// readFleet parses every batch file and gathers the series.
func readFleet(t *testing.T, dir string, now time.Time) fleetData {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	fd := fleetData{series: map[seriesKey][]float64{}, times: map[seriesKey][]time.Time{}, formats: map[string]telemetry.Format{}}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		require.NoError(t, err)
		pr, err := telemetry.Parse(f, telemetry.Options{Name: name, Now: now}, func(ss []telemetry.Sample) error {
			for _, s := range ss {
				k := seriesKey{s.Box, s.Component, s.Metric}
				fd.series[k] = append(fd.series[k], s.Value)
				fd.times[k] = append(fd.times[k], s.Time)
			}
			return nil
		})
		require.NoError(t, f.Close())
		require.NoError(t, err, name)
		require.Zero(t, pr.Rejected, "%s: %v", name, pr.Errors)
		want, err := telemetry.FormatForPath(name)
		require.NoError(t, err)
		require.Equal(t, want, pr.Format, name)
		fd.formats[name] = pr.Format
		fd.samples += pr.Accepted
	}
	return fd
}

func TestRunBatchesParseBack(t *testing.T) {
	tests := []struct {
		name       string
		hours      int
		batchHours int
		interval   time.Duration
		wantFiles  int // per box
	}{
		{name: "one file per box", hours: 24, wantFiles: 1},
		{name: "6 hour batches", hours: 24, batchHours: 6, wantFiles: 4},
		{name: "batches not dividing the span", hours: 10, batchHours: 4, wantFiles: 3},
		{name: "one minute interval", hours: 3, interval: time.Minute, batchHours: 1, wantFiles: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			res := run(t, Options{Boxes: 5, Hours: tc.hours, BatchHours: tc.batchHours, Interval: tc.interval, Seed: 3, End: end})
			require.Equal(t, 5*tc.wantFiles, res.Files)
			fd := readFleet(t, res.BatchDir, end)
			require.Len(t, fd.formats, res.Files)
			require.Equal(t, res.Samples, fd.samples)

			seen := map[telemetry.Format]bool{}
			for name, f := range fd.formats {
				seen[f] = true
				require.Regexp(t, `^box-000[1-5]-00[1-9]\.`, name)
			}
			require.Len(t, seen, 4, "every format used")
			require.Equal(t, Formats[0], fd.formats["box-0001-001.csv"])
			require.Equal(t, Formats[3], fd.formats["box-0004-001.jsonl.gz"])

			interval := tc.interval
			if interval == 0 {
				interval = DefaultInterval
			}
			n := int(time.Duration(tc.hours) * time.Hour / interval)
			for k, ts := range fd.times {
				require.Len(t, ts, n, "%v", k)
				require.Equal(t, end, ts[n-1], "%v newest sample", k)
				for i := 1; i < n; i++ {
					require.Equal(t, interval, ts[i].Sub(ts[i-1]), "%v at %d", k, i)
				}
			}
		})
	}
}

func TestRunOptionErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{name: "no boxes", o: Options{Hours: 1, Out: dir}, want: "check options: boxes 0: want at least 1"},
		{name: "no hours", o: Options{Boxes: 1, Out: dir}, want: "check options: hours 0: want at least 1"},
		{name: "too many hours", o: Options{Boxes: 1, Hours: 100_001, Out: dir}, want: "check options: hours 100001: want at most 100000"},
		{name: "too many samples", o: Options{Boxes: 1, Hours: 1000, Interval: time.Second, Out: dir}, want: "check options: hours 1000 at interval 1s give 3600000 samples per series: want at most 1000000"},
		{name: "negative interval", o: Options{Boxes: 1, Hours: 1, Interval: -time.Minute, Out: dir}, want: "check options: interval -1m0s: want at least 1s"},
		{name: "interval longer than span", o: Options{Boxes: 1, Hours: 1, Interval: 2 * time.Hour, Out: dir}, want: "check options: interval 2h0m0s: want at most hours (1h)"},
		{name: "negative faults", o: Options{Boxes: 1, Hours: 1, Faults: -1, Out: dir}, want: "check options: faults -1: want 0 or more"},
		{name: "more faults than boxes", o: Options{Boxes: 3, Hours: 48, Faults: 4, Out: dir}, want: "check options: faults 4: want at most boxes (3), one fault per box"},
		{name: "negative batch hours", o: Options{Boxes: 1, Hours: 1, BatchHours: -2, Out: dir}, want: "check options: batch hours -2: want 0 or more"},
		{name: "no output directory", o: Options{Boxes: 1, Hours: 1}, want: "check options: out: missing output directory"},
		{
			name: "span too short for faults",
			o:    Options{Boxes: 2, Hours: 6, Faults: 1, Out: dir},
			want: "check options: hours 6, window 48h0m0s at interval 5m0s give 72 samples to place faults in: want at least 120",
		},
		{
			name: "window too short for faults",
			o:    Options{Boxes: 2, Hours: 48, Faults: 1, Window: 5 * time.Hour, Out: dir},
			want: "check options: hours 48, window 5h0m0s at interval 5m0s give 60 samples to place faults in: want at least 120",
		},
		{
			name: "firmware fault without advisories",
			o:    Options{Boxes: 9, Hours: 12, Faults: 9, Out: dir},
			want: "plan fleet: firmware_advisory fault: none of the 0 advisories gives a model and firmware that matches it alone",
		},
		{
			name: "every firmware under an advisory",
			o: Options{Boxes: 2, Hours: 1, Out: dir, Advisories: []analysis.Advisory{
				{ID: "A", Model: "SW-5000", FirmwareMin: "0", FirmwareMax: "99"},
				{ID: "B", Model: "SW-7000", FirmwareMin: "0", FirmwareMax: "99"},
				{ID: "C", Model: "SW-9000", FirmwareMin: "0", FirmwareMax: "99"},
			}},
			want: "plan fleet: every simulated model and firmware is inside an advisory range",
		},
		{
			name: "advisories that overlap everywhere",
			o: Options{Boxes: 9, Hours: 12, Faults: 9, Out: dir, Advisories: []analysis.Advisory{
				{ID: "A", Model: "SW-5000", FirmwareMin: "3.0.0", FirmwareMax: "3.0.5"},
				{ID: "B", Model: "SW-5000", FirmwareMin: "3.0.0", FirmwareMax: "3.0.5"},
			}},
			want: "plan fleet: firmware_advisory fault: none of the 2 advisories gives a model and firmware that matches it alone",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(tc.o)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestRunFewFaultsNeedNoAdvisories(t *testing.T) {
	res, err := Run(Options{Boxes: 8, Hours: 12, Faults: 8, Seed: 5, Out: t.TempDir()})
	require.NoError(t, err)
	kinds := []string{}
	for _, f := range res.Faults {
		kinds = append(kinds, f.Kind)
	}
	require.ElementsMatch(t, finding.Rules[:8], kinds)
}

func TestRunRemovesOldBatches(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(out, BatchDir), 0o755))
	stale := filepath.Join(out, BatchDir, "box-0099-007.csv.gz")
	keep := filepath.Join(out, BatchDir, "notes.txt")
	require.NoError(t, os.WriteFile(stale, []byte("old"), 0o644))
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o644))

	res := run(t, Options{Boxes: 2, Hours: 2, BatchHours: 1, Seed: 1, Out: out})
	require.Equal(t, 4, res.Files)
	_, err := os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(keep)
	require.NoError(t, err)
}

func TestLoadFaultsErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{name: "not json", data: "nope", want: "parse faults F: invalid character 'o' in literal null (expecting 'u')"},
		{name: "unknown kind", data: `[{"box":"b1","kind":"smoke","component":"x","onset":"2026-01-01T00:00:00Z"}]`, want: `F: faults[0] (b1): unknown kind "smoke"`},
		{name: "missing box", data: `[{"kind":"ssd_wear","component":"disk/0","onset":"2026-01-01T00:00:00Z"}]`, want: "F: faults[0]: missing box"},
		{name: "missing component", data: `[{"box":"b1","kind":"ssd_wear","onset":"2026-01-01T00:00:00Z"}]`, want: "F: faults[0] (b1): missing component"},
		{name: "missing onset", data: `[{"box":"b1","kind":"ssd_wear","component":"disk/0"}]`, want: "F: faults[0] (b1): missing onset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "faults.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o644))
			_, err := LoadFaults(path)
			require.EqualError(t, err, strings.ReplaceAll(tc.want, "F", path))
		})
	}
	_, err := LoadFaults(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorContains(t, err, "read faults: open ")
}

// TestSignalsFollowContract checks every simulated series against the
// simulator/analyzer contract: healthy series stay inside their envelope and
// away from every trigger, faulty ones cross their rule's trigger by the end
// without touching anything else.
func TestSignalsFollowContract(t *testing.T) {
	for _, seed := range []int64{1, 2} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			o := Options{Boxes: 18, Hours: 48, Faults: 18, Seed: seed}
			res := run(t, o)
			fd := readFleet(t, res.BatchDir, DefaultEnd)
			faults := map[[2]string]Fault{}
			for _, f := range res.Faults {
				faults[[2]string{f.Box, f.Component}] = f
			}
			totals := map[[2]string]float64{}
			for k, v := range fd.series {
				if k.metric == telemetry.PoolTotalBytes {
					totals[[2]string{k.box, k.component}] = v[0]
				}
			}
			checked := map[string]int{}
			for k, v := range fd.series {
				f, isFault := faults[[2]string{k.box, k.component}]
				onset := -1
				if isFault {
					onset = slices.IndexFunc(fd.times[k], func(t time.Time) bool { return !t.Before(f.Onset) })
					require.GreaterOrEqual(t, onset, 0)
				}
				msg := func(what string) string { return k.box + " " + k.component + " " + k.metric + ": " + what }
				latency := k.metric == telemetry.VolumeReadLatencyMs || k.metric == telemetry.VolumeWriteLatencyMs
				switch {
				case isFault && faultMetric(f.Kind, k.metric),
					// Of a faulty volume's two latencies, the one that triggers is the faulty one.
					isFault && f.Kind == finding.RuleLatency && latency && latencyTriggers(v):
					checkFault(t, f.Kind, k.metric, v, onset, totals[[2]string{k.box, k.component}], msg)
					checked[f.Kind]++
				default:
					checkHealthy(t, k.metric, v, totals[[2]string{k.box, k.component}], msg)
				}
			}
			for _, f := range res.Faults {
				switch f.Kind {
				case finding.RuleFirmwareAdvisory:
				case finding.RuleSilentBox:
					// Every series of a silent box ends before its onset.
					n := 0
					for k, times := range fd.times {
						if k.box == f.Box {
							require.True(t, times[len(times)-1].Before(f.Onset), "%s %s %s reports after going silent", k.box, k.component, k.metric)
							n++
						}
					}
					require.Positive(t, n, "silent box %s sent something before its onset", f.Box)
				default:
					require.Positive(t, checked[f.Kind], "fault kind %s checked", f.Kind)
				}
			}
		})
	}
}

// faultMetric reports whether metric is the one a fault of kind changes.
func faultMetric(kind, metric string) bool {
	switch kind {
	case finding.RuleCapacity:
		return metric == telemetry.PoolUsedBytes
	case finding.RuleDiskFailure:
		return metric == telemetry.DiskReallocatedSectors || metric == telemetry.DiskPendingSectors
	case finding.RuleSSDWear:
		return metric == telemetry.DiskWearPct
	case finding.RulePortErrors:
		return metric == telemetry.PortCRCErrors
	case finding.RuleCacheBattery:
		return metric == telemetry.BatteryChargePct
	case finding.RuleSaturation:
		return metric == telemetry.NodeCPUBusyPct
	case finding.RuleReplicationLag:
		return metric == telemetry.ReplicationLagS
	}
	return false // latency: one of read/write, told apart by latencyTriggers
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// latencyTriggers applies the latency_anomaly default trigger.
func latencyTriggers(v []float64) bool {
	base := v[:len(v)/2]
	med := median(base)
	dev := make([]float64, len(base))
	for i, x := range base {
		dev[i] = math.Abs(x - med)
	}
	limit := med + max(6*1.4826*median(dev), 2)
	for _, x := range v[len(v)-6:] {
		if x <= limit || x < 2*med {
			return false
		}
	}
	return true
}

// increases returns the reset-aware deltas of a counter.
func increases(v []float64) []float64 {
	d := make([]float64, len(v)-1)
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			d[i-1] = v[i]
		} else {
			d[i-1] = v[i] - v[i-1]
		}
	}
	return d
}

func inRange(t *testing.T, v []float64, lo, hi float64, msg func(string) string) {
	t.Helper()
	require.GreaterOrEqual(t, slices.Min(v), lo, msg("minimum"))
	require.LessOrEqual(t, slices.Max(v), hi, msg("maximum"))
}

func all(v []float64, ok func(float64) bool) bool {
	for _, x := range v {
		if !ok(x) {
			return false
		}
	}
	return true
}

// daysToFull forecasts from the endpoints of the series, 5-minute samples.
func daysToFull(used []float64, total float64) float64 {
	days := float64(len(used)-1) * DefaultInterval.Hours() / 24
	slope := (used[len(used)-1] - used[0]) / days
	if slope <= 0 {
		return math.Inf(1)
	}
	return (total - used[len(used)-1]) / slope
}

func checkHealthy(t *testing.T, metric string, v []float64, total float64, msg func(string) string) {
	t.Helper()
	switch metric {
	case telemetry.PoolUsedBytes:
		frac := make([]float64, len(v))
		for i, x := range v {
			frac[i] = x / total
		}
		inRange(t, frac, 0.30, 0.75, msg)
		require.Greater(t, daysToFull(v, total), 60.0, msg("days to full"))
	case telemetry.VolumeReadLatencyMs:
		inRange(t, v, 0.5*0.85*0.9, 2*1.15*1.1, msg)
		require.False(t, latencyTriggers(v), msg("latency trigger"))
	case telemetry.VolumeWriteLatencyMs:
		inRange(t, v, 0.3*0.85*0.9, 1.5*1.15*1.1, msg)
		require.False(t, latencyTriggers(v), msg("latency trigger"))
	case telemetry.DiskReallocatedSectors, telemetry.DiskMediaErrors:
		require.Equal(t, v[0], slices.Min(v), msg("constant"))
		require.Equal(t, v[0], slices.Max(v), msg("constant"))
		require.LessOrEqual(t, v[0], 8.0, msg("level"))
	case telemetry.DiskPendingSectors:
		inRange(t, v, 0, 0, msg)
	case telemetry.DiskWearPct:
		inRange(t, v, 5, 60, msg)
		require.LessOrEqual(t, v[len(v)-1]-v[0], 0.002*2+0.001, msg("wear growth"))
	case telemetry.PortCRCErrors, telemetry.PortLinkResets:
		d := increases(v)
		last := -1000
		for i, x := range d {
			if x == 0 {
				continue
			}
			require.Equal(t, 1.0, x, msg("increment size"))
			require.GreaterOrEqual(t, i-last, 144, msg("increments 12 h apart"))
			last = i
		}
	case telemetry.BatteryChargePct:
		inRange(t, v, 95, 100, msg)
	case telemetry.CacheWritePendingPct:
		inRange(t, v, 5, 30, msg)
	case telemetry.NodeCPUBusyPct:
		inRange(t, v, 20, 60, msg)
	case telemetry.ReplicationLagS:
		inRange(t, v, 5, 60, msg)
	case telemetry.CacheReadHitPct, telemetry.VolumeIOPS, telemetry.DiskTemperatureC, telemetry.PoolTotalBytes:
		require.Positive(t, slices.Min(v), msg("positive"))
	default:
		t.Fatalf("unexpected metric %s", metric)
	}
}

func checkFault(t *testing.T, kind, metric string, v []float64, onset int, total float64, msg func(string) string) {
	t.Helper()
	before, after := v[:onset], v[onset:]
	switch kind {
	case finding.RuleCapacity:
		end := v[len(v)-1] / total
		require.GreaterOrEqual(t, end, 0.79, msg("used at end"))
		require.Less(t, end, 0.95, msg("used at end"))
		days := daysToFull(v, total)
		require.GreaterOrEqual(t, days, 2.5, msg("days to full"))
		require.LessOrEqual(t, days, 10.5, msg("days to full"))
	case finding.RuleLatency:
		require.True(t, latencyTriggers(v), msg("latency trigger"))
		require.Greater(t, slices.Min(after), 3.5, msg("faulty latency"))
	case finding.RuleDiskFailure:
		if metric == telemetry.DiskPendingSectors {
			inRange(t, before, 0, 0, msg)
			require.Positive(t, v[len(v)-1], msg("pending at end"))
			require.LessOrEqual(t, v[len(v)-1], 8.0, msg("pending at end"))
			break
		}
		require.GreaterOrEqual(t, v[len(v)-1]-v[0], 20.0, msg("reallocated delta"))
		steps := 0
		for _, d := range increases(v) {
			if d > 0 {
				steps++
			}
		}
		require.GreaterOrEqual(t, steps, 3, msg("reallocated steps"))
		require.Equal(t, v[0], slices.Max(before), msg("constant before onset"))
	case finding.RuleSSDWear:
		require.GreaterOrEqual(t, after[0], 88.0, msg("wear at onset"))
		require.LessOrEqual(t, after[0], 93.0, msg("wear at onset"))
		require.GreaterOrEqual(t, slices.Min(v[len(v)-6:]), 85.0, msg("wear at end"))
	case finding.RulePortErrors:
		d := increases(v)
		last := d[len(d)-6:]
		require.True(t, all(last, func(x float64) bool { return x > 0 }), msg("every interval increases"))
		require.GreaterOrEqual(t, last[0]+last[1]+last[2]+last[3]+last[4]+last[5], 50.0, msg("sum of last 6"))
	case finding.RuleCacheBattery:
		inRange(t, before, 95, 100, msg)
		require.True(t, all(v[len(v)-6:], func(x float64) bool { return x < 50 && x >= 10 }), msg("last 6 low"))
	case finding.RuleSaturation:
		inRange(t, before, 20, 60, msg)
		require.True(t, all(v[len(v)-12:], func(x float64) bool { return x >= 90 }), msg("last 12 saturated"))
	case finding.RuleReplicationLag:
		inRange(t, before, 5, 60, msg)
		require.True(t, all(v[len(v)-6:], func(x float64) bool { return x > 900 }), msg("last 6 over RPO"))
	default:
		t.Fatalf("unexpected fault kind %s", kind)
	}
}

// BenchmarkRunDemo measures the demo's default fleet: 50 boxes, 48 hours.
func BenchmarkRunDemo(b *testing.B) {
	for b.Loop() {
		_, err := Run(Options{Boxes: 50, Hours: 48, Faults: 9, Seed: 1, Out: b.TempDir(), Advisories: testAdvisories})
		if err != nil {
			b.Fatal(err)
		}
	}
}
