package backtest

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Baseline is a comparison rule scored beside sanwatch's: a boolean
// expression over the newest values of one component's metrics, written
// with the metric names as they are (`disk.reallocated_sectors > 0 ||
// disk.pending_sectors > 0`), evaluated with expr-lang/expr. A metric the
// component does not report counts as 0.
type Baseline struct {
	Source  string
	program *vm.Program
	kinds   map[string]bool // component kinds the expression reads
	metrics []string        // the metrics it names
}

// BaselineRule is the rule name a baseline's flags are scored under.
const BaselineRule = "baseline"

// CompileBaseline checks src: it must be a boolean expression over catalogue
// metrics (or disk.smart_N_raw) and numbers.
func CompileBaseline(src string) (*Baseline, error) {
	env := map[string]any{}
	for _, m := range telemetry.Catalogue {
		setPath(env, m, 0.0)
	}
	for id := 1; id <= 255; id++ {
		setPath(env, fmt.Sprintf("disk.smart_%d_raw", id), 0.0)
	}
	program, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("baseline %q: %w", src, err)
	}
	b := &Baseline{Source: src, program: program, kinds: map[string]bool{}}
	for _, m := range telemetry.Catalogue {
		if strings.Contains(src, m) {
			b.kinds[strings.SplitN(m, ".", 2)[0]] = true
			b.metrics = append(b.metrics, m)
		}
	}
	for id := 1; id <= 255; id++ {
		if m := fmt.Sprintf("disk.smart_%d_raw", id); strings.Contains(src, m) {
			b.kinds["disk"] = true
			b.metrics = append(b.metrics, m)
		}
	}
	if len(b.metrics) == 0 {
		return nil, fmt.Errorf("baseline %q: names no metric", src)
	}
	return b, nil
}

// eval evaluates the expression on the newest values of one component.
func (b *Baseline) eval(latest map[string]float64) (bool, error) {
	env := map[string]any{}
	for _, m := range b.metrics {
		setPath(env, m, latest[m])
	}
	out, err := vm.Run(b.program, env)
	if err != nil {
		return false, err
	}
	v, _ := out.(bool)
	return v, nil
}

// setPath sets env["a"]["b"] = v for the metric "a.b".
func setPath(env map[string]any, metric string, v float64) {
	head, rest, _ := strings.Cut(metric, ".")
	sub, _ := env[head].(map[string]any)
	if sub == nil {
		sub = map[string]any{}
		env[head] = sub
	}
	sub[rest] = v
}
