package analysis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

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

// run executes x with payload on stdin and parses its findings.
func (x ExternalAnalyzer) run(ctx context.Context, payload []byte, box string) ([]finding.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, x.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.Command[0], x.Command[1:]...)
	cmd.Stdin = bytes.NewReader(payload)
	stdout := &limitedBuffer{max: x.MaxOutputBytes, onOverflow: cancel}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	setProcessGroup(cmd)
	cmd.WaitDelay = killGrace
	err := cmd.Run()
	killGroup(cmd)
	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if tail := strings.TrimSpace(stderr.String()); tail != "" {
			msg += "; stderr: " + tail
		}
		return fmt.Errorf("run external analyzer %q: %s", x.Name, msg)
	}
	switch {
	case stdout.overflow:
		return nil, fail("output exceeds %d bytes", x.MaxOutputBytes)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fail("timed out after %s", x.Timeout)
	case err != nil:
		return nil, fail("%v", err)
	}
	return x.parse(stdout.Bytes(), box, fail)
}

// parse reads findings, one JSON object per line; blank lines are skipped.
func (x ExternalAnalyzer) parse(out []byte, box string, fail func(string, ...any) error) ([]finding.Finding, error) {
	var fs []finding.Finding
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), len(out)+1)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
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
// component are required and the rule must not be a built-in one; severity
// defaults to warning; title defaults to "rule on component".
func checkExternal(f *finding.Finding, box string) error {
	switch {
	case f.Box == "":
		f.Box = box
	case f.Box != box:
		return fmt.Errorf("box %q is not the analysed box %q", f.Box, box)
	}
	switch {
	case f.Rule == "":
		return errors.New("missing rule")
	case strings.Contains(f.Rule, "/"):
		return fmt.Errorf("rule %q must not contain '/'", f.Rule)
	case slices.Contains(finding.Rules, f.Rule):
		return fmt.Errorf("rule %q is a built-in rule", f.Rule)
	case f.Component == "":
		return errors.New("missing component")
	}
	if f.Severity == "" {
		f.Severity = finding.Warning
	}
	sev, err := finding.ParseSeverity(string(f.Severity))
	if err != nil {
		return err
	}
	f.Severity = sev
	if f.Title == "" {
		f.Title = f.Rule + " on " + f.Component
	}
	return nil
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
