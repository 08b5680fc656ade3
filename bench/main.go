// Command bench measures sanwatch in one run and prints a markdown table of
// figures and ratios: ingest speed against raw reading, fleet-scan speed
// through Temporal against the same analysis in-process, the latency from a
// batch landing to its remediation email, and a 100,000-box scan's history
// size and memory. Everything runs in this process (SQLite, PostgreSQL when
// reachable, an SMTP sink on loopback, the Temporal workers) except, with
// -server external, the Temporal server: by default it is in-process
// (temporaltest), with external it is the Temporal CLI dev server.
//
//	go run ./bench [-only ingest,scan,latency,scale] [-quick] [-server inprocess|external|both] [-scan-boxes N] ...
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sections are the parts of the bench, in the order they run.
var sections = []string{"ingest", "layout", "scan", "latency", "scale", "tsdb", "receive"}

// options are the bench's settings, from flags.
type options struct {
	only                map[string]bool
	quick               bool
	ingestSamples       int
	scanBoxes           int
	scanRounds          int
	scaleBoxes          int
	latencyBatches      int
	latencyParallel     int
	shardSize           int
	maxInFlight         int
	analysisConcurrency int
	scaleShardSize      int
	scaleMaxInFlight    int
	postgresDSN         string
	cpuProfile          string
	server              string // -server: inprocess, external or both
	temporalCLI         string
	receiveBoxes        []int     // -receive-boxes: one load run per size
	encrypt             bool      // -encrypt: clients and workers seal payloads with AES-256-GCM
	progress            io.Writer // where progress lines go (stderr)
}

// parseOptions parses the command line. -quick shrinks every size that is not
// given explicitly.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{progress: stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", strings.Join(sections, ","), "comma-separated sections to run: "+strings.Join(sections, ","))
	fs.BoolVar(&o.quick, "quick", false, "small sizes (the smoke test): seconds instead of minutes")
	fs.IntVar(&o.ingestSamples, "ingest-samples", 1_500_000, "samples in the ingest batch")
	fs.IntVar(&o.scanBoxes, "scan-boxes", 10_000, "boxes of the scan comparison (41 series x 288 points each)")
	fs.IntVar(&o.scanRounds, "scan-rounds", 3, "alternating rounds of the scan comparison (the best time of each path is kept)")
	fs.IntVar(&o.scaleBoxes, "scale-boxes", 100_000, "boxes of the scale scan (2 series x 24 points each)")
	fs.IntVar(&o.latencyBatches, "latency-batches", 200, "batches of the latency measure (one box each)")
	fs.IntVar(&o.latencyParallel, "latency-parallel", 4, "batches in flight at once in the latency measure")
	fs.IntVar(&o.shardSize, "shard-size", 100, "boxes per analysis activity in the scan comparison")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 4, "shard activities FleetScan keeps in flight in the scan comparison")
	fs.IntVar(&o.analysisConcurrency, "analysis-concurrency", 2, "analysis activities a worker runs at once = in-process goroutines")
	fs.IntVar(&o.scaleShardSize, "scale-shard-size", 25, "boxes per analysis activity in the scale scan")
	fs.IntVar(&o.scaleMaxInFlight, "scale-max-in-flight", 8, "shard activities in flight in the scale scan")
	fs.StringVar(&o.server, "server", serverInProcess, "where the Temporal server runs: inprocess (temporaltest in the bench process), "+
		"external (the Temporal CLI dev server as its own process, in memory; the bench hosts only the workers) or "+
		"both (the scan comparison once per mode against the same in-process baseline; latency and scale use external)")
	fs.StringVar(&o.temporalCLI, "temporal-cli", defaultTemporalCLI(), "the Temporal CLI the external server runs ($SANWATCH_TEMPORAL_CLI or bin/temporal)")
	fs.BoolVar(&o.encrypt, "encrypt", false, "encrypt every payload (AES-256-GCM under a random key) as workers with codec keys do: what the codec costs")
	receive := fs.String("receive-boxes", "200,2000", "comma-separated box counts of the receive load (each box posts one 5-minute batch, all at once)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		quick := map[string]*int{
			"ingest-samples": &o.ingestSamples, "scan-boxes": &o.scanBoxes, "scale-boxes": &o.scaleBoxes,
			"latency-batches": &o.latencyBatches, "scan-rounds": &o.scanRounds, "shard-size": &o.shardSize,
		}
		sizes := map[string]int{"ingest-samples": 20_000, "scan-boxes": 150, "scale-boxes": 1_500, "latency-batches": 6, "scan-rounds": 1, "shard-size": 25}
		for name, p := range quick {
			if !set[name] {
				*p = sizes[name]
			}
		}
	}
	if o.quick && !set["receive-boxes"] {
		*receive = "20"
	}
	for _, s := range strings.Split(*receive, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return o, fmt.Errorf("parse flags: -receive-boxes %q: want positive counts separated by commas", *receive)
		}
		o.receiveBoxes = append(o.receiveBoxes, n)
	}
	if !contains(serverModes, o.server) {
		return o, fmt.Errorf("parse flags: -server %q: allowed %s", o.server, strings.Join(serverModes, ", "))
	}
	o.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(sections, s) {
			return o, fmt.Errorf("parse flags: -only %q: unknown section %q (allowed %s)", *only, s, strings.Join(sections, ", "))
		}
		o.only[s] = true
	}
	for name, v := range map[string]int{
		"ingest-samples": o.ingestSamples, "scan-boxes": o.scanBoxes, "scan-rounds": o.scanRounds, "scale-boxes": o.scaleBoxes,
		"latency-batches": o.latencyBatches, "latency-parallel": o.latencyParallel, "shard-size": o.shardSize,
		"max-in-flight": o.maxInFlight, "analysis-concurrency": o.analysisConcurrency,
		"scale-shard-size": o.scaleShardSize, "scale-max-in-flight": o.scaleMaxInFlight,
	} {
		if v <= 0 {
			return o, fmt.Errorf("parse flags: -%s = %d: must be positive", name, v)
		}
	}
	o.postgresDSN = storetest.PostgresDSN()
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// row is one line of the result table.
type row struct {
	Measure, Value, Baseline, Ratio string
}

// report collects the table and the notes that explain it.
type report struct {
	rows  []row
	notes []string
}

func (r *report) add(measure, value, baseline, ratio string) {
	r.rows = append(r.rows, row{measure, value, baseline, ratio})
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// run runs the sections the flags select and writes the report to out.
func run(ctx context.Context, args []string, out, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	m := machine()
	rep := &report{}
	steps := map[string]func(context.Context, options, *report) error{
		"ingest": benchIngest, "scan": benchScan, "latency": benchLatency, "scale": benchScale, "receive": benchReceive,
	}
	steps["tsdb"] = benchTSDB
	steps["layout"] = benchLayout
	started := time.Now()
	for _, s := range sections {
		if !o.only[s] {
			continue
		}
		o.logf("%s: start", s)
		t0 := time.Now()
		if err := steps[s](ctx, o, rep); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		o.logf("%s: done in %s", s, time.Since(t0).Round(time.Millisecond))
	}
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	fmt.Fprintf(out, "## sanwatch bench (%s mode, %s)\n\n", mode, time.Since(started).Round(time.Second))
	fmt.Fprintf(out, "Machine: %d CPUs (nproc), %s, %s, GOMAXPROCS %d; load average %s at start, %s at end.\n\n",
		m.nproc, m.cpu, runtime.Version(), runtime.GOMAXPROCS(0), m.load, loadAverage())
	fmt.Fprintln(out, "| measure | value | baseline | ratio |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, r := range rep.rows {
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", r.Measure, r.Value, r.Baseline, r.Ratio)
	}
	if len(rep.notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range rep.notes {
			fmt.Fprintf(out, "- %s\n", n)
		}
	}
	return nil
}

// scanServers returns the server modes of the scan comparison, external
// first: a stopped temporaltest server leaves goroutines behind.
func (o options) scanServers() []string {
	if o.server == serverBoth {
		return []string{serverExternal, serverInProcess}
	}
	return []string{o.server}
}

// sectionServer returns the server mode of the latency and scale sections.
func (o options) sectionServer() string {
	if o.server == serverBoth {
		return serverExternal
	}
	return o.server
}

// logf writes a progress line.
func (o options) logf(format string, args ...any) {
	fmt.Fprintf(o.progress, "bench: "+format+"\n", args...)
}

// machineInfo describes where the bench ran.
type machineInfo struct {
	nproc int
	cpu   string
	load  string
}

func machine() machineInfo {
	m := machineInfo{nproc: runtime.NumCPU(), cpu: "unknown CPU", load: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAverage returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procStatus returns a field of /proc/self/status in bytes (VmHWM, VmRSS).
func procStatus(field string) (int64, error) { return procStatusOf("self", field) }

// procStatusOf returns a field of /proc/PID/status in bytes.
func procStatusOf(pid, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("read /proc/%s/status: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse %s: %q", field, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("read /proc/%s/status: no %s", pid, field)
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: "5" > clear_refs).
func resetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak rss: %w", err)
	}
	return nil
}

// quietLogger discards everything: the bench prints only its table.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newActivityEnv returns a Temporal test activity environment (no server)
// with acts registered: the way to call an activity method directly, since
// activity.RecordHeartbeat and GetLogger panic on a plain context.
func newActivityEnv(acts *activities.Activities) *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(quietLogger()))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return env
}

// benchConfig returns the default configuration adjusted for one section:
// its own queue names, files under dir, no metrics endpoint.
func benchConfig(section, dir string) *config.Config {
	cfg := config.Default()
	cfg.Queues = config.Queues{Main: "bench-" + section, Analysis: "bench-" + section + "-analysis", Email: "bench-" + section + "-email"}
	cfg.Store.Driver = config.DriverSQLite
	cfg.Store.Path = filepath.Join(dir, "sanwatch.db")
	cfg.Inventory = filepath.Join(dir, "fleet.yaml")
	cfg.Ingest.Roots = []string{dir}
	cfg.Worker.MetricsAddr = ""
	cfg.Advisories = findAdvisories()
	return cfg
}

// findAdvisories returns config/advisories.yaml of the module the bench runs
// in, or "" when not found.
func findAdvisories() string {
	root := moduleRoot()
	if root == "" {
		return ""
	}
	p := filepath.Join(root, "config", "advisories.yaml")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// moduleRoot returns the directory of the go.mod the working directory is
// in (searched upwards), or "" when there is none.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Formatting helpers.

// num formats n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate formats n per second over d.
func rate(n int64, d time.Duration, unit string) string {
	return num(int64(float64(n)/d.Seconds())) + " " + unit + "/s"
}

// ratio formats a/b: two decimals, or two significant digits below 0.1.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	if r := a / b; r < 0.1 {
		return strconv.FormatFloat(r, 'g', 2, 64)
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// mib formats bytes as MiB.
func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

// errSkipped marks a measure that could not run here (PostgreSQL unreachable).
var errSkipped = errors.New("skipped")
