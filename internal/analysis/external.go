package analysis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// stderrTail is how much of the end of an external analyzer's stderr an
// error message keeps.
const stderrTail = 2048

// killGrace is how long an external analyzer's pipes may stay open after its
// process group was killed.
const killGrace = 2 * time.Second

// windowDoc is the JSON document an external analyzer reads on stdin.
type windowDoc struct {
	Box     fleet.Box          `json:"box"`
	Start   time.Time          `json:"start"`
	End     time.Time          `json:"end"`
	Samples []telemetry.Sample `json:"samples"`
}

// marshalWindow encodes w as the JSON document external analyzers read.
func marshalWindow(w Window) ([]byte, error) {
	doc := windowDoc{Box: w.Box, Start: w.Start, End: w.End, Samples: w.Samples}
	if doc.Samples == nil {
		doc.Samples = []telemetry.Sample{}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode window of box %s: %w", w.Box.ID, err)
	}
	return append(b, '\n'), nil
}

// BaseEnv are the variables of the worker's environment every external
// analyzer gets; ExternalAnalyzer.Env adds to them.
var BaseEnv = []string{"PATH", "LANG", "TZ"}

// Limits of what an external analyzer's finding may hold. Rule and
// component names over their limit, or with a character outside
// [A-Za-z0-9._:-] (the component also '/'), fail the run; longer texts are
// cut, and control characters in them become spaces.
const (
	MaxAnalyzerNameLen = 64
	MaxRuleLen         = 64
	MaxComponentLen    = 128
	MaxTitleLen        = 200
	MaxProblemLen      = 2000
	maxRemediation     = 20  // steps kept
	maxStepLen         = 500 // bytes per step
	maxNumbers         = 50  // evidence numbers kept
	maxLabelLen        = 64  // number names, units, metric, limit label
	maxSeries          = 2000
)

// envNameOK is what a variable name may look like.
var envNameOK = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckEnvName returns an error when name may not be passed to an external
// analyzer: not a variable name, or one of sanwatch's own (SANWATCH_...),
// which hold its secrets.
func CheckEnvName(name string) error {
	switch {
	case !envNameOK.MatchString(name):
		return fmt.Errorf("%q is not a variable name", name)
	case strings.HasPrefix(strings.ToUpper(name), "SANWATCH_"):
		return fmt.Errorf("%q: sanwatch's own variables (SANWATCH_*) hold its secrets and are never passed to analyzers", name)
	}
	return nil
}

// ValidAnalyzerName reports whether name may name an external analyzer: up
// to MaxAnalyzerNameLen of A-Z a-z 0-9 . _ - (it labels metrics and names
// directories).
func ValidAnalyzerName(name string) bool {
	return name != "" && len(name) <= MaxAnalyzerNameLen && strings.Trim(name, nameChars) == "" && name != "." && name != ".."
}

const (
	nameChars      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
	ruleChars      = nameChars + ":"
	componentChars = ruleChars + "/"
)

// environ returns x's environment: BaseEnv and x.Env, with their values in
// the worker's environment (unset ones are left out).
func (x ExternalAnalyzer) environ() []string {
	env := []string{}
	seen := map[string]bool{}
	for _, name := range append(slices.Clone(BaseEnv), x.Env...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// run executes x with payload on stdin and parses its findings. The
// process gets its own group, which is killed as soon as the process exits
// (or times out), so a child it left behind neither runs on nor holds the
// output open.
func (x ExternalAnalyzer) run(ctx context.Context, payload []byte, box string) ([]finding.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, x.Timeout)
	defer cancel()
	stdout := &limitedBuffer{max: x.MaxOutputBytes, onOverflow: cancel}
	stderr := &tailBuffer{max: stderrTail}
	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		// The tail of stderr, cleaned: valid UTF-8, no control characters,
		// no "|" (Nagios perfdata), cut on a character boundary; it travels
		// into errors, the store and `starter check`.
		if tail := stderrTailText(stderr.String()); tail != "" {
			msg += "; stderr: " + tail
		}
		return fmt.Errorf("run external analyzer %q: %s", x.Name, msg)
	}
	dir := x.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sanwatch-"+x.Name+"-")
		if err != nil {
			return nil, fail("create working directory: %v", err)
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		dir = tmp
	}
	cmd := exec.CommandContext(ctx, x.Command[0], x.Command[1:]...)
	cmd.Env = x.environ()
	cmd.Dir = dir
	setProcessGroup(cmd)
	cmd.WaitDelay = killGrace
	// Pipes of our own: exec's would make Wait wait for every process that
	// holds them, including a background child of the analyzer.
	var pipes [3][2]*os.File // stdin, stdout, stderr: read end, write end
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(pipes[:i])
			return nil, fail("create pipes: %v", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipes[0][0], pipes[1][1], pipes[2][1]
	err := cmd.Start()
	// The child has its ends; the parent keeps the others.
	_ = pipes[0][0].Close()
	_ = pipes[1][1].Close()
	_ = pipes[2][1].Close()
	if err != nil {
		_ = pipes[0][1].Close()
		_ = pipes[1][0].Close()
		_ = pipes[2][0].Close()
		return nil, fail("%v", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		_, _ = pipes[0][1].Write(payload) // fails once the group is gone
		_ = pipes[0][1].Close()
	}()
	go func() { defer wg.Done(); drain(pipes[1][0], stdout) }()
	go func() { defer wg.Done(); drain(pipes[2][0], stderr) }()
	err = cmd.Wait()
	killGroup(cmd)
	_ = pipes[0][1].Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(killGrace):
		// Something outside the group (it moved itself out) holds the
		// pipes: stop reading.
		_ = pipes[1][0].Close()
		_ = pipes[2][0].Close()
		<-done
	}
	_ = pipes[1][0].Close()
	_ = pipes[2][0].Close()
	switch {
	case stdout.overflowed():
		return nil, fail("output exceeds %d bytes", x.MaxOutputBytes)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fail("timed out after %s", x.Timeout)
	case err != nil:
		return nil, fail("%v", err)
	}
	return x.parse(stdout.Bytes(), box, fail)
}

// closeAll closes both ends of each pipe.
func closeAll(pipes [][2]*os.File) {
	for _, p := range pipes {
		_ = p[0].Close()
		_ = p[1].Close()
	}
}

// drain copies r into w until r ends, and reads on (discarding) once w
// refuses more, so that the writer never blocks on a full pipe.
func drain(r io.Reader, w io.Writer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && w != nil {
			if _, werr := w.Write(buf[:n]); werr != nil {
				w = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// parse reads findings, one JSON object per line; blank lines are skipped.
// More than x.MaxFindings findings fail the run.
func (x ExternalAnalyzer) parse(out []byte, box string, fail func(string, ...any) error) ([]finding.Finding, error) {
	var fs []finding.Finding
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), len(out)+1)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if len(fs) == x.MaxFindings {
			return nil, fail("more than %d findings (max_findings); none was kept", x.MaxFindings)
		}
		var f finding.Finding
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fail("output line %d: %v", line, err)
		}
		if dec.More() {
			return nil, fail("output line %d: more than one JSON value", line)
		}
		if err := checkExternal(&f, box); err != nil {
			return nil, fail("output line %d: %v", line, err)
		}
		fs = append(fs, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fail("read output: %v", err)
	}
	return fs, nil
}

// checkExternal validates one finding of an external analyzer and fills its
// defaults: box defaults to the window's box and must match it; rule and
// component are required, limited in length and characters, and the rule
// must not be a built-in one; severity defaults to warning; title defaults
// to "rule on component". Texts are cut to their limits and their control
// characters become spaces.
func checkExternal(f *finding.Finding, box string) error {
	switch {
	case f.Box == "":
		f.Box = box
	case f.Box != box:
		return fmt.Errorf("box %s is not the analysed box %q", excerpt(f.Box), box)
	}
	if err := checkName("rule", f.Rule, MaxRuleLen, ruleChars); err != nil {
		return err
	}
	if slices.Contains(finding.Rules, f.Rule) {
		return fmt.Errorf("rule %q is a built-in rule", f.Rule)
	}
	if err := checkName("component", f.Component, MaxComponentLen, componentChars); err != nil {
		return err
	}
	if f.Severity == "" {
		f.Severity = finding.Warning
	}
	sev, err := finding.ParseSeverity(string(f.Severity))
	if err != nil {
		return fmt.Errorf("unknown severity %s: allowed info, warning, critical", excerpt(string(f.Severity)))
	}
	f.Severity = sev
	if f.Title = cleanText(f.Title, MaxTitleLen); f.Title == "" {
		f.Title = f.Rule + " on " + f.Component
	}
	f.Problem = cleanText(f.Problem, MaxProblemLen)
	if len(f.Remediation) > maxRemediation {
		f.Remediation = f.Remediation[:maxRemediation]
	}
	for i, step := range f.Remediation {
		f.Remediation[i] = cleanText(step, maxStepLen)
	}
	ev := &f.Evidence
	ev.Metric = cleanText(ev.Metric, maxLabelLen)
	ev.LimitLabel = cleanText(ev.LimitLabel, maxLabelLen)
	if len(ev.Numbers) > maxNumbers {
		ev.Numbers = ev.Numbers[:maxNumbers]
	}
	for i := range ev.Numbers {
		ev.Numbers[i].Name = cleanText(ev.Numbers[i].Name, maxLabelLen)
		ev.Numbers[i].Unit = cleanText(ev.Numbers[i].Unit, maxLabelLen)
	}
	if len(ev.Series) > maxSeries {
		ev.Series = ev.Series[len(ev.Series)-maxSeries:]
	}
	if len(ev.Forecast) > maxSeries {
		ev.Forecast = ev.Forecast[:maxSeries]
	}
	return nil
}

// checkName checks a rule or component name: present, at most max bytes,
// only the allowed characters. A bad name is quoted only in excerpt.
func checkName(what, name string, max int, allowed string) error {
	switch {
	case name == "":
		return fmt.Errorf("missing %s", what)
	case len(name) > max:
		return fmt.Errorf("%s %s is longer than %d bytes", what, excerpt(name), max)
	case strings.Trim(name, allowed) != "":
		return fmt.Errorf("%s %s holds a character outside %s", what, excerpt(name), describeChars(allowed))
	}
	return nil
}

// describeChars names a character set of checkName for error messages.
func describeChars(allowed string) string {
	if allowed == componentChars {
		return "[A-Za-z0-9._:/-]"
	}
	return "[A-Za-z0-9._:-]"
}

// stderrQuoted is how much of an analyzer's stderr its errors quote.
const stderrQuoted = 512

// stderrTailText is the end of an analyzer's stderr fit to quote: valid
// UTF-8, control characters (newlines) as spaces, no "|" (it would end
// Nagios plugin output), at most stderrQuoted bytes cut on a character
// boundary, keeping the end, where the reason usually is.
func stderrTailText(s string) string {
	s = strings.ReplaceAll(cleanText(s, len(s)+1), "|", "/")
	if len(s) <= stderrQuoted {
		return s
	}
	cut := len(s) - stderrQuoted
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[cut:]
}

// excerptLen is how much of an offending value an error message quotes.
const excerptLen = 32

// excerpt quotes the start of s for an error message: at most excerptLen
// bytes, non-printable characters escaped, "..." when cut.
func excerpt(s string) string {
	if len(s) <= excerptLen {
		return strconv.Quote(s)
	}
	cut := excerptLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// cleanText makes s safe to store, show and email: valid UTF-8, runs of
// control and format characters (newlines, escapes, bidi overrides) turned
// into one space, trimmed and cut to max bytes.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := strings.TrimSpace(b.String())
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	return out
}

// limitedBuffer keeps up to max bytes; writing more sets overflow, calls
// onOverflow once and fails the write.
type limitedBuffer struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	max        int64
	overflow   bool
	onOverflow func()
}

// Write implements io.Writer.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return 0, errors.New("output limit exceeded")
	}
	if int64(b.buf.Len()+len(p)) > b.max {
		b.overflow = true
		b.onOverflow()
		return 0, errors.New("output limit exceeded")
	}
	return b.buf.Write(p)
}

// overflowed reports whether more than max bytes were written.
func (b *limitedBuffer) overflowed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.overflow
}

// Bytes returns what was written.
func (b *limitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Bytes()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

// Write implements io.Writer.
func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept tail.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
