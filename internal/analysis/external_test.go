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
			err:  `run external analyzer "smart": exit status 3; stderr: reading smart table` + "\n" + `smart table missing`,
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
