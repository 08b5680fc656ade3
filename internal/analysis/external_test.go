package analysis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// script writes an executable file into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o755))
	return p
}

// fanBox is a small box with a custom metric only an external analyzer
// knows: fan 1 stopped at the end of the window. (Small, because pure-Perl
// JSON decoding of a full 100-series window takes seconds.)
func fanBox() Window {
	return box{}.
		set("node/0", telemetry.NodeCPUBusyPct, constant(30)).
		set("fan/0", "custom.fan_rpm", constant(5200)).
		set("fan/1", "custom.fan_rpm", stepTo(points-10, 5200, 0)).
		window(fleet.Box{Model: "SW-7000", Firmware: "4.3.0"})
}

const awkFan = `# Reports fans whose last reading is under 1000 rpm. The window arrives as
# one JSON line; split it into samples and keep the last value per fan.
{
	n = split($0, parts, /\},\{/)
	for (i = 1; i <= n; i++) {
		if (parts[i] !~ /"metric":"custom\.fan_rpm"/) continue
		c = parts[i]; sub(/.*"component":"/, "", c); sub(/".*/, "", c)
		v = parts[i]; sub(/.*"value":/, "", v); sub(/[,}\]].*/, "", v)
		last[c] = v + 0
	}
	for (c in last) if (last[c] < 1000)
		printf "{\"rule\":\"fan_stopped\",\"component\":\"%s\",\"severity\":\"critical\",\"title\":\"%s stopped\",\"evidence\":{\"metric\":\"custom.fan_rpm\",\"numbers\":[{\"name\":\"rpm\",\"value\":%g,\"unit\":\"rpm\"}]},\"remediation\":[\"Replace %s\"]}\n", c, c, last[c], c
}
`

const perlFan = `use strict; use warnings; use JSON::PP;
local $/; my $w = decode_json(<STDIN>);
my %last;
for my $s (@{$w->{samples}}) { $last{$s->{component}} = $s->{value} if $s->{metric} eq 'custom.fan_rpm' }
for my $c (sort keys %last) {
	next if $last{$c} >= 1000;
	print encode_json({box => $w->{box}{id}, rule => 'fan_stopped_pl', component => $c,
		title => "$c stopped on $w->{box}{model}", problem => "samples: " . scalar(@{$w->{samples}}),
		remediation => ["Replace $c"]}), "\n";
}
print STDERR "checked ", scalar(keys %last), " fans\n";
`

func TestExternalAnalyzerSuccess(t *testing.T) {
	dir := t.TempDir()
	awkPath := script(t, dir, "fan.awk", awkFan)
	shPath := script(t, dir, "count.sh", "#!/bin/sh\n# prints one info finding with the size of its input\nbytes=$(wc -c)\necho\necho '{\"rule\":\"input_size\",\"component\":\"box\",\"severity\":\"info\",\"problem\":\"'$bytes' bytes\"}'\n")
	cases := []struct {
		name  string
		x     ExternalAnalyzer
		check func(t *testing.T, fs []finding.Finding)
	}{
		{
			name: "awk reads the window and reports the stopped fan",
			x:    ExternalAnalyzer{Name: "fans-awk", Command: []string{"awk", "-f", awkPath}},
			check: func(t *testing.T, fs []finding.Finding) {
				require.Len(t, fs, 1)
				f := fs[0]
				require.Equal(t, "box-0042/fan_stopped/fan/1", f.Fingerprint())
				require.Equal(t, finding.Critical, f.Severity)
				require.Equal(t, "fan/1 stopped", f.Title)
				require.Equal(t, testEnd, f.DetectedAt)
				require.Equal(t, testStart, f.Evidence.WindowStart)
				require.InDelta(t, 0, f.Evidence.Numbers[0].Value, 2)
			},
		},
		{
			name: "sh with a shebang, defaults filled in",
			x:    ExternalAnalyzer{Name: "size", Command: []string{shPath}},
			check: func(t *testing.T, fs []finding.Finding) {
				require.Len(t, fs, 1)
				f := fs[0]
				require.Equal(t, "box-0042/input_size/box", f.Fingerprint())
				require.Equal(t, finding.Info, f.Severity)
				require.Equal(t, "input_size on box", f.Title)
				payload, err := marshalWindow(fanBox())
				require.NoError(t, err)
				require.Equal(t, strconv.Itoa(len(payload))+" bytes", f.Problem)
			},
		},
	}
	if _, err := exec.LookPath("perl"); err == nil {
		perlPath := script(t, dir, "fan.pl", perlFan)
		cases = append(cases, struct {
			name  string
			x     ExternalAnalyzer
			check func(t *testing.T, fs []finding.Finding)
		}{
			name: "perl decodes the window with JSON::PP",
			x:    ExternalAnalyzer{Name: "fans-perl", Command: []string{"perl", perlPath}},
			check: func(t *testing.T, fs []finding.Finding) {
				require.Len(t, fs, 1)
				f := fs[0]
				require.Equal(t, "box-0042/fan_stopped_pl/fan/1", f.Fingerprint())
				require.Equal(t, finding.Warning, f.Severity)
				require.Equal(t, "fan/1 stopped on SW-7000", f.Title)
				require.Equal(t, fmt.Sprintf("samples: %d", len(fanBox().Samples)), f.Problem)
			},
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{External: []ExternalAnalyzer{tc.x}})
			require.NoError(t, err)
			fs, err := e.Analyze(context.Background(), fanBox())
			require.NoError(t, err)
			tc.check(t, fs)
		})
	}
}

func TestExternalAnalyzerErrors(t *testing.T) {
	dir := t.TempDir()
	sh := func(name, body string) []string { return []string{"sh", script(t, dir, name, body)} }
	cases := []struct {
		name    string
		x       ExternalAnalyzer
		err     string // the whole message
		prefix  string // or its start
		maxTime time.Duration
	}{
		{
			name: "non-zero exit keeps stderr",
			x:    ExternalAnalyzer{Name: "smart", Command: sh("exit3.sh", "cat >/dev/null\necho 'reading smart table' >&2\necho 'smart table missing' >&2\nexit 3\n")},
			err:  `run external analyzer "smart": exit status 3; stderr: reading smart table smart table missing`,
		},
		{
			name:    "timeout kills the process group",
			x:       ExternalAnalyzer{Name: "slow", Command: sh("slow.sh", "echo started >&2\nsleep 30 &\necho $! > "+filepath.Join(dir, "child.pid")+"\nwait\n"), Timeout: 300 * time.Millisecond},
			err:     `run external analyzer "slow": timed out after 300ms; stderr: started`,
			maxTime: 5 * time.Second,
		},
		{
			name:    "oversize output",
			x:       ExternalAnalyzer{Name: "chatty", Command: sh("chatty.sh", "while :; do echo '{\"rule\":\"x\",\"component\":\"y\"}'; done\n"), MaxOutputBytes: 1024},
			err:     `run external analyzer "chatty": output exceeds 1024 bytes`,
			maxTime: 5 * time.Second,
		},
		{
			name: "bad line",
			x:    ExternalAnalyzer{Name: "bad", Command: sh("bad.sh", "echo '{\"rule\":\"x\",\"component\":\"y\"}'\necho 'disk 7 looks bad'\necho oops >&2\n")},
			err:  `run external analyzer "bad": output line 2: invalid character 'd' looking for beginning of value; stderr: oops`,
		},
		{
			name: "unknown field",
			x:    ExternalAnalyzer{Name: "typo", Command: sh("typo.sh", "echo '{\"rule\":\"x\",\"component\":\"y\",\"sevrity\":\"info\"}'\n")},
			err:  `run external analyzer "typo": output line 1: json: unknown field "sevrity"`,
		},
		{
			name: "other box",
			x:    ExternalAnalyzer{Name: "other", Command: sh("other.sh", "echo '{\"box\":\"box-9\",\"rule\":\"x\",\"component\":\"y\"}'\n")},
			err:  `run external analyzer "other": output line 1: box "box-9" is not the analysed box "box-0042"`,
		},
		{
			name: "built-in rule",
			x:    ExternalAnalyzer{Name: "clash", Command: sh("clash.sh", "echo '{\"rule\":\"port_errors\",\"component\":\"port/0:1:1\"}'\n")},
			err:  `run external analyzer "clash": output line 1: rule "port_errors" is a built-in rule`,
		},
		{
			name: "missing component",
			x:    ExternalAnalyzer{Name: "nocomp", Command: sh("nocomp.sh", "echo '{\"rule\":\"x\"}'\n")},
			err:  `run external analyzer "nocomp": output line 1: missing component`,
		},
		{
			name: "missing rule",
			x:    ExternalAnalyzer{Name: "norule", Command: sh("norule.sh", "echo '{\"component\":\"y\"}'\n")},
			err:  `run external analyzer "norule": output line 1: missing rule`,
		},
		{
			name: "bad severity",
			x:    ExternalAnalyzer{Name: "sev", Command: sh("sev.sh", "echo '{\"rule\":\"x\",\"component\":\"y\",\"severity\":\"urgent\"}'\n")},
			err:  `run external analyzer "sev": output line 1: unknown severity "urgent": allowed info, warning, critical`,
		},
		{
			name:   "stderr is cut to its tail",
			x:      ExternalAnalyzer{Name: "noisy", Command: sh("noisy.sh", "i=0; while [ $i -lt 500 ]; do echo \"line $i of noise\" >&2; i=$((i+1)); done\necho THE-END >&2\nexit 1\n")},
			prefix: `run external analyzer "noisy": exit status 1; stderr: `,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{External: []ExternalAnalyzer{tc.x}})
			require.NoError(t, err)
			begin := time.Now()
			fs, err := e.Analyze(context.Background(), fanBox())
			if tc.maxTime > 0 {
				require.Less(t, time.Since(begin), tc.maxTime)
			}
			require.Error(t, err)
			require.Empty(t, fs, "the fan box has no built-in findings")
			if tc.prefix != "" {
				require.True(t, strings.HasPrefix(err.Error(), tc.prefix), err.Error())
				require.True(t, strings.HasSuffix(err.Error(), "THE-END"), err.Error())
				require.LessOrEqual(t, len(err.Error()), len(tc.prefix)+stderrTail)
				return
			}
			require.EqualError(t, err, tc.err)
		})
	}
	t.Run("the timed-out script's child is gone", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return processGone(pid) }, 5*time.Second, 20*time.Millisecond)
	})
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// the state follows the command name in parentheses
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func TestExternalFailureKeepsOtherFindings(t *testing.T) {
	dir := t.TempDir()
	good := script(t, dir, "good.sh", "cat >/dev/null\necho '{\"rule\":\"custom\",\"component\":\"fan/1\",\"severity\":\"critical\"}'\necho '{\"rule\":\"custom\",\"component\":\"fan/1\",\"severity\":\"info\"}'\n")
	bad := script(t, dir, "bad.sh", "cat >/dev/null\nexit 2\n")
	e, err := New(Options{External: []ExternalAnalyzer{
		{Name: "bad", Command: []string{"sh", bad}},
		{Name: "good", Command: []string{"sh", good}},
	}})
	require.NoError(t, err)
	w := healthyBox().set("node/0", telemetry.NodeCPUBusyPct, stepTo(onsetIndex, 40, 95)).window(fleet.Box{})
	fs, err := e.Analyze(context.Background(), w)
	require.EqualError(t, err, `run external analyzer "bad": exit status 2`)
	require.Equal(t, []want{
		{finding.RuleSaturation, "node/0", finding.Warning},
		{"custom", "fan/1", finding.Critical},
	}, got(fs), "built-in findings stay, and duplicates keep the most severe")
}

// TestExternalAnalyzerSandbox runs real scripts that look at what they were
// given: the environment holds only the allowlist (no secret of the
// worker's), the working directory is theirs, and a child they leave
// behind is killed with them without holding up the run.
func TestExternalAnalyzerSandbox(t *testing.T) {
	t.Setenv("SANWATCH_SMTP_PASSWORD", "hunter2-smtp-secret")
	t.Setenv("SANWATCH_STORE_DSN", "postgres://u:pw-in-dsn@db/sanwatch")
	t.Setenv("FAN_API_URL", "http://fans.example")
	t.Setenv("UNLISTED_VAR", "not-for-analyzers")
	t.Setenv("TZ", "Europe/Paris")
	dir := t.TempDir()
	cwd, err := os.Getwd()
	require.NoError(t, err)
	own := t.TempDir()
	pidFile := filepath.Join(dir, "orphan.pid")
	// env and pwd go into the problem text: what the analyzer could put
	// into a finding, and so into an email.
	envScript := script(t, dir, "env.sh", "cat >/dev/null\nprintf '{\"rule\":\"env\",\"component\":\"box\",\"problem\":\"%s\"}\\n' \"$(env | sort | tr '\\n' ' ')\"\n")
	pwdScript := script(t, dir, "pwd.sh", "cat >/dev/null\ntouch scratch\nprintf '{\"rule\":\"pwd\",\"component\":\"box\",\"problem\":\"%s\"}\\n' \"$(pwd)\"\n")
	forkScript := script(t, dir, "fork.sh", "cat >/dev/null\nsleep 60 &\necho $! > "+pidFile+"\necho '{\"rule\":\"forked\",\"component\":\"box\"}'\nexit 0\n")
	cases := []struct {
		name  string
		x     ExternalAnalyzer
		check func(t *testing.T, f finding.Finding)
	}{
		{
			name: "only PATH, LANG, TZ and the listed names",
			x:    ExternalAnalyzer{Name: "env", Command: []string{"sh", envScript}, Env: []string{"FAN_API_URL", "NOT_SET_ANYWHERE"}},
			check: func(t *testing.T, f finding.Finding) {
				require.Contains(t, f.Problem, "PATH=")
				require.Contains(t, f.Problem, "TZ=Europe/Paris")
				require.Contains(t, f.Problem, "FAN_API_URL=http://fans.example")
				for _, leak := range []string{"hunter2", "pw-in-dsn", "SANWATCH", "UNLISTED_VAR", "NOT_SET_ANYWHERE"} {
					require.NotContains(t, f.Problem, leak)
				}
			},
		},
		{
			name: "a fresh working directory, removed after the run",
			x:    ExternalAnalyzer{Name: "pwd", Command: []string{"sh", pwdScript}},
			check: func(t *testing.T, f finding.Finding) {
				require.NotEqual(t, cwd, f.Problem)
				require.Contains(t, filepath.Base(f.Problem), "sanwatch-pwd-")
				_, err := os.Stat(f.Problem)
				require.ErrorIs(t, err, os.ErrNotExist)
			},
		},
		{
			name: "the configured working directory, kept",
			x:    ExternalAnalyzer{Name: "pwd-own", Command: []string{"sh", pwdScript}, Dir: own},
			check: func(t *testing.T, f finding.Finding) {
				want, err := filepath.EvalSymlinks(own)
				require.NoError(t, err)
				require.Equal(t, want, f.Problem)
				require.FileExists(t, filepath.Join(own, "scratch"))
			},
		},
		{
			name: "a forked child dies with the analyzer and does not hold the run",
			x:    ExternalAnalyzer{Name: "fork", Command: []string{"sh", forkScript}},
			check: func(t *testing.T, f finding.Finding) {
				require.Equal(t, "forked", f.Rule)
				b, err := os.ReadFile(pidFile)
				require.NoError(t, err)
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				require.NoError(t, err)
				require.Eventually(t, func() bool { return processGone(pid) }, 2*time.Second, 20*time.Millisecond, "sleep 60 outlived its analyzer")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{External: []ExternalAnalyzer{tc.x}})
			require.NoError(t, err)
			begin := time.Now()
			fs, err := e.Analyze(context.Background(), fanBox())
			require.NoError(t, err)
			// Less than killGrace: the run did not wait for a child's pipes.
			require.Less(t, time.Since(begin), killGrace/2)
			require.Len(t, fs, 1)
			tc.check(t, fs[0])
		})
	}
}

// TestExternalAnalyzerCaps feeds the engine analyzers that print too much
// or print names and texts that must not reach a store, an email or a log
// line as they are.
func TestExternalAnalyzerCaps(t *testing.T) {
	dir := t.TempDir()
	sh := func(name, body string) []string { return []string{"sh", script(t, dir, name, "cat >/dev/null\n"+body)} }
	long := strings.Repeat("x", 200)
	cases := []struct {
		name  string
		x     ExternalAnalyzer
		err   string
		check func(t *testing.T, fs []finding.Finding)
	}{
		{
			name: "100,000 findings fail the run, none kept",
			x: ExternalAnalyzer{Name: "flood", MaxOutputBytes: 64 << 20,
				Command: sh("flood.sh", `awk 'BEGIN { for (i = 0; i < 100000; i++) printf "{\"rule\":\"flood\",\"component\":\"disk/%d\"}\n", i }'`+"\n")},
			err: `run external analyzer "flood": more than 100 findings (max_findings); none was kept`,
		},
		{
			name: "a configured max_findings",
			x: ExternalAnalyzer{Name: "three", MaxFindings: 3,
				Command: sh("four.sh", `for i in 1 2 3 4; do echo "{\"rule\":\"r\",\"component\":\"c$i\"}"; done`+"\n")},
			err: `run external analyzer "three": more than 3 findings (max_findings); none was kept`,
		},
		{
			name: "exactly max_findings pass",
			x: ExternalAnalyzer{Name: "three-ok", MaxFindings: 3,
				Command: sh("three.sh", `for i in 1 2 3; do echo "{\"rule\":\"r\",\"component\":\"c$i\"}"; done`+"\n")},
			check: func(t *testing.T, fs []finding.Finding) { require.Len(t, fs, 3) },
		},
		{
			name: "a component with a newline",
			x:    ExternalAnalyzer{Name: "newline", Command: sh("nl.sh", `printf '%s\n' '{"rule":"r","component":"fan/1\nSubject: pwned"}'`+"\n")},
			err:  `run external analyzer "newline": output line 1: component "fan/1\nSubject: pwned" holds a character outside [A-Za-z0-9._:/-]`,
		},
		{
			name: "a raw newline splits the line",
			x:    ExternalAnalyzer{Name: "rawnl", Command: sh("rawnl.sh", `printf '{"rule":"r","component":"fan/1\nx"}\n'`+"\n")},
			err:  `run external analyzer "rawnl": output line 1: unexpected EOF`,
		},
		{
			name: "a long component is quoted only in part",
			x:    ExternalAnalyzer{Name: "longcomp", Command: sh("longcomp.sh", `echo '{"rule":"r","component":"`+long+`"}'`+"\n")},
			err:  `run external analyzer "longcomp": output line 1: component "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... is longer than 128 bytes`,
		},
		{
			name: "a rule with a space",
			x:    ExternalAnalyzer{Name: "space", Command: sh("space.sh", `echo '{"rule":"fan stopped","component":"fan/1"}'`+"\n")},
			err:  `run external analyzer "space": output line 1: rule "fan stopped" holds a character outside [A-Za-z0-9._:-]`,
		},
		{
			name: "a rule with a slash",
			x:    ExternalAnalyzer{Name: "slash", Command: sh("slash.sh", `echo '{"rule":"a/b","component":"fan/1"}'`+"\n")},
			err:  `run external analyzer "slash": output line 1: rule "a/b" holds a character outside [A-Za-z0-9._:-]`,
		},
		{
			name: "a rule of 65 bytes",
			x:    ExternalAnalyzer{Name: "longrule", Command: sh("longrule.sh", `echo '{"rule":"`+strings.Repeat("r", 65)+`","component":"fan/1"}'`+"\n")},
			err:  `run external analyzer "longrule": output line 1: rule "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"... is longer than 64 bytes`,
		},
		{
			name: "titles and problems are cut and lose their control characters",
			x:    ExternalAnalyzer{Name: "texts", Command: sh("texts.sh", `printf '%s\n' '{"rule":"r","component":"fan/1","title":"Fan\r\nBcc: x@evil \u001b[31mred\u202e","problem":"`+strings.Repeat("p", 3000)+`","remediation":["step\none"]}'`+"\n")},
			check: func(t *testing.T, fs []finding.Finding) {
				require.Len(t, fs, 1)
				require.Equal(t, "Fan Bcc: x@evil  [31mred", fs[0].Title, "a control character becomes a space")
				require.Len(t, fs[0].Problem, MaxProblemLen)
				require.Equal(t, []string{"step one"}, fs[0].Remediation)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{External: []ExternalAnalyzer{tc.x}})
			require.NoError(t, err)
			fs, err := e.Analyze(context.Background(), fanBox())
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				require.Empty(t, fs)
				return
			}
			require.NoError(t, err)
			tc.check(t, fs)
		})
	}
}

func TestExternalAnalyzerConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		x    ExternalAnalyzer
		err  string
	}{
		{"a secret of sanwatch's", ExternalAnalyzer{Name: "a", Command: []string{"sh"}, Env: []string{"SANWATCH_SMTP_PASSWORD"}},
			`check external analyzer "a": env: "SANWATCH_SMTP_PASSWORD": sanwatch's own variables (SANWATCH_*) hold its secrets and are never passed to analyzers`},
		{"in lower case too", ExternalAnalyzer{Name: "a", Command: []string{"sh"}, Env: []string{"sanwatch_store_dsn"}},
			`check external analyzer "a": env: "sanwatch_store_dsn": sanwatch's own variables (SANWATCH_*) hold its secrets and are never passed to analyzers`},
		{"not a name", ExternalAnalyzer{Name: "a", Command: []string{"sh"}, Env: []string{"A=B"}},
			`check external analyzer "a": env: "A=B" is not a variable name`},
		{"a name with a space", ExternalAnalyzer{Name: "fan check", Command: []string{"sh"}},
			`check external analyzer "fan check": name: allowed up to 64 of A-Z a-z 0-9 . _ -`},
		{"negative max findings", ExternalAnalyzer{Name: "a", Command: []string{"sh"}, MaxFindings: -1},
			`check external analyzer "a": max findings -1: allowed 0 (default 100) or more`},
		{"missing dir", ExternalAnalyzer{Name: "a", Command: []string{"sh"}, Dir: "/nonexistent/sanwatch"},
			`check external analyzer "a": dir: stat /nonexistent/sanwatch: no such file or directory`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{External: []ExternalAnalyzer{tc.x}})
			require.EqualError(t, err, tc.err)
		})
	}
}
