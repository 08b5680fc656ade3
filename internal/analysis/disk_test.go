package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// steps returns a counter that starts at base and from onset gains a random
// +lo..+hi every every points.
func steps(base float64, onset, every int, lo, hi int) func(int, *rand.Rand) float64 {
	v, last := base, -1
	return func(i int, r *rand.Rand) float64 {
		if i == 0 {
			v, last = base, -1
		}
		if i >= onset && (i-onset)%every == every-1 && i != last {
			v += float64(lo + r.IntN(hi-lo+1))
			last = i
		}
		return v
	}
}

func TestDiskRule(t *testing.T) {
	const disk = "disk/7"
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "reallocated sectors climbing with pending sectors",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, steps(4, onsetIndex, 24, 2, 10)).
				set(disk, telemetry.DiskPendingSectors, steps(0, onsetIndex+30, 40, 1, 2)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Critical}}, // two signs agree
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.Regexp(t, `^disk 7 reallocated sectors \+\d+ in 48h \(\+1 more signs\)$`, f.Title)
				require.GreaterOrEqual(t, findNumber(t, f, "reallocated_sectors_delta"), 10.0)
				require.Contains(t, f.Problem, "pending reallocation")
				require.Contains(t, f.Remediation[0], "Copy disk 7 of box-0042 to a hot spare")
			},
		},
		{
			name: "two steps of +10 are enough",
			box:  healthyBox().set(disk, telemetry.DiskReallocatedSectors, steps(4, points-80, 36, 10, 10)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Warning}},
		},
		{
			name: "delta of 50 or more is critical",
			box:  healthyBox().set(disk, telemetry.DiskReallocatedSectors, steps(4, onsetIndex, 12, 8, 10)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Critical}},
		},
		{
			name: "growing media errors make it critical",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, steps(4, onsetIndex, 24, 3, 5)).
				set(disk, telemetry.DiskMediaErrors, steps(1, onsetIndex, 48, 1, 1)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Critical}},
		},
		{
			name: "pending sectors rising alone",
			box:  healthyBox().set(disk, telemetry.DiskPendingSectors, steps(0, onsetIndex, 30, 1, 3)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Regexp(t, `^disk 7 pending sectors at \d+$`, fs[0].Title)
				require.Equal(t, telemetry.DiskPendingSectors, fs[0].Evidence.Metric)
			},
		},
		{
			name: "one jump of +30 reallocated sectors is a finding",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(i int, _ *rand.Rand) float64 {
				if i >= points-100 {
					return 34
				}
				return 4
			}),
			want: []want{{finding.RuleDiskFailure, disk, finding.Warning}},
		},
		{
			name: "a stable count below realloc_level is not",
			box:  healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(int, *rand.Rand) float64 { return 40 }),
		},
		{
			name: "a stable count at realloc_level is",
			box:  healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(int, *rand.Rand) float64 { return 60 }),
			want: []want{{finding.RuleDiskFailure, disk, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Equal(t, "disk 7 reallocated sectors at 60", fs[0].Title)
			},
		},
		{
			name: "reported uncorrectable errors growing",
			box:  healthyBox().set(disk, telemetry.DiskReportedUncorrectable, steps(0, onsetIndex, 50, 1, 1)),
			want: []want{{finding.RuleDiskFailure, disk, finding.Warning}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Regexp(t, `^disk 7 reported uncorrectable errors \(SMART 187\) \+\d+ in 48h$`, fs[0].Title)
			},
		},
		{
			name: "NVMe spare below 10% is critical",
			box:  healthyBox().set(disk, telemetry.DiskAvailableSparePct, func(i int, _ *rand.Rand) float64 { return 8 }),
			want: []want{{finding.RuleDiskFailure, disk, finding.Critical}},
		},
		{
			name: "a counter reset when the disk is replaced",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(i int, _ *rand.Rand) float64 {
				if i >= onsetIndex {
					return 0
				}
				return 8
			}),
		},
		{
			name: "reads that dip to zero are glitches",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(i int, _ *rand.Rand) float64 {
				if i%50 == 49 {
					return 0
				}
				return 8
			}),
		},
		{
			name: "one pending sector reading is not rising",
			box: healthyBox().set(disk, telemetry.DiskPendingSectors, func(i int, _ *rand.Rand) float64 {
				if i == points-1 {
					return 3
				}
				return 0
			}),
		},
		{
			name: "per-box min_steps 2 ignores a single jump",
			box: healthyBox().set(disk, telemetry.DiskReallocatedSectors, func(i int, _ *rand.Rand) float64 {
				if i >= points-100 {
					return 34
				}
				return 4
			}),
			options: override(finding.RuleDiskFailure, "min_steps", 2),
		},
	}
	runRuleCases(t, cases)
}
