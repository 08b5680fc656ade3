package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/analysis"
)

// noEnv is an environment with nothing set.
func noEnv(string) (string, bool) { return "", false }

// envOf returns an environment holding m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeFile writes content to name in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// flags returns a flag set with AddFlags, parsed from args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddFlags(fs)
	require.NoError(t, fs.Parse(args))
	return fs
}

// isolate makes Load find no configuration file unless the test writes one
// in the returned directory (the working directory).
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	old := SearchPaths
	SearchPaths = []string{"."}
	t.Cleanup(func() { SearchPaths = old })
	return dir
}

func TestDefaultsRunLocallyWithNoFile(t *testing.T) {
	isolate(t)
	c, err := Load(LoadOptions{Env: noEnv})
	require.NoError(t, err)
	require.Equal(t, Default(), c)

	require.Equal(t, "127.0.0.1:7233", c.Temporal.Address)
	require.Equal(t, "default", c.Temporal.Namespace)
	require.Equal(t, Queues{Main: "sanwatch", Analysis: "sanwatch-analysis", Email: "sanwatch-email"}, c.Queues)
	require.Equal(t, Store{Driver: "sqlite", Path: "data/sanwatch.db"}, c.Store)
	require.Equal(t, "data", c.DataDir)
	require.Equal(t, "fleet.yaml", c.Inventory)
	require.Equal(t, "config/advisories.yaml", c.Advisories)
	require.Equal(t, Ingest{Roots: []string{}, MaxRejectRatio: 0.5, MaxFutureSkew: time.Hour, ChunkRows: 5000, MaxErrors: 20}, c.Ingest)
	require.Equal(t, Analysis{Window: 48 * time.Hour, ShardSize: 100, MaxInFlight: 4, ShardDeadline: 30 * time.Minute}, c.Analysis)
	require.Equal(t, analysis.DefaultThresholds(), c.Rules)
	require.Empty(t, c.Overrides)
	require.Empty(t, c.External)
	require.Equal(t, Worker{
		Queues: []string{"main", "analysis", "email"}, MetricsAddr: "127.0.0.1:9090",
		AnalysisConcurrency: 2, EmailConcurrency: 4, WorkflowConcurrency: 0, ShutdownTimeout: 30 * time.Second,
	}, c.Worker)
	require.Equal(t, SMTP{
		Host: "127.0.0.1", Port: 1025, TLS: "none", From: "sanwatch@localhost", RatePerSecond: 5,
		Timeout: 30 * time.Second, RetryFor: time.Hour,
	}, c.SMTP)
	require.Equal(t, Remediation{Enabled: true, MinSeverity: "warning", Reminder: 24 * time.Hour, EscalateAfter: 48 * time.Hour, ResolveAfter: 6 * time.Hour, VerifyEvery: time.Hour, NotifyFailingAfter: time.Hour}, c.Remediation)
	require.Equal(t, Log{Level: "info", Format: "text"}, c.Log)
}

func TestFileIsSearchedInWorkingDirectory(t *testing.T) {
	dir := isolate(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte("log:\n  level: debug\n"), 0o600))
	c, err := Load(LoadOptions{Env: noEnv})
	require.NoError(t, err)
	require.Equal(t, "debug", c.Log.Level)

	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte("stroe:\n  driver: postgres\n"), 0o600))
	_, err = Load(LoadOptions{Env: noEnv})
	require.EqualError(t, err, `config: unknown key "stroe.driver" in sanwatch.yaml`)
}

func TestValidationErrors(t *testing.T) {
	isolate(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := writeFile(t, "not.pem", "not a certificate\n")
	caPEM := writeFile(t, "ca.pem", testCAPEM(t))
	tests := []struct {
		name string
		file string            // content of sanwatch.yaml; empty: no file
		env  map[string]string // environment
		args []string          // command line
		want string            // exact error message
	}{
		// unknown keys
		{name: "unknown key in file", file: "stroe:\n  driver: sqlite\n",
			want: `config: unknown key "stroe.driver" in sanwatch.yaml`},
		{name: "unknown key in known section", file: "store:\n  drvier: sqlite\n",
			want: `config: unknown key "store.drvier" in sanwatch.yaml`},
		{name: "unknown top-level scalar", file: "datadir: x\n",
			want: `config: unknown key "datadir" in sanwatch.yaml`},
		{name: "unknown rule", file: "rules:\n  capacity:\n    warning_days: 3\n",
			want: `config: unknown key "rules.capacity.warning_days" in sanwatch.yaml`},
		{name: "unknown rule key", file: "rules:\n  capacity_forecast:\n    warn_days: 3\n",
			want: `config: unknown key "rules.capacity_forecast.warn_days" in sanwatch.yaml`},
		{name: "unknown override rule", file: "overrides:\n  sw-1:\n    capcity_forecast:\n      warning_days: 3\n",
			want: `config: unknown key "overrides.sw-1.capcity_forecast.warning_days" in sanwatch.yaml`},
		{name: "unknown override key", file: "overrides:\n  sw-1:\n    ssd_wear:\n      warn: 3\n",
			want: `config: unknown key "overrides.sw-1.ssd_wear.warn" in sanwatch.yaml`},
		{name: "unknown external field", file: "external:\n  - name: a\n    cmd: [sh]\n",
			want: `config: unknown key "external[0].cmd" in sanwatch.yaml`},
		{name: "unknown key in --set", args: []string{"--set", "stroe.driver=sqlite"},
			want: `config: unknown key "stroe.driver" in --set`},
		{name: "unknown override in --set", args: []string{"--set", "overrides.sw-1.ssd_wear.warn=3"},
			want: `config: unknown key "overrides.sw-1.ssd_wear.warn" in --set`},
		{name: "malformed --set", args: []string{"--set", "smtp.port"},
			want: `config: --set "smtp.port": must be key=value`},
		{name: "malformed --set is not echoed", args: []string{"--set", "store.dsn:postgres://u:pw@db"},
			want: `config: --set: an argument is not key=value`},
		{name: "external in --set", args: []string{"--set", "external=sh"},
			want: `config: --set external: external analyzers are set in the config file only`},
		{name: "scalar for a section", file: "store: sqlite\n",
			want: `config: store = "sqlite": must be a mapping of keys`},
		{name: "two errors at once", file: "stroe: {}\nlog:\n  levle: x\n",
			want: "config: unknown key \"log.levle\" in sanwatch.yaml\nconfig: unknown key \"stroe\" in sanwatch.yaml"},
		{name: "yaml syntax", file: "smtp:\n  port: [\n",
			want: "config: parse sanwatch.yaml: yaml: line 2: did not find expected node content"},

		// thresholds
		{name: "negative threshold", file: "rules:\n  capacity_forecast:\n    warning_days: -1\n",
			want: `config: rules.capacity_forecast.warning_days = -1: allowed 0 to 3650 days`},
		{name: "fraction where a count is needed", args: []string{"--set", "rules.latency_anomaly.sustain_points=2.5"},
			want: `config: rules.latency_anomaly.sustain_points = 2.5: allowed a whole number from 1 to 100000 points`},
		{name: "threshold not a number", env: map[string]string{"SANWATCH_RULES_SSD_WEAR_WARNING_PCT": "high"},
			want: `config: rules.ssd_wear.warning_pct = "high": must be a number`},
		{name: "threshold pair", file: "rules:\n  capacity_forecast:\n    critical_days: 20\n",
			want: "config: rules: invalid thresholds capacity_forecast.critical_days = 20 and capacity_forecast.warning_days = 14: critical_days must not be above warning_days"},
		{name: "negative override", file: "overrides:\n  SW-1:\n    ssd_wear:\n      warning_pct: -5\n",
			want: `config: overrides.sw-1.ssd_wear.warning_pct = -5: allowed 0 to 100 %`},
		{name: "override pair against configured rules",
			file: "rules:\n  ssd_wear:\n    critical_pct: 90\noverrides:\n  sw-1:\n    ssd_wear:\n      warning_pct: 92\n",
			want: "config: overrides.sw-1: invalid thresholds ssd_wear.warning_pct = 92 and ssd_wear.critical_pct = 90: warning_pct must not be above critical_pct"},

		// temporal
		{name: "bad temporal address", env: map[string]string{"SANWATCH_TEMPORAL_ADDRESS": "localhost"},
			want: `config: temporal.address = "localhost": must be host:port`},
		{name: "temporal address without host", args: []string{"--temporal-address", ":7233"},
			want: `config: temporal.address = ":7233": must be host:port`},
		{name: "empty namespace", args: []string{"--namespace", ""},
			want: `config: temporal.namespace = "": must be non-empty`},
		{name: "cert without key", file: "temporal:\n  tls:\n    cert_file: " + missing + "\n",
			want: "config: temporal.tls.key_file = \"\": must be set when temporal.tls.cert_file is set\n" +
				`config: temporal.tls.cert_file = "` + missing + `": must be an existing file`},
		{name: "missing ca file", args: []string{"--set", "temporal.tls.ca_file=" + missing},
			want: `config: temporal.tls.ca_file = "` + missing + `": must be an existing file`},
		{name: "tls enabled not a bool", env: map[string]string{"SANWATCH_TEMPORAL_TLS_ENABLED": "yes"},
			want: `config: temporal.tls.enabled = "yes": must be true or false`},

		// queues
		{name: "same queue twice", file: "queues:\n  email: sanwatch\n",
			want: `config: queues.email = "sanwatch": must be distinct from queues.main`},
		{name: "empty queue", args: []string{"--set", "queues.analysis="},
			want: `config: queues.analysis = "": must be non-empty`},

		// store
		{name: "bad driver", args: []string{"--store-driver", "mysql"},
			want: `config: store.driver = "mysql": must be sqlite or postgres`},
		{name: "postgres without dsn", env: map[string]string{"SANWATCH_STORE_DRIVER": "postgres"},
			want: `config: store.dsn = "": must be set when store.driver is postgres`},
		{name: "empty data dir", args: []string{"--data-dir", ""},
			want: `config: data_dir = "": must be non-empty`},

		// ingest and analysis
		{name: "reject ratio zero", file: "ingest:\n  max_reject_ratio: 0\n",
			want: `config: ingest.max_reject_ratio = 0: must be >0 and <=1`},
		{name: "reject ratio above one", args: []string{"--set", "ingest.max_reject_ratio=1.5"},
			want: `config: ingest.max_reject_ratio = 1.5: must be >0 and <=1`},
		{name: "negative future skew", file: "ingest:\n  max_future_skew: -1m\n",
			want: `config: ingest.max_future_skew = -1m0s: must be >=0`},
		{name: "zero chunk rows", file: "ingest:\n  chunk_rows: 0\n",
			want: `config: ingest.chunk_rows = 0: must be >=1`},
		{name: "negative max errors", file: "ingest:\n  max_errors: -1\n",
			want: `config: ingest.max_errors = -1: must be >=0`},
		{name: "an empty root", file: "ingest:\n  roots: [/srv/batches, \"\"]\n",
			want: `config: ingest.roots = "": must not hold an empty directory`},
		{name: "bad duration", file: "analysis:\n  window: 2 days\n",
			want: `config: analysis.window = "2 days": must be a duration such as 90s, 30m or 48h`},
		{name: "bare number duration", file: "smtp:\n  timeout: 30\n",
			want: `config: smtp.timeout = 30: must be a duration such as 90s, 30m or 48h`},
		{name: "zero window", args: []string{"--set", "analysis.window=0s"},
			want: `config: analysis.window = 0s: must be >0`},
		{name: "shard size too big", file: "analysis:\n  shard_size: 10001\n",
			want: `config: analysis.shard_size = 10001: must be 1-10000`},
		{name: "max in flight zero", file: "analysis:\n  max_in_flight: 0\n",
			want: `config: analysis.max_in_flight = 0: must be 1-1000`},

		// external
		{name: "external without name", file: "external:\n  - command: [sh, x.sh]\n",
			want: `config: external[0].name = "": must be non-empty`},
		{name: "external duplicate name", file: "external:\n  - name: a\n    command: [sh]\n  - name: a\n    command: [perl]\n",
			want: `config: external[1].name = "a": must be unique (also external[0].name)`},
		{name: "external without command", file: "external:\n  - name: a\n",
			want: `config: external[0].command = "": must be a non-empty list: the program, then its arguments`},
		{name: "external command as a string", file: "external:\n  - name: a\n    command: sh x.sh\n",
			want: `config: external[0].command = "sh x.sh": must be a list of strings`},
		{name: "external bad timeout", file: "external:\n  - name: a\n    command: [sh]\n    timeout: soon\n",
			want: `config: external[0].timeout = "soon": must be a duration such as 90s, 30m or 48h`},
		{name: "external zero output", file: "external:\n  - name: a\n    command: [sh]\n    max_output_bytes: 0\n",
			want: `config: external[0].max_output_bytes = 0: must be >0`},
		{name: "external not a list", file: "external: perl\n",
			want: `config: external = "perl": must be a list of analyzers`},
		{name: "external env names the SMTP password", file: "external:\n  - name: a\n    command: [sh]\n    env: [PATH, SANWATCH_SMTP_PASSWORD]\n",
			want: `config: external[0].env = "SANWATCH_SMTP_PASSWORD": must not be a secret of sanwatch's (smtp.password): analyzers never get sanwatch's variables`},
		{name: "external env names the store DSN", file: "external:\n  - name: a\n    command: [sh]\n    env: [SANWATCH_STORE_DSN]\n",
			want: `config: external[0].env = "SANWATCH_STORE_DSN": must not be a secret of sanwatch's (store.dsn): analyzers never get sanwatch's variables`},
		{name: "external env names the API key", file: "external:\n  - name: a\n    command: [sh]\n    env: [SANWATCH_TEMPORAL_API_KEY]\n",
			want: `config: external[0].env = "SANWATCH_TEMPORAL_API_KEY": must not be a secret of sanwatch's (temporal.api_key): analyzers never get sanwatch's variables`},
		{name: "external env names the codec keys", file: "external:\n  - name: a\n    command: [sh]\n    env: [sanwatch_codec_keys]\n",
			want: `config: external[0].env = "sanwatch_codec_keys": must not be a secret of sanwatch's (codec.keys): analyzers never get sanwatch's variables`},
		{name: "external env names another sanwatch variable", file: "external:\n  - name: a\n    command: [sh]\n    env: [SANWATCH_LOG_LEVEL]\n",
			want: `config: external[0].env = "SANWATCH_LOG_LEVEL": must not start with SANWATCH_: analyzers never get sanwatch's variables`},
		{name: "external env not a name", file: "external:\n  - name: a\n    command: [sh]\n    env: [\"A=B\"]\n",
			want: `config: external[0].env = "A=B": must be a variable name ([A-Za-z_][A-Za-z0-9_]*)`},
		{name: "external zero max findings", file: "external:\n  - name: a\n    command: [sh]\n    max_findings: 0\n",
			want: `config: external[0].max_findings = 0: must be >=1`},
		{name: "external name with a space", file: "external:\n  - name: fan check\n    command: [sh]\n",
			want: `config: external[0].name = "fan check": must be up to 64 of A-Z a-z 0-9 . _ -`},

		// worker
		{name: "unknown worker queue", env: map[string]string{"SANWATCH_WORKER_QUEUES": "main,cpu"},
			want: `config: worker.queues = "cpu": must be main, analysis or email`},
		{name: "bad metrics addr", file: "worker:\n  metrics_addr: localhost\n",
			want: `config: worker.metrics_addr = "localhost": must be host:port`},
		{name: "pprof on all interfaces", args: []string{"--set", "worker.pprof_addr=0.0.0.0:6060"},
			want: `config: worker.pprof_addr = "0.0.0.0:6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof without host", env: map[string]string{"SANWATCH_WORKER_PPROF_ADDR": ":6060"},
			want: `config: worker.pprof_addr = ":6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof on a routable address", file: "worker:\n  pprof_addr: 10.1.2.3:6060\n",
			want: `config: worker.pprof_addr = "10.1.2.3:6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof on a host name", file: "worker:\n  pprof_addr: worker-1:6060\n",
			want: `config: worker.pprof_addr = "worker-1:6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof on ipv6 any", file: "worker:\n  pprof_addr: \"[::]:6060\"\n",
			want: `config: worker.pprof_addr = "[::]:6060": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof without port", file: "worker:\n  pprof_addr: 127.0.0.1\n",
			want: `config: worker.pprof_addr = "127.0.0.1": must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication`},
		{name: "pprof on the metrics listener", args: []string{"--set", "worker.pprof_addr=127.0.0.1:9090"},
			want: `config: worker.pprof_addr = "127.0.0.1:9090": must differ from worker.metrics_addr: pprof has a listener of its own`},
		{name: "zero analysis concurrency", file: "worker:\n  analysis_concurrency: 0\n",
			want: `config: worker.analysis_concurrency = 0: must be >=1`},
		{name: "negative workflow concurrency", file: "worker:\n  workflow_concurrency: -1\n",
			want: `config: worker.workflow_concurrency = -1: must be >=0`},

		// smtp
		{name: "bad port", file: "smtp:\n  port: 70000\n",
			want: `config: smtp.port = 70000: must be 1-65535`},
		{name: "port not a number", env: map[string]string{"SANWATCH_SMTP_PORT": "smtp"},
			want: `config: smtp.port = "smtp": must be an integer`},
		{name: "port fraction", file: "smtp:\n  port: 25.5\n",
			want: `config: smtp.port = 25.5: must be an integer`},
		{name: "bad smtp tls", args: []string{"--set", "smtp.tls=ssl"},
			want: `config: smtp.tls = "ssl": must be none, starttls or tls`},
		{name: "bad from", file: "smtp:\n  from: sanwatch\n",
			want: `config: smtp.from = "sanwatch": must be an email address such as sanwatch@example.com`},
		{name: "bad default owner", args: []string{"--set", "smtp.default_owner=storage team"},
			want: `config: smtp.default_owner = "storage team": must be an email address such as sanwatch@example.com`},
		{name: "zero rate", file: "smtp:\n  rate_per_second: 0\n",
			want: `config: smtp.rate_per_second = 0: must be >0`},
		{name: "zero retry", file: "smtp:\n  retry_for: 0s\n",
			want: `config: smtp.retry_for = 0s: must be >0`},
		{name: "password in file", file: "smtp:\n  password: hunter2\n",
			want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not in the config file`},
		{name: "password in --set", args: []string{"--set", "smtp.password=hunter2"},
			want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not with --set`},
		{name: "password from env and file",
			env:  map[string]string{"SANWATCH_SMTP_PASSWORD": "hunter2", "SANWATCH_SMTP_PASSWORD_FILE": missing},
			want: `config: smtp.password: set either SANWATCH_SMTP_PASSWORD or smtp.password_file, not both`},
		{name: "password file missing", args: []string{"--set", "smtp.password_file=" + missing},
			want: `config: smtp.password_file = "` + missing + `": must be a readable file (no such file or directory)`},

		{name: "missing smtp ca file", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.ca_file=" + missing},
			want: `config: smtp.ca_file = "` + missing + `": must be an existing file`},
		{name: "smtp ca file without certificates", args: []string{"--set", "smtp.tls=tls", "--set", "smtp.ca_file=" + notPEM},
			want: `config: smtp.ca_file = "` + notPEM + `": must hold PEM certificates (-----BEGIN CERTIFICATE-----)`},
		{name: "smtp ca file and skip verify", args: []string{"--set", "smtp.tls=tls", "--set", "smtp.ca_file=" + caPEM, "--set", "smtp.insecure_skip_verify=true"},
			want: `config: smtp.insecure_skip_verify = true: must be false when smtp.ca_file is set (skipping verification ignores the CA)`},
		{name: "bad smtp server name", args: []string{"--set", "smtp.server_name=mail.example.com:465"},
			want: `config: smtp.server_name = "mail.example.com:465": must be a host name or IP address`},
		{name: "credentials over plain smtp", env: map[string]string{"SANWATCH_SMTP_HOST": "mail.example.com", "SANWATCH_SMTP_USERNAME": "sanwatch", "SANWATCH_SMTP_PASSWORD": "hunter2"},
			want: `config: smtp.tls = "none": sends the credentials of smtp.username in clear text: use starttls or tls, or set smtp.allow_insecure_auth: true for a relay on loopback or a trusted network`},
		{name: "credentials over plain smtp to loopback too", args: []string{"--set", "smtp.username=sanwatch"},
			want: `config: smtp.tls = "none": sends the credentials of smtp.username in clear text: use starttls or tls, or set smtp.allow_insecure_auth: true for a relay on loopback or a trusted network`},
		{name: "xoauth2 over plain smtp", args: []string{"--set", "smtp.auth=xoauth2", "--set", "smtp.username=u@example.com", "--set", "smtp.oauth2_token_file=" + caPEM},
			want: `config: smtp.tls = "none": sends the credentials of smtp.username in clear text: use starttls or tls, or set smtp.allow_insecure_auth: true for a relay on loopback or a trusted network`},
		{name: "unknown smtp auth", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=cram-md5"},
			want: `config: smtp.auth = "cram-md5": must be empty (PLAIN or LOGIN with smtp.username) or xoauth2`},
		{name: "xoauth2 without username", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=XOAUTH2", "--set", "smtp.oauth2_token_command=get-token"},
			want: `config: smtp.username = "": must be set with smtp.auth xoauth2: the mailbox the token is for`},
		{name: "xoauth2 without token source", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=xoauth2", "--set", "smtp.username=u@example.com"},
			want: `config: smtp.oauth2_token_file = "": must be set with smtp.auth xoauth2, or smtp.oauth2_token_command`},
		{name: "xoauth2 with two token sources", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=xoauth2", "--set", "smtp.username=u@example.com",
			"--set", "smtp.oauth2_token_file=/run/token", "--set", "smtp.oauth2_token_command=get-token"},
			want: `config: smtp.oauth2_token_command = "get-token": must be empty when smtp.oauth2_token_file is set: one token source`},
		{name: "xoauth2 token command with open quote", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=xoauth2", "--set", "smtp.username=u@example.com",
			"--set", "smtp.oauth2_token_command=get-token --scope 'https://outlook.office365.com/.default"},
			want: `config: smtp.oauth2_token_command = "get-token --scope 'https://outlook.office365.com/.default": must be a program and its arguments (unterminated quote); no shell runs it`},
		{name: "token file without xoauth2", args: []string{"--set", "smtp.oauth2_token_file=/run/token"},
			want: `config: smtp.oauth2_token_file = "/run/token": must be empty unless smtp.auth is xoauth2`},

		// retention
		{name: "samples kept less than a rule reads", file: "retention:\n  samples: 48h\n",
			want: `config: retention.samples = 48h0m0s: must be at least 720h0m0s, the longest history a rule reads (analysis.window, rules.*.history_days, overrides)`},
		{name: "samples kept less than an override reads", file: "overrides:\n  box-1:\n    ssd_wear:\n      history_days: 60\n",
			want: `config: retention.samples = 720h0m0s: must be at least 1440h0m0s, the longest history a rule reads (analysis.window, rules.*.history_days, overrides)`},
		{name: "samples kept less than the window", args: []string{"--set", "analysis.window=1000h"},
			want: `config: retention.samples = 720h0m0s: must be at least 1000h0m0s, the longest history a rule reads (analysis.window, rules.*.history_days, overrides)`},
		{name: "zero retention every", args: []string{"--set", "retention.every=0s"},
			want: `config: retention.every = 0s: must be >0`},

		// remediation and log
		{name: "zero reminder", file: "remediation:\n  reminder: 0s\n",
			want: `config: remediation.reminder = 0s: must be >0`},
		{name: "negative escalate", args: []string{"--set", "remediation.escalate_after=-1h"},
			want: `config: remediation.escalate_after = -1h0m0s: must be >0`},
		{name: "bad log level", args: []string{"--log-level", "verbose"},
			want: `config: log.level = "verbose": must be debug, info, warn or error`},
		{name: "bad log format", file: "log:\n  format: xml\n",
			want: `config: log.format = "xml": must be text or json`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			if tc.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(tc.file), 0o600))
			}
			c, err := Load(LoadOptions{Env: envOf(tc.env), Flags: flags(t, tc.args...)})
			require.EqualError(t, err, tc.want)
			require.Nil(t, c)
		})
	}
}

func TestValidationErrorIsTyped(t *testing.T) {
	isolate(t)
	_, err := Load(LoadOptions{Env: envOf(map[string]string{"SANWATCH_SMTP_PORT": "70000"})})
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	require.Equal(t, ValidationError{Key: "smtp.port", Value: 70000, Allowed: "must be 1-65535"}, *ve)

	_, err = Load(LoadOptions{Env: noEnv, Flags: flags(t, "--set", "smtp.prot=1")})
	var uk *UnknownKeyError
	require.True(t, errors.As(err, &uk))
	require.Equal(t, UnknownKeyError{Key: "smtp.prot", Source: "--set"}, *uk)
}

func TestExplicitFile(t *testing.T) {
	isolate(t)
	tests := []struct {
		name    string
		file    func(t *testing.T) string
		args    []string
		want    string // log.level
		wantErr string
	}{
		{name: "LoadOptions.File", file: func(t *testing.T) string { return writeFile(t, "a.yaml", "log: {level: warn}\n") }, want: "warn"},
		{name: "--config wins over LoadOptions.File",
			file: func(t *testing.T) string { return writeFile(t, "a.yaml", "log: {level: warn}\n") },
			args: []string{"--config", "PLACEHOLDER"}, want: "error"},
		{name: "missing file fails", file: func(*testing.T) string { return "/nonexistent/sanwatch.yaml" },
			wantErr: "config: read config file: open /nonexistent/sanwatch.yaml: no such file or directory"},
	}
	other := writeFile(t, "b.yaml", "log: {level: error}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			for i := range args {
				if args[i] == "PLACEHOLDER" {
					args[i] = other
				}
			}
			c, err := Load(LoadOptions{File: tc.file(t), Env: noEnv, Flags: flags(t, args...)})
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.Log.Level)
		})
	}
}

func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	isolate(t)
	file := writeFile(t, FileName, "log:\n  level: warn\nsmtp:\n  port: 2525\n")
	env := map[string]string{"SANWATCH_LOG_LEVEL": "error", "SANWATCH_SMTP_PORT": "2626"}
	tests := []struct {
		name      string
		file      string
		env       map[string]string
		args      []string
		wantLevel string
		wantPort  int
	}{
		{name: "defaults", wantLevel: "info", wantPort: 1025},
		{name: "file over defaults", file: file, wantLevel: "warn", wantPort: 2525},
		{name: "env over file", file: file, env: env, wantLevel: "error", wantPort: 2626},
		{name: "empty env is unset", file: file, env: map[string]string{"SANWATCH_LOG_LEVEL": ""}, wantLevel: "warn", wantPort: 2525},
		{name: "--set over env", file: file, env: env, args: []string{"--set", "log.level=debug", "--set", "smtp.port=2727"},
			wantLevel: "debug", wantPort: 2727},
		{name: "shortcut over env", file: file, env: env, args: []string{"--log-level", "debug"}, wantLevel: "debug", wantPort: 2626},
		{name: "shortcut over --set", args: []string{"--set", "log.level=warn", "--log-level", "error"}, wantLevel: "error", wantPort: 1025},
		{name: "unchanged flags do not count", file: file, env: env, args: []string{}, wantLevel: "error", wantPort: 2626},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(LoadOptions{File: tc.file, Env: envOf(tc.env), Flags: flags(t, tc.args...)})
			require.NoError(t, err)
			require.Equal(t, tc.wantLevel, c.Log.Level)
			require.Equal(t, tc.wantPort, c.SMTP.Port)
		})
	}
}

func TestEnvironment(t *testing.T) {
	isolate(t)
	t.Run("postgres from env", func(t *testing.T) {
		c, err := Load(LoadOptions{Env: envOf(map[string]string{
			"SANWATCH_STORE_DRIVER": "postgres",
			"SANWATCH_STORE_DSN":    "postgres://sanwatch:s3cret@db:5432/sanwatch",
		})})
		require.NoError(t, err)
		require.Equal(t, "postgres", c.Store.Driver)
		require.Equal(t, "postgres://sanwatch:s3cret@db:5432/sanwatch", c.Store.DSN)
	})
	t.Run("every kind of key", func(t *testing.T) {
		c, err := Load(LoadOptions{Env: envOf(map[string]string{
			"SANWATCH_TEMPORAL_ADDRESS":                     "temporal:7233",
			"SANWATCH_TEMPORAL_TLS_ENABLED":                 "true",
			"SANWATCH_WORKER_QUEUES":                        "email, analysis",
			"SANWATCH_INGEST_MAX_REJECT_RATIO":              "0.25",
			"SANWATCH_ANALYSIS_WINDOW":                      "72h",
			"SANWATCH_ANALYSIS_SHARD_SIZE":                  "50",
			"SANWATCH_RULES_CAPACITY_FORECAST_WARNING_DAYS": "21",
			"SANWATCH_DATA_DIR":                             "/var/lib/sanwatch",
		})})
		require.NoError(t, err)
		require.Equal(t, "temporal:7233", c.Temporal.Address)
		require.True(t, c.Temporal.TLS.Enabled)
		require.Equal(t, []string{"email", "analysis"}, c.Worker.Queues)
		require.Equal(t, 0.25, c.Ingest.MaxRejectRatio)
		require.Equal(t, 72*time.Hour, c.Analysis.Window)
		require.Equal(t, 50, c.Analysis.ShardSize)
		require.Equal(t, 21.0, c.Rules["capacity_forecast"]["warning_days"])
		require.Equal(t, "/var/lib/sanwatch", c.DataDir)
	})
	t.Run("nil Env reads the process environment", func(t *testing.T) {
		t.Setenv("SANWATCH_STORE_DRIVER", "postgres")
		t.Setenv("SANWATCH_STORE_DSN", "postgres://db/sanwatch")
		c, err := Load(LoadOptions{})
		require.NoError(t, err)
		require.Equal(t, "postgres", c.Store.Driver)
		require.Equal(t, "postgres://db/sanwatch", c.Store.DSN)
	})
}

func TestOverrides(t *testing.T) {
	isolate(t)
	file := writeFile(t, FileName, "rules:\n  ssd_wear:\n    warning_pct: 80\n"+
		"overrides:\n  SW-0001:\n    ssd_wear:\n      warning_pct: 70\n    capacity_forecast:\n      warning_days: 30\n")
	c, err := Load(LoadOptions{File: file, Env: noEnv, Flags: flags(t,
		"--set", "overrides.array.site-b.example.com.port_errors.min_errors=100",
		"--set", "overrides.sw-0001.ssd_wear.critical_pct=90",
	)})
	require.NoError(t, err)
	require.Equal(t, map[string]analysis.Thresholds{
		"sw-0001": {
			"ssd_wear":          {"warning_pct": 70, "critical_pct": 90},
			"capacity_forecast": {"warning_days": 30},
		},
		"array.site-b.example.com": {"port_errors": {"min_errors": 100}},
	}, c.Overrides)

	tests := []struct {
		name, box, rule, key string
		want                 float64
	}{
		{name: "override, other case", box: "Sw-0001", rule: "ssd_wear", key: "warning_pct", want: 70},
		{name: "override from --set", box: "SW-0001", rule: "ssd_wear", key: "critical_pct", want: 90},
		{name: "configured rule for other boxes", box: "sw-0002", rule: "ssd_wear", key: "warning_pct", want: 80},
		{name: "default for keys not overridden", box: "sw-0001", rule: "ssd_wear", key: "forecast_days", want: 30},
		{name: "dotted box id", box: "ARRAY.site-b.example.com", rule: "port_errors", key: "min_errors", want: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := c.ThresholdsFor(tc.box)
			require.Equal(t, tc.want, th[tc.rule][tc.key])
			require.NoError(t, th.Validate())
		})
	}
	// ThresholdsFor returns a copy.
	c.ThresholdsFor("sw-0001")["ssd_wear"]["warning_pct"] = 1
	require.Equal(t, 80.0, c.Rules["ssd_wear"]["warning_pct"])
	require.Equal(t, 70.0, c.Overrides["sw-0001"]["ssd_wear"]["warning_pct"])
}

func TestExternal(t *testing.T) {
	isolate(t)
	file := writeFile(t, FileName, "external:\n"+
		"  - name: fw-check\n    command: [perl, /opt/fw_check.pl, --level, 2]\n    timeout: 20s\n    max_output_bytes: 4096\n"+
		"    max_findings: 20\n    env: [FW_CATALOG_URL, http_proxy]\n    dir: /var/lib/fw-check\n"+
		"  - name: awk-wear\n    command: [awk, -f, wear.awk]\n")
	c, err := Load(LoadOptions{File: file, Env: noEnv})
	require.NoError(t, err)
	require.Equal(t, []External{
		{Name: "fw-check", Command: []string{"perl", "/opt/fw_check.pl", "--level", "2"}, Timeout: 20 * time.Second, MaxOutputBytes: 4096,
			MaxFindings: 20, Env: []string{"FW_CATALOG_URL", "http_proxy"}, Dir: "/var/lib/fw-check"},
		{Name: "awk-wear", Command: []string{"awk", "-f", "wear.awk"}, Timeout: 10 * time.Second, MaxOutputBytes: 1048576, MaxFindings: 100},
	}, c.External)
}

func TestAddFlags(t *testing.T) {
	fs := flags(t)
	tests := []struct{ flag, def string }{
		{FlagConfig, ""},
		{FlagSet, "[]"},
		{FlagTemporalAddress, "127.0.0.1:7233"},
		{FlagNamespace, "default"},
		{FlagStoreDriver, "sqlite"},
		{FlagDataDir, "data"},
		{FlagInventory, "fleet.yaml"},
		{FlagLogLevel, "info"},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			f := fs.Lookup(tc.flag)
			require.NotNil(t, f)
			require.Equal(t, tc.def, f.DefValue)
			require.NotEmpty(t, f.Usage)
		})
	}
	isolate(t)
	c, err := Load(LoadOptions{Env: envOf(map[string]string{"SANWATCH_STORE_DSN": "postgres://db/x"}), Flags: flags(t,
		"--temporal-address", "temporal:7233", "--namespace", "prod", "--store-driver", "postgres",
		"--data-dir", "/srv/data", "--inventory", "/etc/sanwatch/fleet.yaml",
		"--set", "worker.queues=analysis", "--set", "smtp.insecure_skip_verify=true")})
	require.NoError(t, err)
	require.Equal(t, "temporal:7233", c.Temporal.Address)
	require.Equal(t, "prod", c.Temporal.Namespace)
	require.Equal(t, "postgres", c.Store.Driver)
	require.Equal(t, "/srv/data", c.DataDir)
	require.Equal(t, "/etc/sanwatch/fleet.yaml", c.Inventory)
	require.Equal(t, []string{"analysis"}, c.Worker.Queues)
	require.True(t, c.SMTP.InsecureSkipVerify)
}

func TestTLSFiles(t *testing.T) {
	isolate(t)
	cert := writeFile(t, "client.pem", "cert")
	key := writeFile(t, "client.key", "key")
	c, err := Load(LoadOptions{Env: noEnv, Flags: flags(t, "--set", "temporal.tls.enabled=true",
		"--set", "temporal.tls.cert_file="+cert, "--set", "temporal.tls.key_file="+key)})
	require.NoError(t, err)
	require.Equal(t, TLS{Enabled: true, CertFile: cert, KeyFile: key}, c.Temporal.TLS)
}

func TestYAMLRoundTrip(t *testing.T) {
	isolate(t)
	file := writeFile(t, "custom.yaml", "temporal:\n  namespace: prod\nworker:\n  queues: [email]\n"+
		"overrides:\n  SW-7:\n    latency_anomaly:\n      z: 8\nexternal:\n  - name: x\n    command: [sh, x.sh]\n"+
		"rules:\n  replication_lag:\n    rpo_s: 60\n")
	c, err := Load(LoadOptions{File: file, Env: noEnv})
	require.NoError(t, err)

	again, err := Load(LoadOptions{File: writeFile(t, "effective.yaml", c.YAML()), Env: noEnv})
	require.NoError(t, err)
	require.Equal(t, c, again)
	require.Equal(t, 60.0, again.Rules["replication_lag"]["rpo_s"])
}

func TestSecretsNeverPrinted(t *testing.T) {
	isolate(t)
	const (
		apiKey   = "tk-API-KEY-0123456789"
		dsn      = "postgres://sanwatch:PG-PASSWORD-42@db:5432/sanwatch"
		envPass  = "ENV-SMTP-PASSWORD-77"
		filePass = "FILE-SMTP-PASSWORD-88"
	)
	secrets := []string{apiKey, dsn, "PG-PASSWORD-42", envPass, filePass}
	passFile := writeFile(t, "smtp-password", filePass+"\n")
	base := map[string]string{"SANWATCH_TEMPORAL_API_KEY": apiKey, "SANWATCH_STORE_DRIVER": "postgres", "SANWATCH_STORE_DSN": dsn}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	t.Run("YAML", func(t *testing.T) {
		tests := []struct {
			name     string
			env      map[string]string
			wantPass string
		}{
			{name: "smtp password from env", env: with(map[string]string{"SANWATCH_SMTP_PASSWORD": envPass}), wantPass: envPass},
			{name: "smtp password from file", env: with(map[string]string{"SANWATCH_SMTP_PASSWORD_FILE": passFile}), wantPass: filePass},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c, err := Load(LoadOptions{Env: envOf(tc.env)})
				require.NoError(t, err)
				require.Equal(t, tc.wantPass, c.SMTP.Password, "the trailing newline is trimmed")
				require.Equal(t, apiKey, c.Temporal.APIKey)
				require.Equal(t, dsn, c.Store.DSN)
				out := c.YAML()
				for _, s := range secrets {
					require.NotContains(t, out, s)
				}
				require.Contains(t, out, "api_key: <redacted>")
				require.Contains(t, out, "dsn: <redacted>")
				require.Contains(t, out, "password: <redacted>")
				// YAML must not have changed the config itself.
				require.Equal(t, apiKey, c.Temporal.APIKey)
			})
		}
	})

	t.Run("empty secrets shown empty", func(t *testing.T) {
		out := Default().YAML()
		require.Contains(t, out, `api_key: ""`)
		require.Contains(t, out, `dsn: ""`)
		require.Contains(t, out, `password: ""`)
		require.NotContains(t, out, Redacted)
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			file string
			env  map[string]string
			args []string
			want string
		}{
			{name: "password in file", file: "smtp:\n  password: " + filePass + "\n", env: base,
				want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not in the config file`},
			{name: "password in --set", env: base, args: []string{"--set", "smtp.password=" + envPass},
				want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not with --set`},
			{name: "password in env and file", env: with(map[string]string{"SANWATCH_SMTP_PASSWORD": envPass, "SANWATCH_SMTP_PASSWORD_FILE": passFile}),
				want: `config: smtp.password: set either SANWATCH_SMTP_PASSWORD or smtp.password_file, not both`},
			{name: "dsn of the wrong type", file: "store:\n  dsn: [" + dsn + "]\n", env: map[string]string{"SANWATCH_TEMPORAL_API_KEY": apiKey},
				want: `config: store.dsn = "<redacted>": must be a string`},
			{name: "api key of the wrong type", file: "temporal:\n  api_key: {k: " + apiKey + "}\n",
				want: `config: temporal.api_key = "<redacted>": must be a string`},
			{name: "other errors with secrets set", env: with(map[string]string{"SANWATCH_SMTP_PASSWORD": envPass, "SANWATCH_SMTP_PORT": "0"}),
				want: `config: smtp.port = 0: must be 1-65535`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				dir := isolate(t)
				if tc.file != "" {
					require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(tc.file), 0o600))
				}
				_, err := Load(LoadOptions{Env: envOf(tc.env), Flags: flags(t, tc.args...)})
				require.EqualError(t, err, tc.want)
				for _, s := range secrets {
					require.NotContains(t, err.Error(), s)
				}
				var ve *ValidationError
				if errors.As(err, &ve) {
					for _, s := range secrets {
						require.NotContains(t, strings.Join([]string{ve.Key, ve.Allowed}, " "), s)
						if v, ok := ve.Value.(string); ok {
							require.NotContains(t, v, s)
						}
					}
				}
			})
		}
	})

	t.Run("ValidationError redacts a secret value it is given", func(t *testing.T) {
		e := &ValidationError{Key: "store.dsn", Value: dsn, Allowed: "must be a URL"}
		require.Equal(t, `config: store.dsn = "<redacted>": must be a URL`, e.Error())
	})
}

// TestSecretsRefusedOnSet: no secret can be put on the command line, where
// every user of the machine sees it (ps, /proc/PID/cmdline, /debug/pprof/cmdline)
// and the shell keeps it; the error says where to put it instead and does
// not echo the value.
func TestSecretsRefusedOnSet(t *testing.T) {
	const value = "SECRET-VALUE-4711"
	tests := []struct {
		key  string
		want string
	}{
		{key: "temporal.api_key",
			want: `config: temporal.api_key: set it with SANWATCH_TEMPORAL_API_KEY, temporal.api_key_file or the config file, not with --set`},
		{key: "store.dsn",
			want: `config: store.dsn: set it with SANWATCH_STORE_DSN, store.dsn_file or the config file, not with --set`},
		{key: "smtp.password",
			want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not with --set`},
		{key: "codec.keys",
			want: `config: codec.keys: set it with SANWATCH_CODEC_KEYS or codec.keys_file, not with --set`},
		{key: "samples.password",
			want: `config: samples.password: set it with SANWATCH_SAMPLES_PASSWORD or samples.password_file, not with --set`},
		{key: "samples.bearer_token",
			want: `config: samples.bearer_token: set it with SANWATCH_SAMPLES_BEARER_TOKEN or samples.bearer_token_file, not with --set`},
		{key: "STORE.DSN",
			want: `config: store.dsn: set it with SANWATCH_STORE_DSN, store.dsn_file or the config file, not with --set`},
		{key: " smtp.password ",
			want: `config: smtp.password: set it with SANWATCH_SMTP_PASSWORD or smtp.password_file, not with --set`},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			isolate(t)
			covered[strings.ToLower(strings.TrimSpace(tc.key))] = true
			_, err := Load(LoadOptions{Env: noEnv, Flags: flags(t, "--set", tc.key+"="+value)})
			require.EqualError(t, err, tc.want)
			require.NotContains(t, err.Error(), value)
		})
	}
	t.Run("every secret key is covered", func(t *testing.T) {
		for k := range secretKeys {
			require.True(t, covered[k], "secret key %s has no --set case", k)
		}
	})
}

// TestSecretFiles: temporal.api_key, store.dsn and smtp.password can each
// come from a file (a mounted secret), and from one place only.
func TestSecretFiles(t *testing.T) {
	const (
		apiKey = "tk-FILE-API-KEY"
		dsn    = "postgres://sanwatch:FILE-PG-PW@db:5432/sanwatch"
	)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	apiKeyFile := write("api-key", apiKey+"\n")
	dsnFile := write("dsn", dsn+"\r\n")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		wantAPIKey string
		wantDSN    string
		wantErr    string
	}{
		{name: "api key and dsn from files", wantAPIKey: apiKey, wantDSN: dsn,
			env: map[string]string{"SANWATCH_TEMPORAL_API_KEY_FILE": apiKeyFile, "SANWATCH_STORE_DRIVER": "postgres", "SANWATCH_STORE_DSN_FILE": dsnFile}},
		{name: "file keys in the config file", wantAPIKey: apiKey, wantDSN: dsn,
			file: "temporal:\n  api_key_file: " + apiKeyFile + "\nstore:\n  driver: postgres\n  dsn_file: " + dsnFile + "\n"},
		{name: "dsn from env and file",
			env:     map[string]string{"SANWATCH_STORE_DSN": dsn, "SANWATCH_STORE_DSN_FILE": dsnFile},
			wantErr: `config: store.dsn: set either SANWATCH_STORE_DSN or store.dsn_file, not both`},
		{name: "api key in the config file and a file",
			file:    "temporal:\n  api_key: " + apiKey + "\n  api_key_file: " + apiKeyFile + "\n",
			wantErr: `config: temporal.api_key: set either temporal.api_key in the config file or temporal.api_key_file, not both`},
		{name: "dsn file missing",
			env:     map[string]string{"SANWATCH_STORE_DSN_FILE": missing},
			wantErr: `config: store.dsn_file = "` + missing + `": must be a readable file (no such file or directory)`},
		{name: "codec keys not in the config file", file: "codec:\n  keys: " + apiKey + "\n",
			wantErr: `config: codec.keys: set it with SANWATCH_CODEC_KEYS or codec.keys_file, not in the config file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := isolate(t)
			if tc.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(d, FileName), []byte(tc.file), 0o600))
			}
			c, err := Load(LoadOptions{Env: envOf(tc.env)})
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "FILE-PG-PW")
				require.NotContains(t, err.Error(), apiKey)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantAPIKey, c.Temporal.APIKey)
			require.Equal(t, tc.wantDSN, c.Store.DSN)
			out := c.YAML()
			require.NotContains(t, out, apiKey)
			require.NotContains(t, out, "FILE-PG-PW")
			require.Contains(t, out, "dsn_file: "+dsnFile)
		})
	}
}

// testCAPEM returns a self-signed CA certificate made now, as PEM.
func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "config test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestSMTPSecurityAccepted: the settings the SMTP TLS and XOAUTH2 checks let through.
func TestSMTPSecurityAccepted(t *testing.T) {
	caPEM := writeFile(t, "ca.pem", testCAPEM(t))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(t *testing.T, s SMTP)
	}{
		{name: "private CA and server name", args: []string{"--set", "smtp.tls=tls", "--set", "smtp.ca_file=" + caPEM, "--set", "smtp.server_name=relay.internal"},
			want: func(t *testing.T, s SMTP) {
				require.Equal(t, caPEM, s.CAFile)
				require.Equal(t, "relay.internal", s.ServerName)
			}},
		{name: "credentials over starttls", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.username=sanwatch"},
			env:  map[string]string{"SANWATCH_SMTP_PASSWORD": "hunter2"},
			want: func(t *testing.T, s SMTP) { require.Equal(t, "hunter2", s.Password) }},
		{name: "credentials over none when allowed", args: []string{"--set", "smtp.username=sanwatch", "--set", "smtp.allow_insecure_auth=true"},
			want: func(t *testing.T, s SMTP) { require.True(t, s.AllowInsecureAuth) }},
		{name: "xoauth2 with a token command", args: []string{"--set", "smtp.tls=starttls", "--set", "smtp.auth=XOAuth2", "--set", "smtp.username=alerts@example.com",
			"--set", `smtp.oauth2_token_command=/usr/local/bin/get-token --scope "https://outlook.office365.com/.default"`},
			want: func(t *testing.T, s SMTP) {
				require.Equal(t, SMTPAuthXOAUTH2, s.Auth)
				argv, err := SplitCommand(s.OAuth2TokenCommand)
				require.NoError(t, err)
				require.Equal(t, []string{"/usr/local/bin/get-token", "--scope", "https://outlook.office365.com/.default"}, argv)
			}},
		{name: "pprof on loopback", args: []string{"--set", "worker.pprof_addr=127.0.0.1:6060"},
			want: func(t *testing.T, _ SMTP) {}},
		{name: "pprof on localhost and ipv6 loopback", args: []string{"--set", "worker.pprof_addr=localhost:6060", "--set", "worker.metrics_addr=[::1]:9090"},
			want: func(t *testing.T, _ SMTP) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			c, err := Load(LoadOptions{Env: envOf(tc.env), Flags: flags(t, tc.args...)})
			require.NoError(t, err)
			tc.want(t, c.SMTP)
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "get-token", want: []string{"get-token"}},
		{in: "  /bin/tok  --a   b\t", want: []string{"/bin/tok", "--a", "b"}},
		{in: `tok 'a b' "c d" e\ f`, want: []string{"tok", "a b", "c d", "e f"}},
		{in: `tok "say \"hi\"" 'it''s' "\n"`, want: []string{"tok", `say "hi"`, "its", `\n`}},
		{in: `tok '' ""`, want: []string{"tok", "", ""}},
		{in: `tok $HOME ~ *.json ; rm -rf /`, want: []string{"tok", "$HOME", "~", "*.json", ";", "rm", "-rf", "/"}},
		{in: "", wantErr: "no program"},
		{in: "   ", wantErr: "no program"},
		{in: `tok 'open`, wantErr: "unterminated quote"},
		{in: `tok "open`, wantErr: "unterminated quote"},
		{in: `tok \`, wantErr: "ends with a backslash"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := SplitCommand(tc.in)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
