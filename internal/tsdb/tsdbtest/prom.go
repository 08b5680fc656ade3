package tsdbtest

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Series is one series as an exporter names it: its labels, __name__
// included, and its samples, times in Unix milliseconds, ascending. It is
// one line of the VictoriaMetrics JSON import format.
type Series struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

// PrometheusBinary is the Prometheus executable tests run (Debian's package
// prometheus); SANWATCH_PROMETHEUS overrides it. Its promtool is the one in
// the same directory, or the one on PATH.
func PrometheusBinary() string {
	if b := os.Getenv("SANWATCH_PROMETHEUS"); b != "" {
		return b
	}
	return "prometheus"
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL     string // http://127.0.0.1:port
	DataDir string // its --storage.tsdb.path
	// Startup is how long it took from start to ready (/-/ready), its
	// blocks loaded; Backfill how long promtool took to write them.
	Startup, Backfill time.Duration
	cmd               *exec.Cmd
	exited            chan struct{} // closed when cmd has been waited for
	log               *bytes.Buffer
	stop              sync.Once
}

// StartPrometheus starts a real Prometheus on a free loopback port with its
// storage in a temporary directory, holding series (written as blocks by
// `promtool tsdb create-blocks-from openmetrics` first: Prometheus has no
// import API), waits until it is ready, and stops it at cleanup. Series
// older than a few weeks are kept (retention 100y), but LatestSample on the
// Prometheus API looks back 31 days at most. A missing binary fails the
// test under CI=true and skips it elsewhere, naming `make prometheus`.
func StartPrometheus(tb testing.TB, series ...Series) *Prometheus {
	tb.Helper()
	bin, promtool, err := prometheusTools()
	if err != nil {
		msg := fmt.Sprintf("Prometheus is not installed (%v): run `make prometheus` (apt-get install -y prometheus), or set SANWATCH_PROMETHEUS", err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	p, err := LaunchPrometheus(bin, promtool, tb.TempDir(), series...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Stop)
	tb.Logf("Prometheus %s: %d series backfilled in %s, ready in %s", p.URL, len(series), p.Backfill.Round(time.Millisecond), p.Startup.Round(time.Millisecond))
	return p
}

// prometheusTools finds prometheus and its promtool.
func prometheusTools() (bin, promtool string, err error) {
	bin, err = exec.LookPath(PrometheusBinary())
	if err != nil {
		return "", "", err
	}
	if pt := filepath.Join(filepath.Dir(bin), "promtool"); fileExists(pt) {
		return bin, pt, nil
	}
	promtool, err = exec.LookPath("promtool")
	if err != nil {
		return "", "", err
	}
	return bin, promtool, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// LaunchPrometheus writes series into blocks under dir with promtool,
// starts bin on a free loopback port over them and waits until it is
// ready; the caller stops it.
func LaunchPrometheus(bin, promtool, dir string, series ...Series) (*Prometheus, error) {
	p := &Prometheus{DataDir: filepath.Join(dir, "data"), log: &bytes.Buffer{}}
	if err := os.MkdirAll(p.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("make data dir: %w", err)
	}
	if len(series) > 0 {
		t0 := time.Now()
		om, err := OpenMetrics(series...)
		if err != nil {
			return nil, err
		}
		in := filepath.Join(dir, "series.om")
		if err := os.WriteFile(in, om, 0o600); err != nil {
			return nil, fmt.Errorf("write series: %w", err)
		}
		out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", in, p.DataDir).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out)
		}
		p.Backfill = time.Since(t0)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	// No scrape configs: the server holds the backfilled series alone.
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	p.URL = "http://" + addr
	p.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+p.DataDir,
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.Startup = time.Since(t0)
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("prometheus on %s exited before it was ready (%s):\n%s", addr, p.cmd.ProcessState, p.log)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("prometheus on %s was not ready in 30s: %v\n%s", addr, err, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops Prometheus and waits for it to exit.
func (p *Prometheus) Stop() {
	p.stop.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// OpenMetrics returns series in the OpenMetrics text format with
// timestamps, as promtool backfills it: the series of one name together,
// each in time order, label values escaped, "# EOF" last.
func OpenMetrics(series ...Series) ([]byte, error) {
	var names []string
	byName := map[string][]Series{}
	for i, s := range series {
		name := s.Metric["__name__"]
		if name == "" {
			return nil, fmt.Errorf("openmetrics: series %d has no __name__", i)
		}
		if len(s.Values) != len(s.Timestamps) {
			return nil, fmt.Errorf("openmetrics: series %d (%s): %d values for %d timestamps", i, name, len(s.Values), len(s.Timestamps))
		}
		if !slices.IsSorted(s.Timestamps) {
			return nil, fmt.Errorf("openmetrics: series %d (%s): timestamps not in ascending order", i, name)
		}
		if _, seen := byName[name]; !seen {
			names = append(names, name)
		}
		byName[name] = append(byName[name], s)
	}
	var b bytes.Buffer
	for _, name := range names {
		fmt.Fprintf(&b, "# TYPE %s unknown\n", name)
		for _, s := range byName[name] {
			keys := make([]string, 0, len(s.Metric))
			for k := range s.Metric {
				if k != "__name__" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			var sb strings.Builder
			sb.WriteString(name)
			if len(keys) > 0 {
				sb.WriteByte('{')
				for i, k := range keys {
					if i > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString(k + `="` + escapeLabel(s.Metric[k]) + `"`)
				}
				sb.WriteByte('}')
			}
			series := sb.String()
			for i, v := range s.Values {
				ms := s.Timestamps[i]
				if ms < 0 {
					return nil, fmt.Errorf("openmetrics: series %s: time %d before 1970", series, ms)
				}
				fmt.Fprintf(&b, "%s %s %d.%03d\n", series, formatValue(v), ms/1000, ms%1000)
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes(), nil
}

// escapeLabel escapes a label value as OpenMetrics does: backslash, double
// quote and line feed.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
