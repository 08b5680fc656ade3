// Package analysis finds problems waiting to happen in one box's telemetry
// window: pools filling up, latency off its baseline, disks and SSDs wearing
// out, port errors, weak cache batteries, busy controllers, replication lag
// and firmware advisories. The built-in rules are pure functions over the
// window; external analyzers (any executable) get the window as JSON and
// print findings as JSON lines.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Defaults of an external analyzer's limits.
const (
	DefaultExternalTimeout     = 30 * time.Second
	DefaultExternalMaxOutput   = 4 << 20
	DefaultExternalMaxFindings = 100
)

// Window is one box's data to analyse.
type Window struct {
	Box        fleet.Box // ID always set; the rest empty when the box is not in the inventory
	Start, End time.Time
	Samples    []telemetry.Sample // ordered by component, metric, time (as store.Window returns them)
	// Now is the fleet's clock: the newest sample any box has sent. A box
	// whose own newest sample is far behind it has gone silent. Zero: not
	// judged.
	Now time.Time
}

// ExternalAnalyzer is an executable that gets the window as JSON on stdin
// and prints findings as JSON lines. Command is run without a shell, in a
// process group of its own that is killed when it exits or times out, with
// an explicit environment (BaseEnv and the names in Env, valued from the
// worker's environment) and in Dir or a fresh temporary directory. A zero
// Timeout means DefaultExternalTimeout, a zero MaxOutputBytes
// DefaultExternalMaxOutput and a zero MaxFindings DefaultExternalMaxFindings.
type ExternalAnalyzer struct {
	Name           string
	Command        []string
	Timeout        time.Duration
	MaxOutputBytes int64
	// MaxFindings bounds the findings of one run: a run that prints more
	// fails (each finding may become a remediation and an email).
	MaxFindings int
	// Env names the variables of the worker's environment passed to the
	// analyzer besides BaseEnv. Names starting with SANWATCH_ are refused:
	// they configure sanwatch and hold its secrets.
	Env []string
	// Dir is the working directory; empty: a fresh temporary directory per
	// run, removed after it.
	Dir string
}

// DefaultWindow is the history a rule sees unless its history_days says
// otherwise.
const DefaultWindow = 48 * time.Hour

// Options configures an Engine.
type Options struct {
	// Window is the history each rule sees unless its history_days
	// threshold asks for more (or less); 0 means DefaultWindow.
	Window     time.Duration
	Thresholds Thresholds            // nil: defaults; partial maps fall back to defaults per key
	Overrides  map[string]Thresholds // box id -> partial thresholds for that box
	Advisories []Advisory
	External   []ExternalAnalyzer
}

// Engine runs the built-in rules and the external analyzers. It is safe for
// concurrent use.
type Engine struct {
	window     time.Duration
	base       Thresholds
	perBox     map[string]Thresholds
	advisories []Advisory
	external   []ExternalAnalyzer
}

// rule is one built-in analyzer: it returns findings with Component,
// Severity, Title, Problem, Evidence (Metric, Numbers, Series) and
// Remediation set; the engine fills in the rest. A rule with a history_days
// threshold sees that much history of components of its kind (loaded for it
// alone); the others see the engine's window.
type rule struct {
	name string
	kind string // component kind it reads ("disk"), for rules with history_days
	run  func(in *input, th map[string]float64, advisories []Advisory) []finding.Finding
}

// rules are the built-in analyzers, in finding.Rules order.
var rules = []rule{
	{finding.RuleCapacity, "pool", capacityRule},
	{finding.RuleLatency, "volume", latencyRule},
	{finding.RuleDiskFailure, "disk", diskRule},
	{finding.RuleSSDWear, "disk", wearRule},
	{finding.RulePortErrors, "port", portRule},
	{finding.RuleCacheBattery, "", cacheBatteryRule},
	{finding.RuleSaturation, "node", saturationRule},
	{finding.RuleReplicationLag, "replication", replicationRule},
	{finding.RuleFirmwareAdvisory, "", firmwareRule},
	{finding.RuleSilentBox, "", silentRule},
}

// New checks o and returns an Engine. Errors name the threshold
// (rule.key), the box of an override, the advisory or the external analyzer.
func New(o Options) (*Engine, error) {
	if err := o.Thresholds.Validate(); err != nil {
		return nil, fmt.Errorf("check thresholds: %w", err)
	}
	if o.Window < 0 {
		return nil, fmt.Errorf("check window: %s: must be positive", o.Window)
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	e := &Engine{window: o.Window, base: DefaultThresholds().merge(o.Thresholds), perBox: map[string]Thresholds{}}
	for box, t := range o.Overrides {
		if box == "" {
			return nil, errors.New("check threshold overrides: empty box id")
		}
		eff := o.Thresholds.merge(t)
		if err := eff.Validate(); err != nil {
			return nil, fmt.Errorf("check threshold overrides of box %s: %w", box, err)
		}
		e.perBox[box] = e.base.merge(t)
	}
	seen := map[string]bool{}
	for i, a := range o.Advisories {
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("check advisories[%d]: %w", i, err)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("check advisories[%d]: duplicate id %q", i, a.ID)
		}
		seen[a.ID] = true
		e.advisories = append(e.advisories, a.normalized())
	}
	names := map[string]bool{}
	for i, x := range o.External {
		where := fmt.Sprintf("external analyzer %q", x.Name)
		switch {
		case x.Name == "":
			return nil, fmt.Errorf("check external analyzers[%d]: missing name", i)
		case !ValidAnalyzerName(x.Name):
			return nil, fmt.Errorf("check %s: name: allowed up to %d of A-Z a-z 0-9 . _ -", where, MaxAnalyzerNameLen)
		case names[x.Name]:
			return nil, fmt.Errorf("check %s: duplicate name", where)
		case len(x.Command) == 0 || x.Command[0] == "":
			return nil, fmt.Errorf("check %s: missing command", where)
		case x.Timeout < 0:
			return nil, fmt.Errorf("check %s: timeout %s: allowed 0 (default %s) or more", where, x.Timeout, DefaultExternalTimeout)
		case x.MaxOutputBytes < 0:
			return nil, fmt.Errorf("check %s: max output bytes %d: allowed 0 (default %d) or more", where, x.MaxOutputBytes, DefaultExternalMaxOutput)
		case x.MaxFindings < 0:
			return nil, fmt.Errorf("check %s: max findings %d: allowed 0 (default %d) or more", where, x.MaxFindings, DefaultExternalMaxFindings)
		}
		for _, name := range x.Env {
			if err := CheckEnvName(name); err != nil {
				return nil, fmt.Errorf("check %s: env: %w", where, err)
			}
		}
		// Resolved here, with the worker's PATH and working directory: the
		// analyzer runs elsewhere.
		path, err := exec.LookPath(x.Command[0])
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", where, err)
		}
		if path, err = filepath.Abs(path); err != nil {
			return nil, fmt.Errorf("check %s: %w", where, err)
		}
		if x.Dir != "" {
			if st, err := os.Stat(x.Dir); err != nil {
				return nil, fmt.Errorf("check %s: dir: %w", where, err)
			} else if !st.IsDir() {
				return nil, fmt.Errorf("check %s: dir %s: not a directory", where, x.Dir)
			}
		}
		names[x.Name] = true
		if x.Timeout == 0 {
			x.Timeout = DefaultExternalTimeout
		}
		if x.MaxOutputBytes == 0 {
			x.MaxOutputBytes = DefaultExternalMaxOutput
		}
		if x.MaxFindings == 0 {
			x.MaxFindings = DefaultExternalMaxFindings
		}
		x.Command = append([]string{path}, x.Command[1:]...)
		x.Env = slices.Clone(x.Env)
		e.external = append(e.external, x)
	}
	return e, nil
}

// ThresholdsFor returns the effective thresholds of one box: defaults, then
// the configured thresholds, then the box's overrides. The result is a copy.
func (e *Engine) ThresholdsFor(box string) Thresholds {
	return e.thresholds(box).merge(nil)
}

// History returns how much history box's analysis needs: the engine's
// window for every component, and per component kind ("disk") the longer
// history its rules ask for. Callers load the window for every component
// and the longer spans for those kinds (Window.Start stays the start of the
// window: rules without a history of their own see only that).
func (e *Engine) History(box string) (window time.Duration, byKind map[string]time.Duration) {
	th := e.thresholds(box)
	byKind = map[string]time.Duration{}
	for _, r := range rules {
		if h := ruleHistory(th[r.name], 0); r.kind != "" && h > e.window && h > byKind[r.kind] {
			byKind[r.kind] = h
		}
	}
	return e.window, byKind
}

// ruleHistory returns the history_days threshold as a duration, or def.
func ruleHistory(th map[string]float64, def time.Duration) time.Duration {
	if d := th["history_days"]; d > 0 {
		return time.Duration(d * float64(24*time.Hour))
	}
	return def
}

func (e *Engine) thresholds(box string) Thresholds {
	if t, ok := e.perBox[box]; ok {
		return t
	}
	return e.base
}

// Analyze runs every built-in rule and every external analyzer on w and
// returns the findings sorted by fingerprint, with DetectedAt = w.End.
// It is deterministic: the same window gives the same findings. When an
// external analyzer fails, Analyze still returns the findings of the others
// together with an error that names each failed analyzer (one
// *ExternalError each, joined).
func (e *Engine) Analyze(ctx context.Context, w Window) ([]finding.Finding, error) {
	res, err := e.Run(ctx, w)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, x := range e.external {
		if err, ok := res.Failed[x.Name]; ok {
			errs = append(errs, err)
		}
	}
	return res.Findings, errors.Join(errs...)
}

// Result is what one analysis of a window found, and which external
// analyzers could not tell.
type Result struct {
	// Findings are sorted by fingerprint, with DetectedAt = the window's end.
	Findings []finding.Finding
	// Failed maps each external analyzer that failed to its
	// *ExternalError. What it would have found is unknown: its rules'
	// findings are neither present nor absent.
	Failed map[string]error
	// Rules maps each external analyzer that succeeded to the rules of its
	// findings, sorted (empty when it found nothing).
	Rules map[string][]string
}

// Run is Analyze with each external analyzer's outcome reported apart. Its
// error is that of the whole analysis (a window without box id, a
// cancelled context); the failure of an external analyzer is in
// Result.Failed.
func (e *Engine) Run(ctx context.Context, w Window) (Result, error) {
	if w.Box.ID == "" {
		return Result{}, errors.New("analyze window: missing box id")
	}
	full := newInput(w)
	th := e.thresholds(w.Box.ID)
	views := map[time.Time]*input{} // one trimmed view per history
	var out []finding.Finding
	for _, r := range rules {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("analyze box %s: %w", w.Box.ID, err)
		}
		// The rule's own history, else the caller's window, else the engine's.
		from := w.Start
		if h := ruleHistory(th[r.name], 0); h > 0 {
			from = full.end.Add(-h)
		} else if from.IsZero() {
			from = full.end.Add(-e.window)
		}
		in, ok := views[from]
		if !ok {
			in = full.since(from)
			views[from] = in
		}
		for _, f := range r.run(in, th[r.name], e.advisories) {
			f.Box = w.Box.ID
			f.Rule = r.name
			out = append(out, e.complete(f, in))
		}
	}
	res := Result{Failed: map[string]error{}, Rules: map[string][]string{}}
	if len(e.external) > 0 {
		payload, err := marshalWindow(w)
		if err != nil {
			return Result{}, err
		}
		for _, x := range e.external {
			fs, err := x.run(ctx, payload, w.Box.ID)
			if err != nil {
				if ctx.Err() != nil {
					return Result{}, fmt.Errorf("analyze box %s: %w", w.Box.ID, ctx.Err())
				}
				res.Failed[x.Name] = &ExternalError{Analyzer: x.Name, Err: err}
				continue
			}
			rules := []string{}
			for _, f := range fs {
				out = append(out, e.complete(f, full))
				rules = append(rules, f.Rule)
			}
			slices.Sort(rules)
			res.Rules[x.Name] = slices.Compact(rules)
		}
	}
	out = dedupe(out)
	sortFindings(out)
	res.Findings = out
	return res, nil
}

// ExternalError is the failure of one external analyzer on one box.
type ExternalError struct {
	Analyzer string
	Err      error
}

// Error returns the failure's message, which names the analyzer.
func (e *ExternalError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ExternalError) Unwrap() error { return e.Err }

// complete fills the fields every finding shares and drops numbers that
// JSON cannot carry.
func (e *Engine) complete(f finding.Finding, in *input) finding.Finding {
	f.DetectedAt = in.end
	if f.Evidence.WindowStart.IsZero() {
		f.Evidence.WindowStart = in.start
	}
	if f.Evidence.WindowEnd.IsZero() {
		f.Evidence.WindowEnd = in.end
	}
	nums := make([]finding.Number, 0, len(f.Evidence.Numbers))
	for _, n := range f.Evidence.Numbers {
		if finite(n.Value) {
			nums = append(nums, n)
		}
	}
	f.Evidence.Numbers = nums
	if f.TimeToImpact < 0 {
		f.TimeToImpact = 0
	}
	f.FirstSeen, f.LastSeen, f.Status, f.Note = time.Time{}, time.Time{}, "", ""
	return f
}

// dedupe keeps one finding per fingerprint: the most severe, the first on a tie.
func dedupe(fs []finding.Finding) []finding.Finding {
	at := map[string]int{}
	out := fs[:0]
	for _, f := range fs {
		fp := f.Fingerprint()
		if i, ok := at[fp]; ok {
			if f.Severity.Rank() > out[i].Severity.Rank() {
				out[i] = f
			}
			continue
		}
		at[fp] = len(out)
		out = append(out, f)
	}
	return out
}

// num builds an evidence number. Values under 10,000 keep 4 significant
// digits and larger ones (bytes, unix seconds) are rounded to whole numbers,
// so emails and stored evidence stay readable.
func num(name string, v float64, unit string) finding.Number {
	return finding.Number{Name: name, Value: roundNum(v), Unit: unit}
}

func roundNum(v float64) float64 {
	switch {
	case v == 0 || !finite(v):
		return v
	case math.Abs(v) >= 1e4:
		return math.Round(v)
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// limitOf returns a pointer to a copy of v, for Evidence.Limit.
func limitOf(v float64) *float64 { return &v }
