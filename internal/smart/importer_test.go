package smart

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// TestImportRealDriveStats converts three real days of Backblaze data and
// reads the result back with the telemetry parser, as ingest would.
func TestImportRealDriveStats(t *testing.T) {
	var files []string
	for _, d := range []string{"2013-04-12", "2013-04-10", "2013-04-11"} {
		files = append(files, sharedData(t, "backblaze-2013q2/"+d+".csv.gz"))
	}
	out := t.TempDir()
	res, err := Import(ImportOptions{Files: files, Out: out, PodSize: 500})
	require.NoError(t, err)
	require.Equal(t, 3, res.Files)
	require.Zero(t, res.Rejected)
	require.Greater(t, res.Drives, 20000)
	require.InDelta(t, res.Drives/500, res.Boxes, 3, "pods of about 500 drives")

	// Each batch parses cleanly; together they hold every sample.
	var samples int64
	for _, name := range []string{"2013-04-10.csv.gz", "2013-04-11.csv.gz", "2013-04-12.csv.gz"} {
		f, err := os.Open(filepath.Join(out, "batches", name))
		require.NoError(t, err)
		pr, err := telemetry.Parse(f, telemetry.Options{Name: name}, func([]telemetry.Sample) error { return nil })
		f.Close()
		require.NoError(t, err)
		require.Zero(t, pr.Rejected)
		samples += pr.Accepted
	}
	require.Equal(t, res.Samples, samples)

	// The truth file has one row per failed drive, on a known box.
	inv, err := fleet.Load(res.Inventory)
	require.NoError(t, err)
	require.Len(t, inv.Boxes(), res.Boxes)
	f, err := os.Open(res.TruthPath)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"box", "component", "time", "rule"}, rows[0])
	require.Len(t, rows[1:], res.Failures)
	require.Positive(t, res.Failures)
	for _, r := range rows[1:] {
		_, ok := inv.Box(r[0])
		require.True(t, ok, "truth box %s in the inventory", r[0])
		require.Equal(t, DiskRule, r[3])
	}
}

func TestImportRejectsFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "2013-04-10.csv")
	require.NoError(t, os.WriteFile(bad, []byte("date,model,failure\n2013-04-10,M,0\n"), 0o644))
	_, err := Import(ImportOptions{Files: []string{bad}, Out: filepath.Join(dir, "out"), Boxes: BoxMapper{Pods: 4}})
	require.ErrorIs(t, err, ErrNotDriveStats)
	require.ErrorContains(t, err, bad+`:1: missing column "serial_number"`)
	_, err = os.Stat(filepath.Join(dir, "out", "batches", "2013-04-10.csv.gz"))
	require.ErrorIs(t, err, os.ErrNotExist, "no half-written batch left behind")

	_, err = Import(ImportOptions{Files: []string{bad}, Out: dir})
	require.EqualError(t, err, "import: drives to boxes: give a box column, a box, or a pod count of at least 1")
}
