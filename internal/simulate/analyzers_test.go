package simulate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// TestAnalyzersFindExactlyTheFaults runs the built-in analyzers with default
// thresholds on a simulated fleet, each box over a 48 h window ending at its
// newest sample, and checks the demo's promise: every injected fault is found
// and nothing else is.
func TestAnalyzersFindExactlyTheFaults(t *testing.T) {
	advs, err := analysis.LoadAdvisories("../../config/advisories.yaml")
	require.NoError(t, err)
	eng, err := analysis.New(analysis.Options{Advisories: advs})
	require.NoError(t, err)

	tests := []struct {
		name string
		o    Options
	}{
		{name: "48h span", o: Options{Boxes: 12, Hours: 48, Faults: 9, Seed: 11, Advisories: advs}},
		{name: "72h span with 6h batches", o: Options{Boxes: 10, Hours: 72, Faults: 10, BatchHours: 6, Seed: 12, Advisories: advs}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.o)
			inv, err := fleet.Load(res.InventoryPath)
			require.NoError(t, err)
			samples := samplesByBox(t, res.BatchDir)

			want := []string{}
			for _, f := range res.Faults {
				want = append(want, finding.Fingerprint(f.Box, f.Kind, f.Component))
			}
			got := []string{}
			for _, f := range scanFleet(t, eng, inv, samples) {
				got = append(got, f.Fingerprint())
			}
			require.ElementsMatch(t, want, got)
		})
	}
}

// scanFleet analyses every box of inv at the end of its samples, as a scan
// would: the whole simulated history for the rules that want it, the fleet's
// newest sample as its clock.
func scanFleet(t *testing.T, eng *analysis.Engine, inv *fleet.Inventory, samples map[string][]telemetry.Sample) []finding.Finding {
	t.Helper()
	var fleetNewest time.Time
	for _, ss := range samples {
		for _, s := range ss {
			if s.Time.After(fleetNewest) {
				fleetNewest = s.Time
			}
		}
	}
	var out []finding.Finding
	for _, b := range inv.Boxes() {
		ss := samples[b.ID]
		require.NotEmpty(t, ss, b.ID)
		newest := ss[0].Time
		for _, s := range ss {
			if s.Time.After(newest) {
				newest = s.Time
			}
		}
		slices.SortFunc(ss, func(a, b telemetry.Sample) int {
			if c := strings.Compare(a.Component, b.Component); c != 0 {
				return c
			}
			if c := strings.Compare(a.Metric, b.Metric); c != 0 {
				return c
			}
			return a.Time.Compare(b.Time)
		})
		fs, err := eng.Analyze(context.Background(), analysis.Window{Box: b, Start: newest.Add(-analysis.DefaultWindow),
			End: newest.Add(time.Nanosecond), Samples: ss, Now: fleetNewest})
		require.NoError(t, err)
		out = append(out, fs...)
	}
	return out
}

func samplesByBox(t *testing.T, dir string) map[string][]telemetry.Sample {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][]telemetry.Sample{}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		_, err = telemetry.Parse(f, telemetry.Options{Name: e.Name(), Now: DefaultEnd}, func(ss []telemetry.Sample) error {
			for _, s := range ss {
				out[s.Box] = append(out[s.Box], s)
			}
			return nil
		})
		require.NoError(t, f.Close())
		require.NoError(t, err)
	}
	return out
}
