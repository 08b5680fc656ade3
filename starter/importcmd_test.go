package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestImportCommands(t *testing.T) {
	t.Setenv("SANWATCH_INVENTORY", filepath.Join(t.TempDir(), "none.yaml"))
	out := t.TempDir()
	bad := filepath.Join(out, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"x": 1}`), 0o644))
	noSerial := filepath.Join(out, "2013-04-10.csv")
	require.NoError(t, os.WriteFile(noSerial, []byte("date,model,failure\n2013-04-10,M,0\n"), 0o644))
	td := filepath.Join("..", "internal", "smart", "testdata")
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"smartctl: drives kept, a USB bridge skipped", []string{"import", "smartctl", "--box", "box-0001", "--out", out,
			filepath.Join(td, "ata.json"), filepath.Join(td, "usb-bridge.json")}, 0,
			[]string{"ok   " + filepath.Join(td, "ata.json") + " samples=10", "skip " + filepath.Join(td, "usb-bridge.json") + ":1: no SMART data for /dev/sdb"}},
		{"smartctl: not smartctl output", []string{"import", "smartctl", "--box", "box-0001", "--out", out, bad}, 1,
			[]string{"FAIL " + bad + `:1: not smartctl JSON: no "smartctl" version`}},
		{"smartctl: no box", []string{"import", "smartctl", "--out", out, bad}, 1, []string{"--box: required"}},
		{"backblaze: missing serial_number column", []string{"import", "backblaze", "--out", out, noSerial}, 1,
			[]string{noSerial + `:1: missing column "serial_number"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			all := stdout.String() + stderr.String()
			require.Equal(t, tc.code, code, all)
			for _, want := range tc.contains {
				require.Contains(t, all, want)
			}
		})
	}
	_, err := os.Stat(filepath.Join(out, "ata.csv.gz"))
	require.NoError(t, err, "the ATA batch was written")
}
