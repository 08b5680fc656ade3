package analysis

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
)

func TestAdvisoryMatches(t *testing.T) {
	a := Advisory{ID: "A-1", Model: "SW-7000", FirmwareMin: "4.2.0", FirmwareMax: "4.2.7", FixedIn: "4.2.8", Title: "t"}
	cases := []struct {
		name, model, firmware string
		want                  bool
	}{
		{"lower bound", "SW-7000", "4.2.0", true},
		{"upper bound", "SW-7000", "4.2.7", true},
		{"inside, model case differs", "sw-7000", "4.2.3", true},
		{"fixed", "SW-7000", "4.2.8", false},
		{"two-digit part compares as a number", "SW-7000", "4.2.10", false},
		{"short version", "SW-7000", "4.2", true},
		{"older", "SW-7000", "4.1.9", false},
		{"other model", "SW-9000", "4.2.3", false},
		{"no firmware", "SW-7000", "", false},
		{"garbage firmware", "SW-7000", "4.x", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, a.Matches(tc.model, tc.firmware))
		})
	}
}

func TestParseAdvisories(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		err  string
	}{
		{name: "severity defaults to warning and is lower-cased", yaml: `advisories:
  - {id: A-1, model: m, firmware_min: "1.0", firmware_max: "1.2", fixed_in: "1.3", title: t}
  - {id: A-2, model: m, firmware_min: "1.0", firmware_max: "1.2", fixed_in: "1.3", title: t, severity: Critical}`},
		{name: "missing id", yaml: `advisories: [{model: m, firmware_min: "1", firmware_max: "2", fixed_in: "3", title: t}]`,
			err: "adv.yaml: advisories[0]: advisory: missing id"},
		{name: "missing model", yaml: `advisories: [{id: A-1, firmware_min: "1", firmware_max: "2", fixed_in: "3", title: t}]`,
			err: "adv.yaml: advisories[0]: advisory A-1: missing model"},
		{name: "range upside down", yaml: `advisories: [{id: A-1, model: m, firmware_min: "3", firmware_max: "2", fixed_in: "3", title: t}]`,
			err: "adv.yaml: advisories[0]: advisory A-1: firmware_min 3 is above firmware_max 2"},
		{name: "bad severity", yaml: `advisories: [{id: A-1, model: m, firmware_min: "1", firmware_max: "2", fixed_in: "3", title: t, severity: high}]`,
			err: `adv.yaml: advisories[0]: advisory A-1: unknown severity "high": allowed info, warning, critical`},
		{name: "duplicate", yaml: `advisories:
  - {id: A-1, model: m, firmware_min: "1", firmware_max: "2", fixed_in: "3", title: t}
  - {id: A-1, model: m, firmware_min: "1", firmware_max: "2", fixed_in: "3", title: t}`,
			err: `adv.yaml: advisories[1]: duplicate id "A-1"`},
		{name: "unknown field", yaml: `advisories: [{id: A-1, modle: m}]`,
			err: "parse advisories adv.yaml: yaml: unmarshal errors:\n  line 1: field modle not found in type analysis.Advisory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as, err := ParseAdvisories("adv.yaml", []byte(tc.yaml))
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, finding.Warning, as[0].Severity)
			require.Equal(t, finding.Critical, as[1].Severity)
		})
	}
	t.Run("the project's advisories file loads", func(t *testing.T) {
		require.Len(t, testAdvisories(t), 3)
	})
}
