package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// MinStep is the shortest default step: a box that reports every minute is
// still evaluated only as often as a scheduled scan would look at it.
const MinStep = 15 * time.Minute

// Options tune a backtest.
type Options struct {
	Engine    *analysis.Engine
	Inventory *fleet.Inventory // optional: model, firmware and site of boxes
	// Step is how often each box is evaluated; 0 follows each box's own
	// cadence (the median interval of its samples), at least MinStep.
	Step time.Duration
	// Lead is the lead time a finding must have to count as found "ahead".
	Lead time.Duration
	// Baseline, when set, is scored beside the rules.
	Baseline *Baseline
	Workers  int                   // 0: GOMAXPROCS
	Progress func(done, total int) // called as boxes finish (may be nil)
	From, To time.Time             // the period replayed (zero: all the data)
}

// RuleScore is how one rule did against the truth.
type RuleScore struct {
	Rule           string        `json:"rule"`
	Incidents      int           `json:"incidents"`       // truth rows this rule is scored on
	Found          int           `json:"found"`           // found before or at the incident
	Recall         float64       `json:"recall"`          // found / incidents
	LeadP10        time.Duration `json:"lead_p10"`        // lead times of the found ones
	LeadMedian     time.Duration `json:"lead_median"`     //
	LeadP90        time.Duration `json:"lead_p90"`        //
	FoundAhead     int           `json:"found_ahead"`     // found at least Lead ahead
	AheadShare     float64       `json:"ahead_share"`     // found_ahead / incidents
	Healthy        int           `json:"healthy"`         // components of the rule's kinds with no incident
	HealthyFlagged int           `json:"healthy_flagged"` // of those, flagged at least once
	HealthyShare   float64       `json:"healthy_share"`   // healthy_flagged / healthy
	ComponentDays  float64       `json:"component_days"`  // days the healthy ones were observed
	FlagsPer1000   float64       `json:"flags_per_1000_component_days"`
	Flagged        int           `json:"flagged"`   // components flagged at all
	Precision      float64       `json:"precision"` // flagged before their incident / flagged
	Kinds          []string      `json:"kinds"`     // component kinds scored
}

// Report is the outcome of a backtest.
type Report struct {
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	Boxes      int           `json:"boxes"`
	Components int           `json:"components"`
	Samples    int64         `json:"samples"`
	Steps      int64         `json:"steps"` // box evaluations
	Lead       time.Duration `json:"lead"`
	Incidents  int           `json:"incidents"` // truth rows scored
	Rules      []RuleScore   `json:"rules"`
	Baseline   string        `json:"baseline,omitempty"`
	// Skipped are truth rows that could not be scored, with the reason.
	Skipped []string `json:"skipped,omitempty"`
	// Notes are oddities of the data (clocks that went back, bad lines).
	Notes []string `json:"notes,omitempty"`
}

// ErrNoData is returned when the period holds no samples.
var ErrNoData = errors.New("no telemetry in the period")

// flag is the first time a rule flagged a component.
type flag struct {
	rule, box, component string
	at                   time.Time
}

// boxResult is what replaying one box produced.
type boxResult struct {
	flags []flag
	steps int64
	err   error
}

// Run replays d through the engine (and the baseline) at every step of each
// box, in parallel over boxes, and scores the first flag of each rule on
// each component against truth.
func Run(ctx context.Context, d *Data, truth []Incident, o Options) (Report, error) {
	if o.Engine == nil {
		return Report{}, errors.New("backtest: no engine")
	}
	rep := Report{Lead: o.Lead, Samples: d.Samples, Notes: d.Notes}
	first, last := d.span()
	if first.IsZero() {
		return rep, ErrNoData
	}
	if !o.From.IsZero() && o.From.After(first) {
		first = o.From
	}
	if !o.To.IsZero() && o.To.Before(last) {
		last = o.To
	}
	if last.Before(first) {
		return rep, fmt.Errorf("%w %s to %s: the data runs from %s", ErrNoData,
			first.Format(time.RFC3339), last.Format(time.RFC3339), d.boxesSpanText())
	}
	rep.From, rep.To = first, last
	boxes := d.Boxes()
	rep.Boxes = len(boxes)
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]boxResult, len(boxes))
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				results[i] = replayBox(ctx, d, boxes[i], first, last, o)
				if o.Progress != nil {
					mu.Lock()
					done++
					o.Progress(done, len(boxes))
					mu.Unlock()
				}
			}
		})
	}
	for i := range boxes {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	var flags []flag
	for i, r := range results {
		if r.err != nil {
			return rep, fmt.Errorf("backtest box %s: %w", boxes[i], r.err)
		}
		flags = append(flags, r.flags...)
		rep.Steps += r.steps
	}
	if o.Baseline != nil {
		rep.Baseline = o.Baseline.Source
	}
	score(&rep, d, truth, flags, o)
	return rep, nil
}

// boxesSpanText is used in the error for an empty period.
func (d *Data) boxesSpanText() string {
	f, l := d.span()
	return f.Format(time.RFC3339) + " to " + l.Format(time.RFC3339)
}

// cadence returns the median interval of the box's longest series.
func cadence(cols []*column) time.Duration {
	var best *column
	for _, c := range cols {
		if best == nil || len(c.t) > len(best.t) {
			best = c
		}
	}
	if best == nil || len(best.t) < 2 {
		return 24 * time.Hour
	}
	d := make([]int64, len(best.t)-1)
	for i := 1; i < len(best.t); i++ {
		d[i-1] = best.t[i] - best.t[i-1]
	}
	slices.Sort(d)
	return time.Duration(d[len(d)/2])
}

// replayBox evaluates one box at every step from first to last.
func replayBox(ctx context.Context, d *Data, box string, first, last time.Time, o Options) boxResult {
	var res boxResult
	cols := d.boxes[box]
	step := o.Step
	if step <= 0 {
		step = max(cadence(cols), MinStep)
	}
	window, byKind := o.Engine.History(box)
	hist := window
	for _, h := range byKind {
		hist = max(hist, h)
	}
	fb := fleet.Box{ID: box}
	if o.Inventory != nil {
		if b, ok := o.Inventory.Box(box); ok {
			fb = b
		}
	}
	seen := map[string]bool{} // rule + component already flagged
	var buf []telemetry.Sample
	// Steps are aligned on the period's start, so every box is looked at on
	// the same grid, and the last step covers the last sample.
	for t := first; !t.After(last.Add(step - 1)); t = t.Add(step) {
		if ctx.Err() != nil {
			res.err = ctx.Err()
			return res
		}
		end := t.Add(time.Nanosecond) // samples at t are in
		lo := end.Add(-hist).UnixNano()
		hi := end.UnixNano()
		buf = buf[:0]
		latest := map[string]map[string]float64{}
		newest := int64(0)
		for _, c := range cols {
			i := sort.Search(len(c.t), func(i int) bool { return c.t[i] >= lo })
			j := sort.Search(len(c.t), func(i int) bool { return c.t[i] >= hi })
			if i == j {
				continue
			}
			// Components of kinds without a longer history only need the window.
			if h, ok := byKind[kindOf(c.component)]; !ok || h <= window {
				i = sort.Search(len(c.t), func(k int) bool { return c.t[k] >= end.Add(-window).UnixNano() })
				if i == j {
					continue
				}
			}
			for k := i; k < j; k++ {
				buf = append(buf, telemetry.Sample{Time: time.Unix(0, c.t[k]).UTC(), Box: box, Component: c.component, Metric: c.metric, Value: c.v[k]})
			}
			newest = max(newest, c.t[j-1])
			if o.Baseline != nil && o.Baseline.kinds[kindOf(c.component)] && c.t[j-1] >= end.Add(-window).UnixNano() {
				if latest[c.component] == nil {
					latest[c.component] = map[string]float64{}
				}
				latest[c.component][c.metric] = c.v[j-1]
			}
		}
		if len(buf) == 0 || newest < end.Add(-step).UnixNano() {
			continue // nothing new since the last step: a scan would see the same (or a silent box)
		}
		res.steps++
		found, err := o.Engine.Analyze(ctx, analysis.Window{Box: fb, Start: end.Add(-window), End: end, Samples: buf})
		if err != nil && ctx.Err() != nil {
			res.err = err
			return res
		}
		for _, f := range found {
			k := f.Rule + "\x00" + f.Component
			if !seen[k] {
				seen[k] = true
				res.flags = append(res.flags, flag{rule: f.Rule, box: box, component: f.Component, at: t})
			}
		}
		for comp, vals := range latest {
			k := BaselineRule + "\x00" + comp
			if seen[k] {
				continue
			}
			hit, err := o.Baseline.eval(vals)
			if err != nil {
				res.err = fmt.Errorf("baseline on %s: %w", comp, err)
				return res
			}
			if hit {
				seen[k] = true
				res.flags = append(res.flags, flag{rule: BaselineRule, box: box, component: comp, at: t})
			}
		}
	}
	return res
}

// observed is one component's span in the data.
type observed struct{ first, last time.Time }

// score fills rep.Rules from the flags and the truth.
func score(rep *Report, d *Data, truth []Incident, flags []flag, o Options) {
	comps := map[string]observed{} // box/component -> span
	for _, box := range d.Boxes() {
		for _, c := range d.boxes[box] {
			if len(c.t) == 0 {
				continue
			}
			k := box + "/" + c.component
			f, l := time.Unix(0, c.t[0]).UTC(), time.Unix(0, c.t[len(c.t)-1]).UTC()
			ob, ok := comps[k]
			if !ok || f.Before(ob.first) {
				ob.first = f
			}
			if l.After(ob.last) {
				ob.last = l
			}
			comps[k] = ob
		}
	}
	rep.Components = len(comps)
	// Truth rows that can be scored.
	var incidents []Incident
	incidentOf := map[string][]Incident{} // box/component -> incidents
	for _, in := range truth {
		k := in.Box + "/" + in.Component
		_, ok := comps[k]
		switch {
		case !ok:
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("truth line %d: %s %s is never seen in the data", in.Line, in.Box, in.Component))
			continue
		case in.Time.Before(rep.From) || in.Time.After(rep.To.Add(24*time.Hour)):
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("truth line %d: %s %s at %s is outside the period replayed (%s to %s)",
				in.Line, in.Box, in.Component, in.Time.Format(time.RFC3339), rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339)))
			continue
		}
		incidents = append(incidents, in)
		incidentOf[k] = append(incidentOf[k], in)
	}
	rep.Incidents = len(incidents)
	// The rules to report: every rule that flagged something or is named in
	// the truth, then the baseline.
	ruleSet := map[string]bool{}
	for _, f := range flags {
		ruleSet[f.rule] = true
	}
	for _, in := range incidents {
		if in.Rule != "" {
			ruleSet[in.Rule] = true
		}
	}
	var rules []string
	for r := range ruleSet {
		if r != BaselineRule {
			rules = append(rules, r)
		}
	}
	slices.Sort(rules)
	if ruleSet[BaselineRule] || o.Baseline != nil {
		rules = append(rules, BaselineRule)
	}
	firstFlag := map[string]map[string]time.Time{} // rule -> box/component -> first flag
	for _, f := range flags {
		m := firstFlag[f.rule]
		if m == nil {
			m = map[string]time.Time{}
			firstFlag[f.rule] = m
		}
		k := f.box + "/" + f.component
		if t, ok := m[k]; !ok || f.at.Before(t) {
			m[k] = f.at
		}
	}
	for _, r := range rules {
		rep.Rules = append(rep.Rules, scoreRule(r, comps, incidents, incidentOf, firstFlag[r], o))
	}
}

// scoreRule scores one rule.
func scoreRule(rule string, comps map[string]observed, incidents []Incident, incidentOf map[string][]Incident,
	flagged map[string]time.Time, o Options) RuleScore {
	s := RuleScore{Rule: rule}
	// The incidents the rule answers for: those naming it, and those naming
	// no rule; the baseline answers for all.
	var mine []Incident
	kinds := map[string]bool{}
	for _, in := range incidents {
		if rule == BaselineRule || in.Rule == "" || in.Rule == rule {
			mine = append(mine, in)
			kinds[kindOf(in.Component)] = true
		}
	}
	if len(kinds) == 0 {
		for k := range flagged {
			_, comp, _ := strings.Cut(k, "/")
			kinds[kindOf(comp)] = true
		}
	}
	if rule == BaselineRule && o.Baseline != nil {
		for k := range o.Baseline.kinds {
			kinds[k] = true
		}
	}
	var leads []time.Duration
	for _, in := range mine {
		s.Incidents++
		at, ok := flagged[in.Box+"/"+in.Component]
		if !ok || at.After(in.Time) {
			continue
		}
		s.Found++
		lead := in.Time.Sub(at)
		leads = append(leads, lead)
		if lead >= o.Lead {
			s.FoundAhead++
		}
	}
	for k, ob := range comps {
		_, comp, _ := strings.Cut(k, "/")
		if !kinds[kindOf(comp)] || len(incidentOf[k]) > 0 {
			continue
		}
		s.Healthy++
		s.ComponentDays += ob.last.Sub(ob.first).Hours()/24 + 1
		if _, ok := flagged[k]; ok {
			s.HealthyFlagged++
		}
	}
	truePos := 0
	for k, at := range flagged {
		s.Flagged++
		for _, in := range incidentOf[k] {
			if (rule == BaselineRule || in.Rule == "" || in.Rule == rule) && !at.After(in.Time) {
				truePos++
				break
			}
		}
	}
	s.Recall = ratio(s.Found, s.Incidents)
	s.AheadShare = ratio(s.FoundAhead, s.Incidents)
	s.HealthyShare = ratio(s.HealthyFlagged, s.Healthy)
	s.Precision = ratio(truePos, s.Flagged)
	if s.ComponentDays > 0 {
		s.FlagsPer1000 = float64(s.HealthyFlagged) / s.ComponentDays * 1000
	}
	slices.Sort(leads)
	s.LeadP10, s.LeadMedian, s.LeadP90 = quantile(leads, 0.1), quantile(leads, 0.5), quantile(leads, 0.9)
	for k := range kinds {
		s.Kinds = append(s.Kinds, k)
	}
	slices.Sort(s.Kinds)
	return s
}

// ratio returns a/b, 0 when b is 0 (the table shows "-" then).
func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// quantile returns the q-quantile of sorted durations (nearest rank), 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
