package config

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/analysis"
)

// key is one scalar or list configuration key and its default. The type of
// the default is the type of the key: string, bool, int, float64,
// time.Duration or []string.
type key struct {
	name string
	def  any
}

// keys lists every fixed key, in the order of the example file. rules.*,
// overrides.* and external are described by the analysis thresholds and
// by External.
var keys = []key{
	{"temporal.address", "127.0.0.1:7233"},
	{"temporal.namespace", "default"},
	{"temporal.api_key", ""},
	{"temporal.api_key_file", ""},
	{"temporal.tls.enabled", false},
	{"temporal.tls.cert_file", ""},
	{"temporal.tls.key_file", ""},
	{"temporal.tls.ca_file", ""},
	{"temporal.tls.server_name", ""},
	{"temporal.search_attributes", true},
	{"queues.main", "sanwatch"},
	{"queues.analysis", "sanwatch-analysis"},
	{"queues.email", "sanwatch-email"},
	{"store.driver", DriverSQLite},
	{"store.path", "data/sanwatch.db"},
	{"store.dsn", ""},
	{"store.dsn_file", ""},
	{"data_dir", "data"},
	{"inventory", "fleet.yaml"},
	{"advisories", "config/advisories.yaml"},
	{"ingest.roots", []string{}}, // none: set explicitly where batches are ingested
	{"ingest.max_reject_ratio", 0.5},
	{"ingest.max_future_skew", time.Hour},
	{"ingest.chunk_rows", 5000},
	{"ingest.max_errors", 20},
	{"analysis.window", 48 * time.Hour},
	{"analysis.shard_size", 100},
	{"analysis.max_in_flight", 4},
	{"analysis.shard_deadline", 30 * time.Minute},
	{"worker.queues", []string{QueueMain, QueueAnalysis, QueueEmail}},
	{"worker.metrics_addr", "127.0.0.1:9090"},
	{"worker.analysis_concurrency", 2},
	{"worker.email_concurrency", 4},
	{"worker.workflow_concurrency", 0},
	{"worker.shutdown_timeout", 30 * time.Second},
	{"worker.pprof_addr", ""},
	{"worker.deployment_name", ""},
	{"worker.build_id", ""},
	{"smtp.host", "127.0.0.1"},
	{"smtp.port", 1025},
	{"smtp.tls", SMTPTLSNone},
	{"smtp.username", ""},
	{"smtp.password", ""},
	{"smtp.password_file", ""},
	{"smtp.from", "sanwatch@localhost"},
	{"smtp.rate_per_second", 5.0},
	{"smtp.timeout", 30 * time.Second},
	{"smtp.retry_for", time.Hour},
	{"smtp.default_owner", ""},
	{"smtp.insecure_skip_verify", false},
	{"smtp.ca_file", ""},
	{"smtp.server_name", ""},
	{"smtp.allow_insecure_auth", false},
	{"smtp.auth", ""},
	{"smtp.oauth2_token_file", ""},
	{"smtp.oauth2_token_command", ""},
	{"remediation.enabled", true},
	{"remediation.min_severity", "warning"},
	{"remediation.reminder", 24 * time.Hour},
	{"remediation.escalate_after", 48 * time.Hour},
	{"remediation.resolve_after", 6 * time.Hour},
	{"remediation.verify_every", time.Hour},
	{"remediation.notify_failing_after", time.Hour},
	{"retention.samples", 30 * 24 * time.Hour},
	{"retention.every", 24 * time.Hour},
	{"retention.batches", 30 * 24 * time.Hour},
	{"retention.quarantine", 30 * 24 * time.Hour},
	{"retention.schedule", true},
	{"batches.url", ""}, // "": <data_dir>/batches
	{"samples.backend", SamplesSQL},
	{"samples.url", ""},
	{"samples.api", "victoriametrics"},
	{"samples.username", ""},
	{"samples.password", ""},
	{"samples.password_file", ""},
	{"samples.bearer_token", ""},
	{"samples.bearer_token_file", ""},
	{"samples.tls.ca_file", ""},
	{"samples.tls.cert_file", ""},
	{"samples.tls.key_file", ""},
	{"samples.max_points", 1_000_000},
	{"samples.timeout", 30 * time.Second},
	{"samples.flush_writes", true},
	{"samples.mapping_files", []string{}},
	{"receiver.addr", "127.0.0.1:8088"},
	{"receiver.cert_file", ""},
	{"receiver.key_file", ""},
	{"receiver.client_ca_file", ""},
	{"receiver.require_client_cert", false},
	{"receiver.max_body", 64 << 20},
	{"receiver.max_inflated", 1 << 30},
	{"receiver.box_rate", 1.0},
	{"receiver.box_burst", 10},
	{"receiver.read_header_timeout", 10 * time.Second},
	{"receiver.read_timeout", 2 * time.Minute},
	{"receiver.start_timeout", 5 * time.Second},
	{"receiver.sweep_every", 10 * time.Second},
	{"receiver.drop_dirs", []string{}},
	{"receiver.drop_quiet", 10 * time.Second},
	{"codec.keys_file", ""},
	{"codec.keys", ""},
	{"codec.server_addr", "127.0.0.1:8081"},
	{"codec.auth_token_file", ""},
	{"codec.cors_origins", []string{"http://127.0.0.1:8233", "http://localhost:8233"}},
	{"codec.require_encryption", false},
	{"log.level", "info"},
	{"log.format", "text"},
}

// Secret keys: never printed, never in an error message, never on argv.
const (
	keyAPIKey              = "temporal.api_key"
	keyAPIKeyFile          = "temporal.api_key_file"
	keyDSN                 = "store.dsn"
	keyDSNFile             = "store.dsn_file"
	keyPassword            = "smtp.password"
	keyPasswordFile        = "smtp.password_file"
	keyCodecKeys           = "codec.keys"
	keyCodecKeysFile       = "codec.keys_file"
	keySamplesPassword     = "samples.password"
	keySamplesPasswordFile = "samples.password_file"
	keySamplesBearer       = "samples.bearer_token"
	keySamplesBearerFile   = "samples.bearer_token_file"
)

// secret says where a secret key may be set. Its environment variable always
// works; --set never does (argv is readable by every user of the machine,
// lands in shell history and in ps output).
type secret struct {
	key     string
	fileKey string // the key naming a file that holds the secret instead
	inFile  bool   // the secret may also be written in the config file
	// readFile: Load reads fileKey into the secret. False where the file has
	// a format of its own, read by its user (codec.keys_file).
	readFile bool
}

// secrets lists every secret key.
var secrets = []secret{
	{key: keyAPIKey, fileKey: keyAPIKeyFile, inFile: true, readFile: true},
	{key: keyDSN, fileKey: keyDSNFile, inFile: true, readFile: true},
	{key: keyPassword, fileKey: keyPasswordFile, readFile: true},
	{key: keyCodecKeys, fileKey: keyCodecKeysFile},
	{key: keySamplesPassword, fileKey: keySamplesPasswordFile, readFile: true},
	{key: keySamplesBearer, fileKey: keySamplesBearerFile, readFile: true},
}

var secretKeys = func() map[string]bool {
	m := make(map[string]bool, len(secrets))
	for _, s := range secrets {
		m[s.key] = true
	}
	return m
}()

// lookupSecret returns the secret entry of key, or false.
func lookupSecret(key string) (secret, bool) {
	for _, s := range secrets {
		if s.key == key {
			return s, true
		}
	}
	return secret{}, false
}

// sources says where s may be set: "set it with SANWATCH_STORE_DSN,
// store.dsn_file or the config file".
func (s secret) sources() string {
	if s.inFile {
		return "set it with " + envName(s.key) + ", " + s.fileKey + " or the config file"
	}
	return "set it with " + envName(s.key) + " or " + s.fileKey
}

// Special sections, not in keys.
const (
	sectionRules     = "rules"
	sectionOverrides = "overrides"
	sectionExternal  = "external"
)

// externalFields are the keys of one external entry.
var externalFields = []string{"name", "command", "timeout", "max_output_bytes", "max_findings", "env", "dir"}

// ruleKeys returns every rules.<rule>.<key> with its default, sorted.
func ruleKeys() []key {
	var out []key
	for rule, ks := range analysis.DefaultThresholds() {
		for k, v := range ks {
			out = append(out, key{sectionRules + "." + rule + "." + k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// allKeys returns the fixed keys followed by the rule keys.
func allKeys() []key { return append(slices.Clone(keys), ruleKeys()...) }

// lookupKey returns the default of a known scalar or list key (including
// rules.<rule>.<key>), or false.
func lookupKey(name string) (any, bool) {
	for _, k := range keys {
		if k.name == name {
			return k.def, true
		}
	}
	if rule, k, ok := strings.Cut(strings.TrimPrefix(name, sectionRules+"."), "."); ok && strings.HasPrefix(name, sectionRules+".") {
		if v, ok := analysis.DefaultThresholds()[rule][k]; ok {
			return v, true
		}
	}
	return nil, false
}

// isSection reports whether name is a mapping of known keys ("temporal",
// "temporal.tls", "rules", "rules.capacity_forecast", ...).
func isSection(name string) bool {
	if name == sectionRules {
		return true
	}
	if rule, ok := strings.CutPrefix(name, sectionRules+"."); ok {
		_, known := analysis.DefaultThresholds()[rule]
		return known
	}
	for _, k := range keys {
		if strings.HasPrefix(k.name, name+".") {
			return true
		}
	}
	return false
}

// envName is the environment variable of a key: SANWATCH_ and the key in
// upper case with dots as underscores.
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// EnvPrefix starts every environment variable sanwatch reads.
const EnvPrefix = "SANWATCH"

// Keys returns the name of every fixed configuration key (e.g.
// "temporal.address"), in the order of the example file. rules.*,
// overrides.* and external are not listed.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// EnvVar returns the environment variable that sets key, e.g.
// SANWATCH_TEMPORAL_ADDRESS for temporal.address.
func EnvVar(key string) string { return envName(key) }
