package tsdb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/tsdb"
)

// TestLoadMappingErrors: a bad mapping file is refused at load, naming the
// file, the entry and what is wrong.
func TestLoadMappingErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown metric", "box_label: instance\nentries:\n  - metric: disk.realloc\n    selector: x\n    component: disk/{{.device}}\n",
			`entry 1 (disk.realloc): metric "disk.realloc" is not in the catalogue`},
		{"not a series selector", "box_label: instance\nentries:\n  - metric: disk.wear_pct\n    selector: rate(x[5m])\n    component: disk/{{.device}}\n",
			`entry 1 (disk.wear_pct): selector "rate(x[5m])": want a series selector: name{label="value",...}`},
		{"no box label", "entries:\n  - metric: disk.wear_pct\n    selector: x\n    component: disk/{{.device}}\n",
			`entry 1 (disk.wear_pct): box_label "": want a label name`},
		{"bad template", "box_label: instance\nentries:\n  - metric: disk.wear_pct\n    selector: x\n    component: disk/{{.device\n",
			`entry 1 (disk.wear_pct): component "disk/{{.device": template`},
		{"negative scale", "box_label: instance\nentries:\n  - metric: disk.wear_pct\n    selector: x\n    component: d/{{.device}}\n    scale: -1\n",
			`entry 1 (disk.wear_pct): scale -1: must not be negative`},
		{"unknown field", "box_label: instance\nentries:\n  - metric: disk.wear_pct\n    selectr: x\n",
			`field selectr not found`},
		{"no entries", "box_label: instance\n", `: no entries`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o600))
			_, err := tsdb.LoadMapping(p)
			require.ErrorContains(t, err, "load mapping "+p)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := tsdb.LoadMapping()
	require.EqualError(t, err, "load mapping: no mapping files")
}
