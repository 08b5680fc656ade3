package analysis

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// fillingPool returns a pool.used_bytes generator of a 100 TiB pool that
// is flat at 60% until onset, then grows so that it is full fullDays after
// the end of the window.
func fillingPool(onset int, fullDays float64) func(int, *rand.Rand) float64 {
	total := 100 * tib
	start := 0.6 * total
	left := float64(points-onset) * interval.Hours() / 24
	perDay := (total - start) / (left + fullDays)
	return func(i int, r *rand.Rand) float64 {
		v := start
		if i >= onset {
			v += perDay * float64(i-onset) * interval.Hours() / 24
		}
		return v + noise(r, 0.0005*total)
	}
}

func TestCapacityRule(t *testing.T) {
	const pool = "pool/ssd_r6"
	full := func(days float64) box {
		return healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
			set(pool, telemetry.PoolUsedBytes, fillingPool(onsetIndex, days))
	}
	cases := []ruleCase{
		{name: "healthy", box: healthyBox()},
		{
			name: "full in 5 days is critical",
			box:  full(5),
			want: []want{{finding.RuleCapacity, pool, finding.Critical}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				f := fs[0]
				require.InDelta(t, 5, findNumber(t, f, "days_to_full"), 1)
				require.InDelta(t, 5*24, f.TimeToImpact.Hours(), 24)
				require.Contains(t, f.Title, "pool ssd_r6 full in")
				require.Contains(t, f.Remediation[0], "Expand pool ssd_r6 on box-0042 by at least")
				require.Contains(t, f.Remediation[0], "forecast need to day 30")
				fullAt := time.Unix(int64(findNumber(t, f, "full_at")), 0)
				require.WithinDuration(t, testEnd.Add(5*24*time.Hour), fullAt, 24*time.Hour)
				require.Len(t, f.Evidence.Series, excerptPoints)
			},
		},
		{
			name: "full in 10 days is a warning",
			box:  full(10),
			want: []want{{finding.RuleCapacity, pool, finding.Warning}},
		},
		{
			name: "growth starting at 85% of the window is not averaged away",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, fillingPool(points*85/100, 10)),
			want: []want{{finding.RuleCapacity, pool, finding.Warning}},
		},
		{
			name: "96% used without growth is critical",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 { return 96*tib + noise(r, 0.05*tib) }),
			want: []want{{finding.RuleCapacity, pool, finding.Critical}},
			checkFunc: func(t *testing.T, fs []finding.Finding) {
				require.Equal(t, "pool ssd_r6 96% full", fs[0].Title)
			},
		},
		{
			name: "single spike to 99.9% is ignored",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 {
					if i == points-1 {
						return 99.9 * tib
					}
					return 60*tib + noise(r, 0.05*tib)
				}),
		},
		{
			// Pools fill by day and free by night: the first 6 hours of a new
			// box, all on the rising side of that cycle, are not a trend.
			name: "a new box's first hours of a daily fill cycle are no forecast",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 { return 50*tib + 20*tib*diurnal(i) + noise(r, 0.05*tib) }).
				last(6),
		},
		{
			// A day and a bit: enough to forecast, not enough to compare the
			// last 6 hours with the same hours the day before, so those
			// hours (the rising side of the cycle) are not taken for growth.
			name: "a new box's first 25 hours of a daily fill cycle are no forecast",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 { return 50*tib + 20*tib*diurnal(i) + noise(r, 0.05*tib) }).
				last(25),
		},
		{
			name: "a new box already 97% full is critical at once",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 { return 97*tib + noise(r, 0.05*tib) }).
				last(6),
			want: []want{{finding.RuleCapacity, pool, finding.Critical}},
		},
		{
			name: "min_history_hours 0 forecasts from the first hours (the old behaviour)",
			box: healthyBox().set(pool, telemetry.PoolTotalBytes, constant(100*tib)).
				set(pool, telemetry.PoolUsedBytes, func(i int, r *rand.Rand) float64 { return 50*tib + 20*tib*diurnal(i) + noise(r, 0.05*tib) }).
				last(6),
			options: override(finding.RuleCapacity, "min_history_hours", 0),
			want:    []want{{finding.RuleCapacity, pool, finding.Critical}},
		},
		{
			name: "no total, no forecast",
			box: func() box {
				b := full(5)
				delete(b, [2]string{pool, telemetry.PoolTotalBytes})
				return b
			}(),
		},
		{
			name:    "per-box warning_days 3 silences a 10-day forecast",
			box:     full(10),
			options: Options{Overrides: map[string]Thresholds{testBox: {finding.RuleCapacity: {"warning_days": 3, "critical_days": 2}}}},
		},
		{
			name:    "per-box warning_days 365 flags slow healthy growth",
			box:     healthyBox(),
			options: Options{Overrides: map[string]Thresholds{testBox: {finding.RuleCapacity: {"warning_days": 365}}}},
			want: []want{
				{finding.RuleCapacity, "pool/nl_r6", finding.Warning},
				{finding.RuleCapacity, "pool/ssd_r6", finding.Warning},
			},
		},
		{
			name:    "per-box override of another box changes nothing",
			box:     full(10),
			options: Options{Overrides: map[string]Thresholds{"box-0001": {finding.RuleCapacity: {"warning_days": 3, "critical_days": 2}}}},
			want:    []want{{finding.RuleCapacity, pool, finding.Warning}},
		},
	}
	runRuleCases(t, cases)
}
