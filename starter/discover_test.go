package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// TestDiscover: `starter discover` records the hosts smartctl_exporter
// series name (their instance label) as boxes; a mapping that matches
// nothing fails naming each entry, and records no empty fleet.
func TestDiscover(t *testing.T) {
	vm := tsdbtest.Start(t)
	now := time.Now().UnixMilli()
	var body strings.Builder
	for _, host := range []string{"host-a:9633", "host-b:9633"} {
		fmt.Fprintf(&body, `{"metric":{"__name__":"smartctl_device_attribute","instance":%q,"device":"sda","attribute_id":"5","attribute_value_type":"raw"},"values":[0,0],"timestamps":[%d,%d]}`+"\n",
			host, now-120_000, now-60_000)
	}
	resp, err := http.Post(vm.URL+"/api/v1/import", "application/json", strings.NewReader(body.String()))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, vm.Flush(t.Context()))

	tests := []struct {
		name      string
		mapping   string
		wantCode  int
		wantOut   string
		wantErr   []string
		wantBoxes []string
	}{
		{"smartctl_exporter", "smartctl_exporter.yaml", 0, "discovered 2 boxes\n",
			[]string{"warning: mapping smartctl_exporter.yaml entry 2 (disk.pending_sectors <- smartctl_device_attribute{attribute_id=\"197\",attribute_value_type=\"raw\"}): no series with label instance"},
			[]string{"host-a:9633", "host-b:9633"}},
		{"a mapping that matches nothing", "netapp_harvest.yaml", 1, "",
			[]string{"starter: discover boxes: no series matched: mapping netapp_harvest.yaml entry 1 (volume.read_latency_ms <- volume_read_latency): no series with label cluster",
				"mapping netapp_harvest.yaml entry 5 (pool.total_bytes <- aggr_space_total)"},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "sanwatch.db")
			cfg := filepath.Join(dir, "sanwatch.yaml")
			mapping, err := filepath.Abs(filepath.Join("..", "config", "mappings", tc.mapping))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("store:\n  path: %s\nsamples:\n  backend: prometheus\n  url: %s\n  mapping_files: [%s]\n",
				db, vm.URL, mapping)), 0o600))
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"--config", cfg, "discover", "--window", "1h"}, &out, &errOut)
			require.Equal(t, tc.wantCode, code, "stderr: %s", errOut.String())
			require.Equal(t, tc.wantOut, out.String())
			for _, w := range tc.wantErr {
				require.Contains(t, errOut.String(), w)
			}
			st, err := store.OpenSQLite(db)
			require.NoError(t, err)
			defer st.Close()
			boxes, err := st.Boxes(t.Context(), store.BoxQuery{})
			require.NoError(t, err)
			var ids []string
			for _, b := range boxes {
				ids = append(ids, b.ID)
			}
			require.Equal(t, tc.wantBoxes, ids)
		})
	}
}
