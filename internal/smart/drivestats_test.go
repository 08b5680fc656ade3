package smart

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/realdata"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// sharedData returns the path of a file of the real drive data.
func sharedData(t *testing.T, name string) string { return realdata.Path(t, name) }

func readAll(t *testing.T, in string, o DriveStatsOptions) (DriveStatsResult, []telemetry.Sample, []Failure, error) {
	t.Helper()
	var samples []telemetry.Sample
	var fails []Failure
	o.OnFailure = func(f Failure) { fails = append(fails, f) }
	res, err := ReadDriveStats(strings.NewReader(in), o, func(s []telemetry.Sample) error {
		samples = append(samples, s...)
		return nil
	})
	return res, samples, fails, err
}

func TestReadDriveStatsRealFiles(t *testing.T) {
	cases := []struct {
		name        string
		file        string
		wantColumns []int
		minRows     int64
		wantFailed  bool
	}{
		{"2013 daily snapshot", "backblaze-2013q2/2013-04-10.csv.gz", []int{1, 5, 9, 194, 197}, 20000, false},
		{"2019 toshiba last 10 days", "backblaze-2019-toshiba-mq01abf050-last10d.csv.gz", []int{3, 5, 9, 194, 197, 199, 222, 226}, 5000, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(sharedData(t, tc.file))
			require.NoError(t, err)
			defer f.Close()
			metrics := map[string]int{}
			boxes := map[string]bool{}
			var fails []Failure
			res, err := ReadDriveStats(f, DriveStatsOptions{
				Name: tc.file, Boxes: BoxMapper{Pods: 50},
				OnFailure: func(fl Failure) { fails = append(fails, fl) },
			}, func(s []telemetry.Sample) error {
				for _, x := range s {
					metrics[x.Metric]++
					boxes[x.Box] = true
					require.True(t, strings.HasPrefix(x.Component, "disk/"))
				}
				return nil
			})
			require.NoError(t, err)
			require.Zero(t, res.Rejected, "%v", res.Errors)
			require.GreaterOrEqual(t, res.Rows, tc.minRows)
			require.Equal(t, res.Rows, res.Accepted)
			require.Subset(t, res.Columns, tc.wantColumns)
			require.Positive(t, metrics[telemetry.DiskReallocatedSectors])
			require.Positive(t, metrics[telemetry.DiskPowerOnHours])
			require.LessOrEqual(t, len(boxes), 50)
			require.Greater(t, len(boxes), 40, "drives spread over the pods")
			if tc.wantFailed {
				require.NotEmpty(t, fails)
				require.Positive(t, metrics[telemetry.DiskUDMACRCErrors])
				require.Positive(t, metrics["disk.smart_222_raw"], "unmapped attributes kept under their id")
			}
		})
	}
}

func TestReadDriveStatsBadInput(t *testing.T) {
	const header = "date,serial_number,model,capacity_bytes,failure,smart_5_normalized,smart_5_raw,smart_197_raw\n"
	cases := []struct {
		name     string
		in       string
		wantErr  string // whole file rejected
		accepted int64
		errs     []string // rejected rows, in order
	}{
		{
			name:    "missing serial_number column",
			in:      "date,model,failure,smart_5_raw\n2013-04-10,X,0,1\n",
			wantErr: `t.csv:1: missing column "serial_number"`,
		},
		{name: "empty", in: "", wantErr: "t.csv: empty file"},
		{
			name: "bad rows rejected, good kept",
			in: header +
				"2013-04-10,S1,M,1,0,100,0,0\n" +
				"2013-13-10,S2,M,1,0,100,0,0\n" +
				"2013-04-10,,M,1,0,100,0,0\n" +
				"2013-04-10,S3,M,1,0,100,lots,0\n" +
				"2013-04-10,S4,M,1,2,100,0,0\n" +
				"2013-04-10,S5,M,1,0\n" +
				"2013-04-10,S/6,M,1,0,100,0,0\n" +
				"2013-04-10,S7,M,1,1,100,8,\n",
			accepted: 2,
			errs: []string{
				`t.csv:3: date "2013-13-10": want YYYY-MM-DD`,
				`t.csv:4: empty serial_number`,
				`t.csv:5: smart_5_raw "lots": want a number >= 0`,
				`t.csv:6: failure "2": want 0 or 1`,
				`t.csv:7: 5 fields, header has 8`,
				`t.csv:8: serial_number "S/6": want 1 to 123 of A-Z a-z 0-9 . _ : -`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, samples, fails, err := readAll(t, tc.in, DriveStatsOptions{Name: "t.csv", Boxes: BoxMapper{Box: "lab"}})
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrNotDriveStats)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.accepted, res.Accepted)
			var got []string
			for _, e := range res.Errors {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.errs, got)
			at := time.Date(2013, 4, 10, 0, 0, 0, 0, time.UTC)
			require.Equal(t, []telemetry.Sample{
				{Time: at, Box: "lab", Component: "disk/S1", Metric: telemetry.DiskReallocatedSectors, Value: 0},
				{Time: at, Box: "lab", Component: "disk/S1", Metric: telemetry.DiskPendingSectors, Value: 0},
				{Time: at, Box: "lab", Component: "disk/S7", Metric: telemetry.DiskReallocatedSectors, Value: 8},
			}, samples)
			require.Equal(t, []Failure{{Box: "lab", Component: "disk/S7", Model: "M", Time: at}}, fails)
		})
	}
}

func TestBoxMapper(t *testing.T) {
	m := BoxMapper{Pods: 7}
	require.NoError(t, m.Validate())
	require.Equal(t, m.boxOf("ABC123"), m.boxOf("ABC123"), "stable")
	seen := map[string]bool{}
	for i := range 500 {
		b := m.boxOf("SERIAL" + string(rune('A'+i%26)) + strings.Repeat("x", i%13))
		require.Regexp(t, `^pod-000[0-6]$`, b)
		seen[b] = true
	}
	require.Len(t, seen, 7)
	require.EqualError(t, BoxMapper{}.Validate(), "drives to boxes: give a box column, a box, or a pod count of at least 1")
	require.Equal(t, "rack", BoxMapper{Box: "rack", Pods: 3}.boxOf("x"))
}
