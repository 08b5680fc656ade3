package analysis

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// Thresholds holds rule -> key -> value, e.g.
// t["capacity_forecast"]["warning_days"] = 14. A partial map (missing rules
// or keys) falls back to the defaults per key.
type Thresholds map[string]map[string]float64

// spec describes one threshold key: its default and the range it accepts.
type spec struct {
	key      string
	def      float64
	min, max float64
	whole    bool   // must be an integer (point counts)
	unit     string // shown in error messages
}

// specs lists every key of every built-in rule, in a fixed order.
var specs = map[string][]spec{
	finding.RuleCapacity: {
		{key: "history_days", def: 7, min: 0, max: 3650, unit: "days"},
		{key: "warning_days", def: 14, min: 0, max: 3650, unit: "days"},
		{key: "critical_days", def: 7, min: 0, max: 3650, unit: "days"},
		{key: "critical_used_pct", def: 95, min: 0, max: 100, unit: "%"},
		{key: "min_points", def: 24, min: 3, max: 1e6, whole: true, unit: "points"},
		{key: "min_history_hours", def: 24, min: 0, max: 87600, unit: "hours"},
		{key: "recent_hours", def: 6, min: 0, max: 8760, unit: "hours"},
		{key: "plan_days", def: 30, min: 1, max: 3650, unit: "days"},
	},
	finding.RuleLatency: {
		{key: "history_days", def: 8, min: 0, max: 3650, unit: "days"},
		{key: "z", def: 6, min: 0, max: 1000, unit: "MADs"},
		{key: "min_delta_ms", def: 0.5, min: 0, max: 1e6, unit: "ms"},
		{key: "min_ratio", def: 2, min: 1, max: 1000, unit: "x baseline"},
		{key: "critical_ratio", def: 10, min: 1, max: 1000, unit: "x baseline"},
		{key: "sustain_points", def: 6, min: 1, max: 1e5, whole: true, unit: "points"},
		{key: "min_baseline_points", def: 12, min: 1, max: 1e6, whole: true, unit: "points"},
	},
	finding.RuleDiskFailure: {
		{key: "history_days", def: 30, min: 0, max: 3650, unit: "days"},
		{key: "min_delta", def: 5, min: 1, max: 1e9, unit: "sectors"},
		{key: "min_steps", def: 1, min: 1, max: 1e5, whole: true, unit: "intervals"},
		{key: "critical_delta", def: 50, min: 1, max: 1e9, unit: "sectors"},
		{key: "realloc_level", def: 50, min: 0, max: 1e9, unit: "sectors (0: off)"},
		{key: "pending_min", def: 2, min: 1, max: 1e9, unit: "sectors"},
		{key: "pending_points", def: 2, min: 1, max: 1e5, whole: true, unit: "points"},
		{key: "uncorrectable_delta", def: 1, min: 1, max: 1e9, unit: "errors"},
		{key: "media_delta", def: 1, min: 1, max: 1e9, unit: "errors"},
		{key: "min_spare_pct", def: 10, min: 0, max: 100, unit: "%"},
	},
	finding.RuleSSDWear: {
		{key: "history_days", def: 30, min: 0, max: 3650, unit: "days"},
		{key: "warning_pct", def: 85, min: 0, max: 100, unit: "%"},
		{key: "critical_pct", def: 95, min: 0, max: 100, unit: "%"},
		{key: "forecast_days", def: 30, min: 0, max: 3650, unit: "days"},
		{key: "min_points", def: 24, min: 3, max: 1e6, whole: true, unit: "points"},
	},
	finding.RulePortErrors: {
		{key: "rate_hours", def: 6, min: 0, max: 8760, unit: "hours"},
		{key: "sustain_points", def: 6, min: 1, max: 1e5, whole: true, unit: "intervals"},
		{key: "min_errors", def: 25, min: 1, max: 1e12, unit: "errors"},
		{key: "min_resets", def: 3, min: 1, max: 1e12, unit: "resets"},
	},
	finding.RuleCacheBattery: {
		{key: "min_charge_pct", def: 50, min: 0, max: 100, unit: "%"},
		{key: "critical_charge_pct", def: 20, min: 0, max: 100, unit: "%"},
		{key: "max_write_pending_pct", def: 80, min: 0, max: 100, unit: "%"},
		{key: "sustain_points", def: 6, min: 1, max: 1e5, whole: true, unit: "points"},
	},
	finding.RuleSaturation: {
		{key: "busy_pct", def: 90, min: 0, max: 100, unit: "%"},
		{key: "sustain_points", def: 12, min: 1, max: 1e5, whole: true, unit: "points"},
	},
	finding.RuleReplicationLag: {
		{key: "rpo_s", def: 900, min: 1, max: 1e9, unit: "s"},
		{key: "critical_factor", def: 4, min: 1, max: 1000, unit: "x rpo_s"},
		{key: "sustain_points", def: 6, min: 1, max: 1e5, whole: true, unit: "points"},
	},
	finding.RuleFirmwareAdvisory: {},
	finding.RuleSilentBox: {
		{key: "factor", def: 3, min: 1, max: 1e4, unit: "x the box's cadence"},
		{key: "min_minutes", def: 15, min: 1, max: 1e6, unit: "minutes"},
	},
}

// pair is a cross-key constraint: lower must not be above upper.
type pair struct{ rule, lower, upper string }

var pairs = []pair{
	{finding.RuleCapacity, "critical_days", "warning_days"},
	{finding.RuleLatency, "min_ratio", "critical_ratio"},
	{finding.RuleSSDWear, "warning_pct", "critical_pct"},
	{finding.RuleCacheBattery, "critical_charge_pct", "min_charge_pct"},
	{finding.RuleDiskFailure, "min_delta", "critical_delta"},
}

// DefaultThresholds returns every built-in rule and key with its default.
// Rules without keys (firmware_advisory) map to an empty map.
func DefaultThresholds() Thresholds {
	t := make(Thresholds, len(specs))
	for rule, keys := range specs {
		m := make(map[string]float64, len(keys))
		for _, s := range keys {
			m[s.key] = s.def
		}
		t[rule] = m
	}
	return t
}

// CheckThreshold validates one value: an unknown rule or key, a non-finite,
// negative or out-of-range value, or a fraction where a count is expected is
// an error naming rule.key, the value and what is allowed.
func CheckThreshold(rule, key string, v float64) error {
	keys, ok := specs[rule]
	if !ok {
		return fmt.Errorf("unknown rule %q: allowed %s", rule, strings.Join(finding.Rules, ", "))
	}
	i := slices.IndexFunc(keys, func(s spec) bool { return s.key == key })
	if i < 0 {
		allowed := "none"
		if len(keys) > 0 {
			names := make([]string, len(keys))
			for j, s := range keys {
				names[j] = s.key
			}
			allowed = strings.Join(names, ", ")
		}
		return fmt.Errorf("unknown threshold %s.%s: allowed keys %s", rule, key, allowed)
	}
	s := keys[i]
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("invalid threshold %s.%s = %v: allowed a number from %g to %g %s", rule, key, v, s.min, s.max, s.unit)
	case v < s.min || v > s.max:
		return fmt.Errorf("invalid threshold %s.%s = %g: allowed %g to %g %s", rule, key, v, s.min, s.max, s.unit)
	case s.whole && v != math.Trunc(v):
		return fmt.Errorf("invalid threshold %s.%s = %g: allowed a whole number from %g to %g %s", rule, key, v, s.min, s.max, s.unit)
	}
	return nil
}

// Validate checks every value of t with CheckThreshold and, with the
// defaults filling the missing keys, that the pairs of keys are consistent
// (critical_days <= warning_days, warning_pct <= critical_pct, ...). Errors
// come in a fixed order (rules as in finding.Rules, keys by name).
func (t Thresholds) Validate() error {
	rules := make([]string, 0, len(t))
	for rule := range t {
		rules = append(rules, rule)
	}
	order := func(r string) int { return slices.Index(finding.Rules, r) } // unknown rules (-1) first
	slices.SortFunc(rules, func(a, b string) int {
		if c := cmp.Compare(order(a), order(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, rule := range rules {
		keys := make([]string, 0, len(t[rule]))
		for k := range t[rule] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if _, ok := specs[rule]; !ok {
			return CheckThreshold(rule, "", 0)
		}
		for _, k := range keys {
			if err := CheckThreshold(rule, k, t[rule][k]); err != nil {
				return err
			}
		}
	}
	eff := DefaultThresholds().merge(t)
	for _, p := range pairs {
		lo, hi := eff[p.rule][p.lower], eff[p.rule][p.upper]
		if lo > hi {
			return fmt.Errorf("invalid thresholds %s.%s = %g and %s.%s = %g: %s must not be above %s",
				p.rule, p.lower, lo, p.rule, p.upper, hi, p.lower, p.upper)
		}
	}
	return nil
}

// merge returns a copy of t with the values of over laid on top, key by key.
func (t Thresholds) merge(over Thresholds) Thresholds {
	out := make(Thresholds, len(t))
	for rule, keys := range t {
		m := make(map[string]float64, len(keys))
		for k, v := range keys {
			m[k] = v
		}
		out[rule] = m
	}
	for rule, keys := range over {
		m := out[rule]
		if m == nil {
			m = make(map[string]float64, len(keys))
			out[rule] = m
		}
		for k, v := range keys {
			m[k] = v
		}
	}
	return out
}
