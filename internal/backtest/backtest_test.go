package backtest

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
	"github.com/sanwatch/sanwatch/internal/realdata"
	"github.com/sanwatch/sanwatch/internal/smart"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// sharedData returns the path of a file of the real drive data.
func sharedData(t *testing.T, name string) string { return realdata.Path(t, name) }

func engine(t *testing.T, th analysis.Thresholds) *analysis.Engine {
	t.Helper()
	e, err := analysis.New(analysis.Options{Thresholds: th})
	require.NoError(t, err)
	return e
}

// TestBackblazeQ2 replays a quarter of real drive data (Backblaze 2013 Q2,
// 249 failures among ~24,000 drives) through the disk rule at its defaults
// and the plain "any reallocated or pending sector" rule. The disk rule must
// flag at most 5% of the healthy drives while finding most failures early;
// the plain rule, scored in the same run, flags far more healthy drives.
func TestBackblazeQ2(t *testing.T) {
	dir := sharedData(t, "backblaze-2013q2")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(dir, e.Name()))
	}
	// Read the files as starter import backblaze does, straight into memory.
	data := NewData()
	failed := map[string]smart.Failure{}
	for _, path := range files {
		f, err := os.Open(path)
		require.NoError(t, err)
		_, err = smart.ReadDriveStats(f, smart.DriveStatsOptions{
			Name: path, Boxes: smart.BoxMapper{Pods: 480},
			OnFailure: func(fl smart.Failure) { failed[fl.Box+"/"+fl.Component] = fl },
		}, func(s []telemetry.Sample) error { data.Add(s); return nil })
		f.Close()
		require.NoError(t, err)
	}
	data.finish()
	require.Len(t, failed, 249)
	var csv strings.Builder
	csv.WriteString(smart.TruthHeader + "\n")
	for _, fl := range failed {
		csv.WriteString(fl.Box + "," + fl.Component + "," + fl.Time.Format(time.RFC3339) + "," + smart.DiskRule + "\n")
	}
	truth, err := ReadTruth(strings.NewReader(csv.String()), "truth.csv")
	require.NoError(t, err)
	base, err := CompileBaseline("disk.reallocated_sectors > 0 || disk.pending_sectors > 0")
	require.NoError(t, err)
	rep, err := Run(context.Background(), data, truth, Options{Engine: engine(t, nil), Lead: 7 * 24 * time.Hour, Baseline: base})
	require.NoError(t, err)
	require.Equal(t, 249, rep.Incidents)
	require.Empty(t, rep.Skipped)
	var disk, plain RuleScore
	for _, s := range rep.Rules {
		switch s.Rule {
		case finding.RuleDiskFailure:
			disk = s
		case BaselineRule:
			plain = s
		}
	}
	require.Equal(t, 249, disk.Incidents)
	require.Greater(t, disk.Healthy, 23000)
	t.Logf("disk rule: %.1f%% found >= 7d ahead, %.1f%% of healthy drives flagged; plain rule: %.1f%%, %.1f%%",
		disk.AheadShare*100, disk.HealthyShare*100, plain.AheadShare*100, plain.HealthyShare*100)
	require.LessOrEqual(t, disk.HealthyShare, 0.05, "at most 5% of healthy drives flagged")
	require.GreaterOrEqual(t, disk.AheadShare, 0.45, "most failures found a week ahead")
	require.Greater(t, plain.HealthyShare, 1.8*disk.HealthyShare, "the plain rule cries wolf twice as often")
	require.Greater(t, disk.Precision, plain.Precision)
}

// series builds a daily series of one disk counter.
func series(box, comp, metric string, start time.Time, vals ...float64) []telemetry.Sample {
	out := make([]telemetry.Sample, len(vals))
	for i, v := range vals {
		out[i] = telemetry.Sample{Time: start.Add(time.Duration(i) * 24 * time.Hour), Box: box, Component: comp, Metric: metric, Value: v}
	}
	return out
}

// TestScoring checks recall, lead, healthy flags and precision on a small
// fleet whose answers are known.
func TestScoring(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewData()
	zeros := make([]float64, 40)
	grow := make([]float64, 40) // reallocated sectors from day 10 on: +10 a day
	for i := range grow {
		if i >= 10 {
			grow[i] = float64(10 * (i - 9))
		}
	}
	d.Add(series("b1", "disk/failing", telemetry.DiskReallocatedSectors, t0, grow...))
	d.Add(series("b1", "disk/quiet-failure", telemetry.DiskReallocatedSectors, t0, zeros...))
	d.Add(series("b1", "disk/healthy", telemetry.DiskReallocatedSectors, t0, zeros...))
	d.Add(series("b2", "disk/false-alarm", telemetry.DiskReallocatedSectors, t0, grow...))
	d.finish()
	truth, err := ReadTruth(strings.NewReader("box,component,time\n"+
		"b1,disk/failing,2026-02-05\n"+ // day 35: flagged on day 10, 25 days ahead
		"b1,disk/quiet-failure,2026-01-30\n"+
		"b1,disk/never-seen,2026-01-20\n"+
		"b9,disk/0,2026-01-20\n"+
		"b1,disk/healthy,2027-01-01\n"), "truth.csv")
	require.NoError(t, err)
	base, err := CompileBaseline("disk.reallocated_sectors >= 200")
	require.NoError(t, err)
	rep, err := Run(context.Background(), d, truth, Options{Engine: engine(t, nil), Lead: 7 * 24 * time.Hour, Baseline: base})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Incidents)
	require.Len(t, rep.Skipped, 3)
	require.Contains(t, rep.Skipped[0], "truth line 4: b1 disk/never-seen is never seen in the data")
	require.Contains(t, rep.Skipped[2], "outside the period replayed")
	require.Len(t, rep.Rules, 2)
	s := rep.Rules[0]
	require.Equal(t, finding.RuleDiskFailure, s.Rule)
	require.Equal(t, 2, s.Incidents)
	require.Equal(t, 1, s.Found)
	require.Equal(t, 0.5, s.Recall)
	require.Equal(t, 25*24*time.Hour, s.LeadMedian)
	require.Equal(t, 1, s.FoundAhead)
	require.Equal(t, 2, s.Healthy) // disk/healthy (its incident is outside the period) and disk/false-alarm
	require.Equal(t, 1, s.HealthyFlagged)
	require.Equal(t, 0.5, s.Precision)
	b := rep.Rules[1]
	require.Equal(t, BaselineRule, b.Rule)
	require.Equal(t, 1, b.Found)
	require.Equal(t, 6*24*time.Hour, b.LeadMedian, "200 sectors on day 29, six days before the incident")
	require.Equal(t, 0, b.FoundAhead)
	require.Equal(t, 1, b.HealthyFlagged)

	// A period with no data is an error, not a table of zeros.
	_, err = Run(context.Background(), d, truth, Options{Engine: engine(t, nil), From: t0.AddDate(1, 0, 0)})
	require.ErrorIs(t, err, ErrNoData)
	_, err = Run(context.Background(), NewData(), truth, Options{Engine: engine(t, nil)})
	require.ErrorIs(t, err, ErrNoData)
}

// TestClockJumpsBack: a box whose clock went back an hour sends samples out
// of time order; they are replayed in time order (a repeated time keeps the
// later arrival) and the jump is reported, not silently absorbed.
func TestClockJumpsBack(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewData()
	var arrivals []telemetry.Sample
	for i := range 24 { // 2 hours of 5-minute points, then the clock goes back 1 h
		arrivals = append(arrivals, telemetry.Sample{Time: t0.Add(time.Duration(i) * 5 * time.Minute), Box: "b1", Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: float64(i)})
	}
	for i := range 6 {
		arrivals = append(arrivals, telemetry.Sample{Time: t0.Add(time.Hour + time.Duration(i)*5*time.Minute), Box: "b1", Component: "pool/p0", Metric: telemetry.PoolUsedBytes, Value: 100 + float64(i)})
	}
	d.Add(arrivals)
	d.finish()
	require.Len(t, d.Notes, 1)
	require.Equal(t, "b1: its clock went back 1 time(s), by up to 55m0s; samples replayed in time order, a repeated time keeps the later one", d.Notes[0])
	c := d.boxes["b1"][0]
	require.Len(t, c.t, 24, "repeated times folded")
	require.True(t, slices.IsSorted(c.t))
	require.Equal(t, 100.0, c.v[12], "the later arrival at 01:00 wins")
}
