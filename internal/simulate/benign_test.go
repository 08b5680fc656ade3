package simulate

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
)

// TestBenignFleetsNoFalseFindings simulates fleets with every benign
// pattern and faults of varied strength, a quarter of them below the
// thresholds on purpose, over many seeds, and analyses every box as a scan
// would at the end: every fault above threshold is found, none below, and
// nothing on a healthy component. A rule shaped to a clean simulator fails
// here.
func TestBenignFleetsNoFalseFindings(t *testing.T) {
	advs, err := analysis.LoadAdvisories("../../config/advisories.yaml")
	require.NoError(t, err)
	eng, err := analysis.New(analysis.Options{Advisories: advs})
	require.NoError(t, err)
	// make test runs 20 seeds x 20 boxes x 72 h; SANWATCH_BENIGN_BOXES and
	// SANWATCH_BENIGN_HOURS scale it up (the README's figure is 200 x 168).
	seeds, boxes, hours := 20, envInt(t, "SANWATCH_BENIGN_BOXES", 20), envInt(t, "SANWATCH_BENIGN_HOURS", 72)
	found, weak, strong := 0, 0, 0
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			o := Options{Boxes: boxes, Hours: hours, Faults: boxes / 2, Seed: int64(seed), Advisories: advs, Benign: true, Weak: 0.25,
				BatchHours: 24, Out: t.TempDir()}
			res := run(t, o)
			inv, err := fleet.Load(res.InventoryPath)
			require.NoError(t, err)
			samples := samplesByBox(t, res.BatchDir)
			want, below := map[string]bool{}, map[string]bool{}
			for _, f := range res.Faults {
				fp := finding.Fingerprint(f.Box, f.Kind, f.Component)
				if f.BelowThreshold {
					below[fp] = true
					weak++
				} else {
					want[fp] = true
					strong++
				}
			}
			got := map[string]bool{}
			for _, f := range scanFleet(t, eng, inv, samples) {
				fp := f.Fingerprint()
				got[fp] = true
				require.False(t, below[fp], "below-threshold fault found: %s: %s", fp, f.Title)
				require.True(t, want[fp], "false finding: %s: %s", fp, f.Title)
			}
			for fp := range want {
				require.True(t, got[fp], "missed fault %s", fp)
				found++
			}
		})
	}
	t.Logf("%d seeds x %d boxes x %dh: %d faults above threshold all found, %d below threshold none found, 0 false findings",
		seeds, boxes, hours, strong, weak)
	require.Positive(t, weak)
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	require.Positive(t, n, name)
	return n
}
