package smart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

func TestReadSmartctl(t *testing.T) {
	byMetric := func(s []telemetry.Sample) map[string]float64 {
		m := map[string]float64{}
		for _, x := range s {
			m[x.Metric] = x.Value
		}
		return m
	}
	read := func(t *testing.T, files ...string) ([]telemetry.Sample, SmartctlResult, error) {
		var in strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join("testdata", f))
			require.NoError(t, err)
			in.Write(b)
			in.WriteString("\n")
		}
		return ReadSmartctl(strings.NewReader(in.String()), SmartctlOptions{Name: "smart.json", Box: "box-0001"})
	}

	t.Run("ATA", func(t *testing.T) {
		s, res, err := read(t, "ata.json")
		require.NoError(t, err)
		require.Equal(t, 1, res.Documents)
		require.Equal(t, []Drive{{Box: "box-0001", Component: "disk/Z300ABCD", Model: "ST4000DM000-1F2168"}}, res.Drives)
		m := byMetric(s)
		require.Equal(t, map[string]float64{
			"disk.smart_1_raw":                  152313504,
			telemetry.DiskReallocatedSectors:    24,
			telemetry.DiskReportedUncorrectable: 2,
			telemetry.DiskCommandTimeouts:       4295032833,
			telemetry.DiskPendingSectors:        8,
			telemetry.DiskOfflineUncorrectable:  8,
			telemetry.DiskUDMACRCErrors:         0,
			telemetry.DiskPowerOnHours:          30125,
			telemetry.DiskTemperatureC:          31, // decoded, not the packed raw value
			"disk.smart_failing":                0,
		}, m)
		require.Equal(t, time.Unix(1795000000, 0).UTC(), s[0].Time)
	})
	t.Run("NVMe", func(t *testing.T) {
		s, _, err := read(t, "nvme.json")
		require.NoError(t, err)
		m := byMetric(s)
		require.Equal(t, 3.0, m[telemetry.DiskMediaErrors])
		require.Equal(t, 12.0, m[telemetry.DiskWearPct])
		require.Equal(t, 97.0, m[telemetry.DiskAvailableSparePct])
		require.Equal(t, 41.0, m[telemetry.DiskTemperatureC])
		require.Equal(t, 8120.0, m[telemetry.DiskPowerOnHours])
		require.Equal(t, 120.0, m["disk.nvme_num_err_log_entries"])
		require.NotContains(t, m, "disk.nvme_temperature_sensors")
		require.Equal(t, "disk/S5GXNF0R123456", s[0].Component)
	})
	t.Run("USB bridge with no SMART data", func(t *testing.T) {
		_, res, err := read(t, "usb-bridge.json")
		require.ErrorIs(t, err, ErrNoSMARTData)
		require.EqualError(t, err, "smart.json:1: no SMART data for /dev/sdb (smartctl: /dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x209)])")
		require.Len(t, res.Skipped, 1)
	})
	t.Run("real virtio disk, no SMART", func(t *testing.T) {
		_, _, err := read(t, "virtio-no-smart.json")
		require.ErrorIs(t, err, ErrNoSMARTData)
		require.ErrorContains(t, err, "smartctl: /dev/vda: Unable to detect device type")
	})
	t.Run("several drives, one skipped, the others kept", func(t *testing.T) {
		s, res, err := read(t, "ata.json", "usb-bridge.json", "nvme.json")
		require.NoError(t, err)
		require.Equal(t, 3, res.Documents)
		require.Len(t, res.Drives, 2)
		require.Len(t, res.Skipped, 1)
		require.Equal(t, "smart.json", res.Skipped[0].File)
		require.Greater(t, res.Skipped[0].Line, 20, "the skipped document's line")
		require.Equal(t, res.Samples, int64(len(s)))
	})
}

func TestReadSmartctlBadInput(t *testing.T) {
	cases := []struct {
		name, in, box, want string
	}{
		{"not JSON", "hello\n", "b1", "x.json:1: not smartctl JSON: invalid character 'h'"},
		{"JSON but not smartctl", "{\"a\": 1}\n", "b1", "x.json:1: not smartctl JSON: no \"smartctl\" version"},
		{"second document broken", "{\"smartctl\":{\"version\":[7,3]}}\n{\"smartctl\": [\n", "b1", "x.json:2: not smartctl JSON"},
		{"empty", "", "b1", "x.json: empty: no smartctl document"},
		{"bad box", "{}", "box 1", `x.json: box "box 1"`},
		{"serial with a slash", `{"smartctl":{"version":[7,3]},"serial_number":"a/b","local_time":{"time_t":1},"ata_smart_attributes":{"table":[{"id":5,"raw":{"value":1}}]}}`,
			"b1", `serial_number "a/b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadSmartctl(strings.NewReader(tc.in), SmartctlOptions{Name: "x.json", Box: tc.box})
			require.ErrorContains(t, err, tc.want)
		})
	}
}
