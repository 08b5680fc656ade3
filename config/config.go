// Package config loads sanwatch's configuration with viper: defaults, then
// the file sanwatch.yaml (./ or /etc/sanwatch, or the path given), then
// environment variables SANWATCH_<KEY> (nested keys joined by "_", e.g.
// SANWATCH_TEMPORAL_ADDRESS), then command-line flags. Every value is
// validated; an invalid one fails Load with an error naming the key, the
// value and what is allowed. Secrets are never printed.
package config

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sanwatch/sanwatch/internal/analysis"
)

// Redacted replaces the value of a non-empty secret in YAML and in errors.
const Redacted = "<redacted>"

// Config is sanwatch's effective configuration. Field comments name the
// configuration key; sanwatch.example.yaml documents each one.
type Config struct {
	Temporal   Temporal            `yaml:"temporal"`
	Queues     Queues              `yaml:"queues"`
	Store      Store               `yaml:"store"`
	DataDir    string              `yaml:"data_dir"`   // data_dir: where telemetry batches and the sqlite store live
	Inventory  string              `yaml:"inventory"`  // inventory: the fleet.yaml path
	Advisories string              `yaml:"advisories"` // advisories: the firmware advisories YAML path
	Ingest     Ingest              `yaml:"ingest"`
	Analysis   Analysis            `yaml:"analysis"`
	Rules      analysis.Thresholds `yaml:"rules"` // rules.<rule>.<key>: every built-in threshold, defaults filled in
	// Overrides holds per-box thresholds, overrides.<box>.<rule>.<key>,
	// laid over Rules for that box. Box ids are stored lower-case and
	// matched case-insensitively (viper keys are case-insensitive); use
	// ThresholdsFor to get a box's effective thresholds.
	Overrides   map[string]analysis.Thresholds `yaml:"overrides"`
	External    []External                     `yaml:"external"`
	Worker      Worker                         `yaml:"worker"`
	SMTP        SMTP                           `yaml:"smtp"`
	Remediation Remediation                    `yaml:"remediation"`
	Retention   Retention                      `yaml:"retention"`
	Batches     Batches                        `yaml:"batches"`
	Samples     Samples                        `yaml:"samples"`
	Receiver    Receiver                       `yaml:"receiver"`
	Codec       Codec                          `yaml:"codec"`
	Log         Log                            `yaml:"log"`
}

// Temporal is how to reach the Temporal service (temporal.*).
type Temporal struct {
	Address   string `yaml:"address"`   // host:port of the frontend
	Namespace string `yaml:"namespace"` // Temporal namespace
	APIKey    string `yaml:"api_key"`   // secret; empty for none
	// APIKeyFile names a file holding the API key (a mounted secret).
	APIKeyFile string `yaml:"api_key_file"`
	TLS        TLS    `yaml:"tls"`
	// SearchAttributes registers sanwatch's search attributes at worker start
	// and sets them on workflows; false where the namespace cannot take them.
	SearchAttributes bool `yaml:"search_attributes"`
}

// TLS configures the client's TLS to Temporal (temporal.tls.*).
type TLS struct {
	Enabled    bool   `yaml:"enabled"`
	CertFile   string `yaml:"cert_file"` // client certificate (mTLS), with KeyFile
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`     // CA bundle to verify the server; empty: system roots
	ServerName string `yaml:"server_name"` // override of the name verified in the server certificate
}

// Queues names the task queues (queues.*).
type Queues struct {
	Main     string `yaml:"main"`     // workflows and ingest
	Analysis string `yaml:"analysis"` // analyzer activities (CPU)
	Email    string `yaml:"email"`    // email activities (rate-limited)
}

// Store selects the store (store.*).
type Store struct {
	Driver string `yaml:"driver"` // "sqlite" or "postgres"
	Path   string `yaml:"path"`   // sqlite file
	DSN    string `yaml:"dsn"`    // postgres connection string; secret
	// DSNFile names a file holding the DSN (a mounted secret).
	DSNFile string `yaml:"dsn_file"`
}

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Ingest bounds telemetry ingestion (ingest.*).
type Ingest struct {
	Roots          []string      `yaml:"roots"`            // directories a batch path must be inside
	MaxRejectRatio float64       `yaml:"max_reject_ratio"` // above this share of bad lines a batch is quarantined
	MaxFutureSkew  time.Duration `yaml:"max_future_skew"`  // samples further in the future are rejected
	ChunkRows      int           `yaml:"chunk_rows"`       // samples stored per transaction
	MaxErrors      int           `yaml:"max_errors"`       // rejected lines kept in the batch record
}

// Analysis sizes the analysis (analysis.*).
type Analysis struct {
	Window      time.Duration `yaml:"window"`        // how much history each analysis reads
	ShardSize   int           `yaml:"shard_size"`    // boxes per analysis activity
	MaxInFlight int           `yaml:"max_in_flight"` // shard activities a fleet scan keeps running
	// ShardDeadline bounds one shard, retries and queueing included: a shard
	// that no worker picks up or finishes in time is reported failed.
	ShardDeadline time.Duration `yaml:"shard_deadline"`
}

// External is an external analyzer (one entry of external): an executable
// that reads a box's window as JSON on stdin and prints findings as JSON lines.
type External struct {
	Name           string        `yaml:"name"`
	Command        []string      `yaml:"command"` // argv; no shell
	Timeout        time.Duration `yaml:"timeout"`
	MaxOutputBytes int64         `yaml:"max_output_bytes"`
	// MaxFindings bounds the findings of one run; a run that prints more fails.
	MaxFindings int `yaml:"max_findings"`
	// Env names the worker's environment variables the analyzer gets
	// besides PATH, LANG and TZ; sanwatch's own (SANWATCH_*) are refused.
	Env []string `yaml:"env"`
	// Dir is the working directory; empty: a fresh temporary one per run.
	Dir string `yaml:"dir"`
}

// Defaults of an External entry.
const (
	DefaultExternalTimeout        = 10 * time.Second
	DefaultExternalMaxOutputBytes = 1 << 20
	DefaultExternalMaxFindings    = 100
)

// Worker configures the worker process (worker.*).
type Worker struct {
	Queues              []string      `yaml:"queues"`               // which of main, analysis, email to serve
	MetricsAddr         string        `yaml:"metrics_addr"`         // host:port of /metrics, /healthz, /debug/pprof; empty disables
	AnalysisConcurrency int           `yaml:"analysis_concurrency"` // concurrent analysis activities
	EmailConcurrency    int           `yaml:"email_concurrency"`    // concurrent email activities
	WorkflowConcurrency int           `yaml:"workflow_concurrency"` // concurrent workflow tasks; 0: SDK default
	ShutdownTimeout     time.Duration `yaml:"shutdown_timeout"`     // how long running activities get on stop
	PprofAddr           string        `yaml:"pprof_addr"`           // host:port of /debug/pprof, loopback only; empty: off
	// DeploymentName and BuildID opt the worker into Worker Versioning
	// (both set) as that version of the deployment; empty: unversioned.
	DeploymentName string `yaml:"deployment_name"`
	BuildID        string `yaml:"build_id"`
}

// Worker queue roles, the allowed values of worker.queues.
const (
	QueueMain     = "main"
	QueueAnalysis = "analysis"
	QueueEmail    = "email"
)

// SMTP is the mail relay (smtp.*).
type SMTP struct {
	Host               string        `yaml:"host"`
	Port               int           `yaml:"port"`
	TLS                string        `yaml:"tls"` // none, starttls or tls
	Username           string        `yaml:"username"`
	Password           string        `yaml:"password"`      // secret: only from SANWATCH_SMTP_PASSWORD or PasswordFile
	PasswordFile       string        `yaml:"password_file"` // file holding the password (trailing newline trimmed)
	From               string        `yaml:"from"`
	RatePerSecond      float64       `yaml:"rate_per_second"` // emails per second the relay accepts
	Timeout            time.Duration `yaml:"timeout"`         // per connection
	RetryFor           time.Duration `yaml:"retry_for"`       // how long a temporary failure is retried
	DefaultOwner       string        `yaml:"default_owner"`   // recipient for boxes without owners; empty: none
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
	CAFile             string        `yaml:"ca_file"`              // CA bundle (PEM) that signs the relay's certificate; empty: system roots
	ServerName         string        `yaml:"server_name"`          // name verified in the relay's certificate; empty: host
	AllowInsecureAuth  bool          `yaml:"allow_insecure_auth"`  // allow credentials over smtp.tls none
	Auth               string        `yaml:"auth"`                 // "" (plain/login when username is set) or xoauth2
	OAuth2TokenFile    string        `yaml:"oauth2_token_file"`    // xoauth2: file holding the access token
	OAuth2TokenCommand string        `yaml:"oauth2_token_command"` // xoauth2: command that prints the access token
}

// Codec configures payload encryption and the codec server (codec.*).
type Codec struct {
	KeysFile      string   `yaml:"keys_file"`       // file of "id:base64-key" lines; the first encrypts
	Keys          string   `yaml:"keys"`            // secret: the same, comma-separated (SANWATCH_CODEC_KEYS)
	ServerAddr    string   `yaml:"server_addr"`     // host:port of `starter codec-server`
	AuthTokenFile string   `yaml:"auth_token_file"` // file holding the codec server's bearer token
	CORSOrigins   []string `yaml:"cors_origins"`    // origins allowed to call the codec server (the Temporal UI)
	// RequireEncryption refuses clear-text payloads (signals, updates,
	// results) once no history from before encryption is read any more.
	RequireEncryption bool `yaml:"require_encryption"`
}

// SMTP TLS modes.
const (
	SMTPTLSNone     = "none"
	SMTPTLSStartTLS = "starttls"
	SMTPTLSImplicit = "tls"
)

// SMTP authentication mechanisms, the allowed values of smtp.auth besides
// "" (PLAIN or LOGIN with smtp.username and the password).
const (
	SMTPAuthXOAUTH2 = "xoauth2"
)

// Remediation times the follow-up of a finding (remediation.*).
type Remediation struct {
	Enabled       bool          `yaml:"enabled"`        // start a Remediate workflow per finding
	MinSeverity   string        `yaml:"min_severity"`   // least severe finding that is emailed: info, warning or critical
	Reminder      time.Duration `yaml:"reminder"`       // remind the owner when not acknowledged
	EscalateAfter time.Duration `yaml:"escalate_after"` // escalate when still not acknowledged
	ResolveAfter  time.Duration `yaml:"resolve_after"`  // clear for this long: resolved
	VerifyEvery   time.Duration `yaml:"verify_every"`   // re-check the problem on fresh data
	// NotifyFailingAfter: `starter check` is CRITICAL when a finding has had
	// no email for this long because sending keeps failing.
	NotifyFailingAfter time.Duration `yaml:"notify_failing_after"`
}

// Retention bounds what the store keeps (retention.*): a Retention workflow,
// run by the sanwatch-retention schedule (`starter retention`), deletes what
// is older.
type Retention struct {
	// Samples is how long samples are kept; never less than the longest
	// history any rule reads (analysis.window, rules.*.history_days).
	Samples time.Duration `yaml:"samples"`
	Every   time.Duration `yaml:"every"` // how often the schedule runs retention
	// Batches is how long batch objects are kept in the batch store
	// (batches.url) after they were written.
	Batches time.Duration `yaml:"batches"`
	// Quarantine is how long quarantined batches are kept (in the batch
	// store and in the drop directories' quarantine/ folders).
	Quarantine time.Duration `yaml:"quarantine"`
	// Schedule: the worker creates (or updates) the sanwatch-retention
	// schedule when it starts; false leaves that to `starter retention`.
	Schedule bool `yaml:"schedule"`
}

// Batches says where batch objects are kept (batches.*).
type Batches struct {
	// URL of the batch store: file:///dir (the default, <data_dir>/batches)
	// or s3://bucket?endpoint=...&region=...&use_path_style=true for an
	// S3-compatible store shared by several hosts. Credentials come from the
	// AWS environment or shared credentials file, never from the URL.
	URL string `yaml:"url"`
}

// Receiver configures `starter receive`, the HTTPS endpoint boxes post
// their telemetry to, and the drop directories it watches (receiver.*).
type Receiver struct {
	Addr string `yaml:"addr"` // host:port to listen on
	// CertFile and KeyFile are the server certificate; without them the
	// receiver speaks plain HTTP, on a loopback address only.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, verifies client certificates (mTLS): a box
	// presenting a valid certificate is the box named by its common name.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses connections without a valid client
	// certificate (bearer tokens alone are then not enough).
	RequireClientCert bool  `yaml:"require_client_cert"`
	MaxBody           int64 `yaml:"max_body"`     // bytes of one posted body, as sent
	MaxInflated       int64 `yaml:"max_inflated"` // bytes of one body once gunzipped
	// BoxRate and BoxBurst bound posts per box: BoxRate a second on
	// average, BoxBurst at once.
	BoxRate           float64       `yaml:"box_rate"`
	BoxBurst          int           `yaml:"box_burst"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // slow headers are cut off after this
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // a whole request body must arrive within this
	// StartTimeout bounds starting the ingest workflow before answering;
	// past it the batch stays in the outbox and is started later.
	StartTimeout time.Duration `yaml:"start_timeout"`
	SweepEvery   time.Duration `yaml:"sweep_every"` // how often the outbox is drained
	// DropDirs are directories watched for batch files (SFTP or NFS
	// deliveries); each gets done/ and quarantine/ folders.
	DropDirs []string `yaml:"drop_dirs"`
	// DropQuiet: a dropped file is ingested once it has not changed for
	// this long (or at once when renamed into place).
	DropQuiet time.Duration `yaml:"drop_quiet"`
}

// LongestHistory returns the longest history any analysis reads:
// analysis.window, or a rule's history_days (in rules or any box's
// overrides) when that is longer. Retention must keep at least this much.
func (c *Config) LongestHistory() time.Duration {
	longest := c.Analysis.Window
	consider := func(th analysis.Thresholds) {
		for _, keys := range th {
			if d := time.Duration(keys["history_days"] * float64(24*time.Hour)); d > longest {
				longest = d
			}
		}
	}
	consider(c.Rules)
	for _, over := range c.Overrides {
		consider(over)
	}
	return longest
}

// Log configures slog (log.*).
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// ThresholdsFor returns the effective thresholds of box: Rules with the
// box's overrides laid on top. The box id is matched case-insensitively.
func (c *Config) ThresholdsFor(box string) analysis.Thresholds {
	out := make(analysis.Thresholds, len(c.Rules))
	for rule, keys := range c.Rules {
		m := make(map[string]float64, len(keys))
		for k, v := range keys {
			m[k] = v
		}
		out[rule] = m
	}
	for rule, keys := range c.Overrides[strings.ToLower(box)] {
		if out[rule] == nil {
			out[rule] = map[string]float64{}
		}
		for k, v := range keys {
			out[rule][k] = v
		}
	}
	return out
}

// Samples selects where samples are kept (samples.*): the SQL store, or a
// Prometheus-compatible time-series engine.
type Samples struct {
	Backend  string `yaml:"backend"`  // "sql" or "prometheus"
	URL      string `yaml:"url"`      // the engine's base URL
	API      string `yaml:"api"`      // "victoriametrics" (import/export) or "prometheus" (query_range, read-only)
	Username string `yaml:"username"` // basic auth user, with Password
	// Password is secret: only from SANWATCH_SAMPLES_PASSWORD or PasswordFile.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// BearerToken is secret: only from SANWATCH_SAMPLES_BEARER_TOKEN or BearerTokenFile.
	BearerToken     string        `yaml:"bearer_token"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	TLS             SamplesTLS    `yaml:"tls"`
	MaxPoints       int           `yaml:"max_points"` // bound on the samples one read returns
	Timeout         time.Duration `yaml:"timeout"`    // of one request to the engine
	// FlushWrites makes each batch searchable once it is stored (the
	// worker's StoreBatch calls VictoriaMetrics /internal/force_flush once,
	// at the end), so analysis right after ingest sees all of it.
	FlushWrites bool `yaml:"flush_writes"`
	// MappingFiles read existing exporter metrics as the catalogue
	// (config/mappings/*.yaml); empty: sanwatch's own series.
	MappingFiles []string `yaml:"mapping_files"`
}

// SamplesTLS is the TLS to the engine (samples.tls.*).
type SamplesTLS struct {
	CAFile   string `yaml:"ca_file"`   // CA bundle to verify the engine; empty: system roots
	CertFile string `yaml:"cert_file"` // client certificate (mTLS), with KeyFile
	KeyFile  string `yaml:"key_file"`
}

// Samples backends.
const (
	SamplesSQL        = "sql"
	SamplesPrometheus = "prometheus"
)

// YAML returns the effective configuration as YAML, loadable again, with
// every non-empty secret (temporal.api_key, store.dsn, smtp.password,
// codec.keys) replaced by "<redacted>".
func (c *Config) YAML() string {
	r := *c
	r.Temporal.APIKey = redact(c.Temporal.APIKey)
	r.Codec.Keys = redact(c.Codec.Keys)
	r.Store.DSN = redact(c.Store.DSN)
	r.SMTP.Password = redact(c.SMTP.Password)
	r.Samples.Password = redact(c.Samples.Password)
	r.Samples.BearerToken = redact(c.Samples.BearerToken)
	out, err := yaml.Marshal(&r)
	if err != nil { // plain structs, maps and slices: cannot happen
		return "# marshal config: " + err.Error() + "\n"
	}
	return string(out)
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return Redacted
}
