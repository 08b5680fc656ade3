package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `sites:
  par1: {owners: [storage-par@example.com], escalation: [oncall-par@example.com], tags: [prod]}
  fra1: {owners: [storage-fra@example.com]}
boxes:
  - {id: box-0002, model: SW-9000, firmware: 6.2.0, site: fra1, tags: [dev]}
  - {id: box-0001, model: SW-7000, firmware: 4.2.9, site: par1, owners: [a@example.com], escalation: [], tags: [replicated]}
  - {id: box-0003, model: SW-5000, firmware: 3.1.0, site: lon1}
`

func TestParseAppliesSiteDefaults(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(sample))
	require.NoError(t, err)
	require.Equal(t, 3, inv.Len())

	ids := []string{}
	for _, b := range inv.Boxes() {
		ids = append(ids, b.ID)
	}
	require.Equal(t, []string{"box-0001", "box-0002", "box-0003"}, ids)

	tests := []struct {
		name string
		id   string
		want Box
	}{
		{
			name: "own owners kept, empty escalation from site, own tags kept",
			id:   "box-0001",
			want: Box{ID: "box-0001", Model: "SW-7000", Firmware: "4.2.9", Site: "par1",
				Owners: []string{"a@example.com"}, Escalation: []string{"oncall-par@example.com"}, Tags: []string{"replicated"}},
		},
		{
			name: "owners from site, site without escalation leaves it empty",
			id:   "box-0002",
			want: Box{ID: "box-0002", Model: "SW-9000", Firmware: "6.2.0", Site: "fra1",
				Owners: []string{"storage-fra@example.com"}, Tags: []string{"dev"}},
		},
		{
			name: "unknown site gives no defaults",
			id:   "box-0003",
			want: Box{ID: "box-0003", Model: "SW-5000", Firmware: "3.1.0", Site: "lon1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := inv.Box(tc.id)
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}

	_, ok := inv.Box("box-9999")
	require.False(t, ok)
	require.Equal(t, []string{
		`fleet.yaml: box box-0003 has site "lon1", which has no entry under sites`,
		"fleet.yaml: box box-0003 has no owner",
	}, inv.Warnings())
}

func TestBoxReturnsCopy(t *testing.T) {
	inv, err := Parse("fleet.yaml", []byte(sample))
	require.NoError(t, err)
	b, _ := inv.Box("box-0001")
	b.Owners[0] = "evil@example.com"
	all := inv.Boxes()
	all[0].Tags[0] = "changed"
	again, _ := inv.Box("box-0001")
	require.Equal(t, []string{"a@example.com"}, again.Owners)
	require.Equal(t, []string{"replicated"}, again.Tags)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{
			name: "unknown field",
			yaml: "boxes:\n  - {id: b1, model: M, site: s, color: red}\n",
			want: "parse inventory fleet.yaml: yaml: unmarshal errors:\n  line 2: field color not found in type fleet.Box",
		},
		{
			name: "unknown top-level field",
			yaml: "box: []\n",
			want: "parse inventory fleet.yaml: yaml: unmarshal errors:\n  line 1: field box not found in type fleet.file",
		},
		{
			name: "malformed yaml",
			yaml: "boxes: [\n",
			want: "parse inventory fleet.yaml: yaml: line 1: did not find expected node content",
		},
		{
			name: "missing id",
			yaml: "boxes:\n  - {id: b1, model: M, site: s}\n  - {model: M, site: s}\n",
			want: "fleet.yaml: boxes[1]: missing id",
		},
		{
			name: "bad id characters",
			yaml: "boxes:\n  - {id: 'box 1', model: M, site: s}\n",
			want: `fleet.yaml: boxes[0]: id "box 1" must match [A-Za-z0-9._:-]{1,128}`,
		},
		{
			name: "id with slash",
			yaml: "boxes:\n  - {id: a/b, model: M, site: s}\n",
			want: `fleet.yaml: boxes[0]: id "a/b" must match [A-Za-z0-9._:-]{1,128}`,
		},
		{
			name: "id too long",
			yaml: "boxes:\n  - {id: " + strings.Repeat("x", 129) + ", model: M, site: s}\n",
			want: `fleet.yaml: boxes[0]: id "` + strings.Repeat("x", 129) + `" must match [A-Za-z0-9._:-]{1,128}`,
		},
		{
			name: "duplicate id",
			yaml: "boxes:\n  - {id: b1, model: M, site: s}\n  - {id: b2, model: M, site: s}\n  - {id: b1, model: M, site: s}\n",
			want: "fleet.yaml: boxes[2] (b1): duplicate id, first at boxes[0]",
		},
		{
			name: "missing model",
			yaml: "boxes:\n  - {id: b1, site: s}\n",
			want: "fleet.yaml: boxes[0] (b1): missing model",
		},
		{
			name: "missing site",
			yaml: "boxes:\n  - {id: b1, model: M, site: ' '}\n",
			want: "fleet.yaml: boxes[0] (b1): missing site",
		},
		{
			name: "unparsable owner",
			yaml: "boxes:\n  - {id: b1, model: M, site: s, owners: [ok@example.com, not-an-address]}\n",
			want: `fleet.yaml: boxes[0] (b1): owners[1]: parse address "not-an-address": mail: missing '@' or angle-addr`,
		},
		{
			name: "header injection in escalation",
			yaml: "boxes:\n  - {id: b1, model: M, site: s, escalation: [\"a@example.com\\r\\nBcc: x@evil.com\"]}\n",
			want: `fleet.yaml: boxes[0] (b1): escalation[0]: address "a@example.com\r\nBcc: x@evil.com" contains a control character`,
		},
		{
			name: "two recipients in one owner",
			yaml: "boxes:\n  - {id: b1, model: M, site: s, owners: ['a@example.com, b@example.com']}\n",
			want: `fleet.yaml: boxes[0] (b1): owners[0]: address "a@example.com, b@example.com" contains a comma`,
		},
		{
			name: "bad site default address",
			yaml: "sites:\n  par1: {owners: [\"x\\t@example.com\"]}\nboxes: []\n",
			want: `fleet.yaml: sites.par1: owners[0]: address "x\t@example.com" contains a control character`,
		},
		{
			name: "empty tag",
			yaml: "boxes:\n  - {id: b1, model: M, site: s, tags: [prod, '']}\n",
			want: "fleet.yaml: boxes[0] (b1): tags[1]: empty tag",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(tc.yaml))
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestParseEmptyAndNoOwner(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		boxes    int
		warnings []string
	}{
		{name: "empty file", yaml: "", boxes: 0},
		{name: "no boxes", yaml: "boxes: []\n", boxes: 0},
		{
			name:     "box with no owner and no site defaults",
			yaml:     "boxes:\n  - {id: box-0007, model: M, site: s}\n",
			boxes:    1,
			warnings: []string{"fleet.yaml: box box-0007 has no owner"},
		},
		{
			name:     "site without owners",
			yaml:     "sites:\n  s: {tags: [prod]}\nboxes:\n  - {id: box-0007, model: M, site: s}\n",
			boxes:    1,
			warnings: []string{"fleet.yaml: box box-0007 has no owner"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse("fleet.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			require.Equal(t, tc.boxes, inv.Len())
			require.Equal(t, tc.warnings, inv.Warnings())
		})
	}
}

func TestValidateAddress(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want string // "" means valid
	}{
		{name: "plain", addr: "storage-par@example.com"},
		{name: "with display name", addr: "Storage Paris <storage-par@example.com>"},
		{name: "empty", addr: "", want: "empty address"},
		{name: "blank", addr: "  ", want: "empty address"},
		{name: "no at", addr: "storage", want: `parse address "storage": mail: missing '@' or angle-addr`},
		{name: "CR LF", addr: "a@example.com\r\nBcc: b@example.com", want: `address "a@example.com\r\nBcc: b@example.com" contains a control character`},
		{name: "LF only", addr: "a@example.com\nX: y", want: `address "a@example.com\nX: y" contains a control character`},
		{name: "NUL", addr: "a\x00@example.com", want: `address "a\x00@example.com" contains a control character`},
		{name: "DEL", addr: "a\x7f@example.com", want: `address "a\x7f@example.com" contains a control character`},
		{name: "C1 control", addr: "a\u0085@example.com", want: `address "a\u0085@example.com" contains a control character`},
		{name: "comma list", addr: "a@example.com,b@example.com", want: `address "a@example.com,b@example.com" contains a comma`},
		{name: "quoted comma in name", addr: `"Doe, J" <j@example.com>`, want: `address "\"Doe, J\" <j@example.com>" contains a comma`},
		{name: "trailing garbage", addr: "a@example.com b", want: `parse address "a@example.com b": mail: expected single address, got "b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateAddress(tc.addr)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	inv, err := New("sim", map[string]Site{
		"par1": {Owners: []string{"storage-par@example.com"}, Escalation: []string{"oncall-par@example.com"}},
		"fra1": {Owners: []string{"storage-fra@example.com"}},
	}, []Box{
		{ID: "box-0002", Model: "SW-9000", Firmware: "6.2.0", Site: "fra1", Tags: []string{"dev"}},
		{ID: "box-0001", Model: "SW-7000", Firmware: "4.2.9", Site: "par1", Owners: []string{"a@example.com"}, Tags: []string{"prod", "replicated"}},
	})
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "fleet.yaml")
	require.NoError(t, Write(path, inv))
	back, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, inv.Boxes(), back.Boxes())
	require.Equal(t, inv.Sites(), back.Sites())
	require.Empty(t, back.Warnings())

	// Defaults are written as given, not expanded into each box.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(data), "oncall-par@example.com"))

	// Marshal is deterministic.
	again, err := Marshal(back)
	require.NoError(t, err)
	require.Equal(t, string(data), string(again))
}

func TestNewRejectsBadBoxes(t *testing.T) {
	_, err := New("sim", nil, []Box{{ID: "b1", Model: "M", Site: "s", Owners: []string{"x"}}})
	require.EqualError(t, err, `sim: boxes[0] (b1): owners[0]: parse address "x": mail: missing '@' or angle-addr`)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorContains(t, err, "read inventory: open ")
	require.ErrorContains(t, err, "no such file or directory")
}
