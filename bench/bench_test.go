package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// leadingNumber matches the number a table value starts with ("1,234 boxes/s", "12.5 ms", "-3.0%").
var leadingNumber = regexp.MustCompile(`^-?[0-9][0-9,]*(\.[0-9]+)?`)

// TestQuickBench runs the whole bench in -quick mode, as `go run ./bench
// -quick` would, and checks that every section reports every measure with a
// sane number.
func TestQuickBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	start := time.Now()
	err := run(ctx, []string{"-quick"}, &out, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())
	t.Logf("quick bench took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())

	text := out.String()
	require.Contains(t, text, "## sanwatch bench (quick mode")
	require.Regexp(t, `Machine: [1-9][0-9]* CPUs \(nproc\), .+, go1\.[0-9]+.*, GOMAXPROCS [1-9]`, text)
	require.Contains(t, text, "| measure | value | baseline | ratio |")

	values := map[string]string{} // measure -> value
	ratios := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || strings.TrimSpace(cells[1]) == "measure" || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		m := strings.TrimSpace(cells[1])
		values[m] = strings.TrimSpace(cells[2])
		ratios[m] = strings.TrimSpace(cells[4])
	}

	tests := []struct {
		name     string
		measures []string // prefixes of the measures the section must report
	}{
		{"ingest", []string{"ingest: read and split", "ingest: telemetry.Parse", "ingest: StoreBatch -> SQLite", "ingest: StoreBatch -> PostgreSQL"}},
		{"layout", []string{"layout: SQLite AppendSamples, old layout", "layout: SQLite AppendSamples, series layout",
			"layout: SQLite StoreBatch, old layout", "layout: SQLite StoreBatch, series layout",
			"layout: SQLite on disk, old layout", "layout: SQLite on disk, series layout",
			"layout: SQLite window read (one box's day), old layout", "layout: SQLite window read (one box's day), series layout",
			"layout: PostgreSQL AppendSamples, old layout", "layout: PostgreSQL AppendSamples, series layout",
			"layout: PostgreSQL on disk, old layout", "layout: PostgreSQL on disk, series layout",
			"layout: PostgreSQL window read (one box's day), series layout",
			"layout: SQLite AppendSamples as posts, series layout (rows)", "layout: SQLite SealSamples (+ Compact) of the posts",
			"layout: SQLite on disk as posts, series layout, 3 days each sealed the night after",
			"layout: PostgreSQL AppendSamples as posts, series layout (rows)", "layout: PostgreSQL SealSamples (+ Compact) of the posts",
			"layout: PostgreSQL on disk as posts, series layout, 3 days each sealed the night after"}},
		{"scan", []string{"scan: in-process AnalyzeShard", "scan: same, in-process next to an idle", "scan: FleetScan through",
			"scan: orchestration overhead", "scan: of which sharing"}},
		{"latency", []string{"latency: batch landed -> email accepted by SMTP, p50", "latency: p99", "latency: max"}},
		{"scale", []string{"scale: FleetScan of 1,500 boxes", "scale: workflow runs", "scale: max history events per run",
			"scale: peak RSS", "scale: Go heap in use at 25%", "scale: Go heap in use at 50%", "scale: Go heap in use at 75%", "scale: Go heap in use at 100%"}},
		{"receive", []string{"receive 20 boxes: batches accepted per second", "receive 20 boxes: POST answer p50", "receive 20 boxes: POST answer p99",
			"receive 20 boxes: posted -> email accepted p50", "receive 20 boxes: posted -> email accepted p99", "receive 20 boxes: batches stored / 202 answers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, prefix := range tc.measures {
				measure, v := lookup(values, prefix)
				require.NotEmpty(t, measure, "no row %q in:\n%s", prefix, text)
				if v == "skipped" && strings.HasSuffix(measure, "PostgreSQL") {
					t.Logf("%s: skipped (PostgreSQL unreachable)", measure)
					continue
				}
				s := leadingNumber.FindString(v)
				require.NotEmpty(t, s, "%s: value %q is not a number", measure, v)
				f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
				require.NoError(t, err)
				if strings.HasSuffix(v, "%") {
					continue // an overhead: a percentage that may be negative on a noisy machine
				}
				require.Greater(t, f, 0.0, "%s = %q", measure, v)
				if r := ratios[measure]; r != "-" {
					rf, err := strconv.ParseFloat(r, 64)
					require.NoError(t, err, "%s: ratio %q", measure, r)
					require.Greater(t, rf, 0.0, "%s: ratio %q", measure, r)
				}
			}
		})
	}
	require.Less(t, leadingFloat(t, values, "scale: max history events per run"), 10_000.0)
	require.Equal(t, 1.0, leadingFloat(t, values, "scale: workflow runs"), "1,500 boxes fit in one run")
}

// lookup returns the measure that starts with prefix and its value.
func lookup(values map[string]string, prefix string) (measure, value string) {
	for m, v := range values {
		if strings.HasPrefix(m, prefix) {
			return m, v
		}
	}
	return "", ""
}

// leadingFloat returns the number the value of the measure starting with prefix starts with.
func leadingFloat(t *testing.T, values map[string]string, prefix string) float64 {
	t.Helper()
	measure, v := lookup(values, prefix)
	f, err := strconv.ParseFloat(strings.ReplaceAll(leadingNumber.FindString(v), ",", ""), 64)
	require.NoError(t, err, "%s = %q", measure, v)
	return f
}

// TestServerFlag checks -server: the modes each section gets, and the error
// for an unknown mode.
func TestServerFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		scan    []string
		section string
		err     string
	}{
		{name: "default in process", args: nil, scan: []string{"inprocess"}, section: "inprocess"},
		{name: "external", args: []string{"-server", "external"}, scan: []string{"external"}, section: "external"},
		{name: "both: external first, other sections external", args: []string{"-server", "both"}, scan: []string{"external", "inprocess"}, section: "external"},
		{name: "unknown", args: []string{"-server", "remote"}, err: `parse flags: -server "remote": allowed inprocess, external, both`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args, &bytes.Buffer{})
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.scan, o.scanServers())
			require.Equal(t, tc.section, o.sectionServer())
		})
	}
}
