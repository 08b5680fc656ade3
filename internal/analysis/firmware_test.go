package analysis

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
)

// testAdvisories loads the project's advisories file.
func testAdvisories(tb testing.TB) []Advisory {
	tb.Helper()
	as, err := LoadAdvisories("../../config/advisories.yaml")
	require.NoError(tb, err)
	return as
}

func TestFirmwareRule(t *testing.T) {
	as := testAdvisories(t)
	opts := Options{Advisories: as}
	cases := []ruleCase{
		{
			name:     "affected model and firmware",
			box:      healthyBox(),
			fleetBox: fleet.Box{Model: "SW-7000", Firmware: "4.2.3"},
			options:  opts,
			want:     []want{{finding.RuleFirmwareAdvisory, "firmware/SWA-2026-014", finding.Critical}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.Equal(t, "firmware 4.2.3: write cache may not be destaged on controller failover (fixed in 4.2.8)", f.Title)
				require.Contains(t, f.Remediation[0], "from firmware 4.2.3 to 4.2.8 or later")
				require.Equal(t, "Until the upgrade: Keep cache.write_pending_pct under 50% (throttle hosts) until upgraded.", f.Remediation[1])
			},
		},
		{name: "fixed firmware", box: healthyBox(), fleetBox: fleet.Box{Model: "SW-7000", Firmware: "4.2.8"}, options: opts},
		{name: "other model", box: healthyBox(), fleetBox: fleet.Box{Model: "SW-9000", Firmware: "4.2.3"}, options: opts},
		{name: "box not in the inventory", box: healthyBox(), options: opts},
		{
			name:     "advisory without severity is a warning",
			box:      healthyBox(),
			fleetBox: fleet.Box{Model: "SW-5000", Firmware: "3.0.1"},
			options:  Options{Advisories: []Advisory{{ID: "X-1", Model: "SW-5000", FirmwareMin: "3.0", FirmwareMax: "3.0.5", FixedIn: "3.1", Title: "t"}}},
			want:     []want{{finding.RuleFirmwareAdvisory, "firmware/X-1", finding.Warning}},
		},
	}
	runRuleCases(t, cases)
}
