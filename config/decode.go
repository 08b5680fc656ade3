package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/sanwatch/sanwatch/internal/analysis"
)

// decoder reads typed values out of viper, collecting type errors. Values
// come as Go values from the defaults and the file, and as strings from
// the environment and flags.
type decoder struct {
	v    *viper.Viper
	errs []error
}

func (d *decoder) fail(err error) { d.errs = append(d.errs, err) }

func (d *decoder) decode(raw map[string]any, setOverrides map[string]map[string]map[string]string) *Config {
	c := &Config{
		Temporal: Temporal{
			Address:    d.str("temporal.address"),
			Namespace:  d.str("temporal.namespace"),
			APIKey:     d.str(keyAPIKey),
			APIKeyFile: d.str(keyAPIKeyFile),
			TLS: TLS{
				Enabled:    d.boolean("temporal.tls.enabled"),
				CertFile:   d.str("temporal.tls.cert_file"),
				KeyFile:    d.str("temporal.tls.key_file"),
				CAFile:     d.str("temporal.tls.ca_file"),
				ServerName: d.str("temporal.tls.server_name"),
			},
			SearchAttributes: d.boolean("temporal.search_attributes"),
		},
		Queues: Queues{
			Main:     d.str("queues.main"),
			Analysis: d.str("queues.analysis"),
			Email:    d.str("queues.email"),
		},
		Store: Store{
			Driver:  d.str("store.driver"),
			Path:    d.str("store.path"),
			DSN:     d.str(keyDSN),
			DSNFile: d.str(keyDSNFile),
		},
		DataDir:    d.str("data_dir"),
		Inventory:  d.str("inventory"),
		Advisories: d.str("advisories"),
		Ingest: Ingest{
			Roots:          d.strs("ingest.roots"),
			MaxRejectRatio: d.float("ingest.max_reject_ratio"),
			MaxFutureSkew:  d.duration("ingest.max_future_skew"),
			ChunkRows:      d.integer("ingest.chunk_rows"),
			MaxErrors:      d.integer("ingest.max_errors"),
		},
		Analysis: Analysis{
			Window:        d.duration("analysis.window"),
			ShardSize:     d.integer("analysis.shard_size"),
			MaxInFlight:   d.integer("analysis.max_in_flight"),
			ShardDeadline: d.duration("analysis.shard_deadline"),
		},
		Rules: analysis.Thresholds{},
		Worker: Worker{
			Queues:              d.strs("worker.queues"),
			MetricsAddr:         d.str("worker.metrics_addr"),
			AnalysisConcurrency: d.integer("worker.analysis_concurrency"),
			EmailConcurrency:    d.integer("worker.email_concurrency"),
			WorkflowConcurrency: d.integer("worker.workflow_concurrency"),
			ShutdownTimeout:     d.duration("worker.shutdown_timeout"),
			PprofAddr:           d.str("worker.pprof_addr"),
			DeploymentName:      d.str("worker.deployment_name"),
			BuildID:             d.str("worker.build_id"),
		},
		SMTP: SMTP{
			Host:               d.str("smtp.host"),
			Port:               d.integer("smtp.port"),
			TLS:                d.str("smtp.tls"),
			Username:           d.str("smtp.username"),
			Password:           d.str(keyPassword),
			PasswordFile:       d.str(keyPasswordFile),
			From:               d.str("smtp.from"),
			RatePerSecond:      d.float("smtp.rate_per_second"),
			Timeout:            d.duration("smtp.timeout"),
			RetryFor:           d.duration("smtp.retry_for"),
			DefaultOwner:       d.str("smtp.default_owner"),
			InsecureSkipVerify: d.boolean("smtp.insecure_skip_verify"),
			CAFile:             d.str("smtp.ca_file"),
			ServerName:         d.str("smtp.server_name"),
			AllowInsecureAuth:  d.boolean("smtp.allow_insecure_auth"),
			Auth:               strings.ToLower(d.str("smtp.auth")),
			OAuth2TokenFile:    d.str("smtp.oauth2_token_file"),
			OAuth2TokenCommand: d.str("smtp.oauth2_token_command"),
		},
		Codec: Codec{
			KeysFile:          d.str("codec.keys_file"),
			Keys:              d.str(keyCodecKeys),
			ServerAddr:        d.str("codec.server_addr"),
			AuthTokenFile:     d.str("codec.auth_token_file"),
			CORSOrigins:       d.strs("codec.cors_origins"),
			RequireEncryption: d.boolean("codec.require_encryption"),
		},
		Remediation: Remediation{
			Enabled:            d.boolean("remediation.enabled"),
			MinSeverity:        strings.ToLower(d.str("remediation.min_severity")),
			Reminder:           d.duration("remediation.reminder"),
			EscalateAfter:      d.duration("remediation.escalate_after"),
			ResolveAfter:       d.duration("remediation.resolve_after"),
			VerifyEvery:        d.duration("remediation.verify_every"),
			NotifyFailingAfter: d.duration("remediation.notify_failing_after"),
		},
		Retention: Retention{
			Samples:    d.duration("retention.samples"),
			Every:      d.duration("retention.every"),
			Batches:    d.duration("retention.batches"),
			Quarantine: d.duration("retention.quarantine"),
			Schedule:   d.boolean("retention.schedule"),
		},
		Batches: Batches{URL: d.str("batches.url")},
		Samples: Samples{
			Backend:         strings.ToLower(d.str("samples.backend")),
			URL:             d.str("samples.url"),
			API:             strings.ToLower(d.str("samples.api")),
			Username:        d.str("samples.username"),
			Password:        d.str(keySamplesPassword),
			PasswordFile:    d.str(keySamplesPasswordFile),
			BearerToken:     d.str(keySamplesBearer),
			BearerTokenFile: d.str(keySamplesBearerFile),
			TLS: SamplesTLS{
				CAFile:   d.str("samples.tls.ca_file"),
				CertFile: d.str("samples.tls.cert_file"),
				KeyFile:  d.str("samples.tls.key_file"),
			},
			MaxPoints:    d.integer("samples.max_points"),
			Timeout:      d.duration("samples.timeout"),
			FlushWrites:  d.boolean("samples.flush_writes"),
			MappingFiles: d.strs("samples.mapping_files"),
		},
		Receiver: Receiver{
			Addr:              d.str("receiver.addr"),
			CertFile:          d.str("receiver.cert_file"),
			KeyFile:           d.str("receiver.key_file"),
			ClientCAFile:      d.str("receiver.client_ca_file"),
			RequireClientCert: d.boolean("receiver.require_client_cert"),
			MaxBody:           int64(d.integer("receiver.max_body")),
			MaxInflated:       int64(d.integer("receiver.max_inflated")),
			BoxRate:           d.float("receiver.box_rate"),
			BoxBurst:          d.integer("receiver.box_burst"),
			ReadHeaderTimeout: d.duration("receiver.read_header_timeout"),
			ReadTimeout:       d.duration("receiver.read_timeout"),
			StartTimeout:      d.duration("receiver.start_timeout"),
			SweepEvery:        d.duration("receiver.sweep_every"),
			DropDirs:          d.strs("receiver.drop_dirs"),
			DropQuiet:         d.duration("receiver.drop_quiet"),
		},
		Log: Log{
			Level:  strings.ToLower(d.str("log.level")),
			Format: strings.ToLower(d.str("log.format")),
		},
	}
	if c.Batches.URL == "" && c.DataDir != "" {
		c.Batches.URL = filepath.Join(c.DataDir, "batches")
	}
	for rule, ks := range analysis.DefaultThresholds() {
		c.Rules[rule] = make(map[string]float64, len(ks))
		for k := range ks {
			c.Rules[rule][k] = d.float(sectionRules + "." + rule + "." + k)
		}
	}
	c.Overrides = d.overrides(raw[sectionOverrides], setOverrides)
	c.External = d.external(raw[sectionExternal])
	return c
}

// readSecretFiles fills each secret that has a file key set (smtp.password_file,
// store.dsn_file, temporal.api_key_file) from that file, trailing newline
// trimmed. A secret may come from one place only: the file key, or the
// environment (or the config file, where allowed).
func (d *decoder) readSecretFiles(c *Config, lookup func(string) (string, bool)) {
	fields := map[string]struct{ file, value *string }{
		keyAPIKey:          {&c.Temporal.APIKeyFile, &c.Temporal.APIKey},
		keyDSN:             {&c.Store.DSNFile, &c.Store.DSN},
		keyPassword:        {&c.SMTP.PasswordFile, &c.SMTP.Password},
		keySamplesPassword: {&c.Samples.PasswordFile, &c.Samples.Password},
		keySamplesBearer:   {&c.Samples.BearerTokenFile, &c.Samples.BearerToken},
	}
	for _, s := range secrets {
		f, ok := fields[s.key]
		if !s.readFile || !ok || *f.file == "" {
			continue
		}
		if env, ok := lookup(envName(s.key)); ok && env != "" {
			d.fail(fmt.Errorf("config: %s: set either %s or %s, not both", s.key, envName(s.key), s.fileKey))
			continue
		}
		if *f.value != "" { // from the config file
			d.fail(fmt.Errorf("config: %s: set either %s in the config file or %s, not both", s.key, s.key, s.fileKey))
			continue
		}
		data, err := os.ReadFile(*f.file)
		if err != nil {
			reason := err.Error()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				reason = pe.Err.Error()
			}
			d.fail(invalid(s.fileKey, *f.file, "must be a readable file ("+reason+")"))
			continue
		}
		*f.value = strings.TrimRight(string(data), "\r\n")
	}
}

func (d *decoder) str(key string) string {
	switch t := d.v.Get(key).(type) {
	case nil:
		return ""
	case string:
		return t
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(t)
	default:
		d.fail(invalid(key, t, "must be a string"))
		return ""
	}
}

func (d *decoder) boolean(key string) bool {
	switch t := d.v.Get(key).(type) {
	case bool:
		return t
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(t))
		if err == nil {
			return b
		}
		d.fail(invalid(key, t, "must be true or false"))
	default:
		d.fail(invalid(key, t, "must be true or false"))
	}
	return false
}

func (d *decoder) integer(key string) int {
	switch t := d.v.Get(key).(type) {
	case int:
		return t
	case int64:
		return int(t)
	case uint64:
		if t <= math.MaxInt32 {
			return int(t)
		}
	case float64:
		if t == math.Trunc(t) && math.Abs(t) <= math.MaxInt32 {
			return int(t)
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err == nil {
			return n
		}
		d.fail(invalid(key, t, "must be an integer"))
		return 0
	}
	d.fail(invalid(key, d.v.Get(key), "must be an integer"))
	return 0
}

func (d *decoder) float(key string) float64 {
	switch t := d.v.Get(key).(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err == nil {
			return f
		}
		d.fail(invalid(key, t, "must be a number"))
		return 0
	}
	d.fail(invalid(key, d.v.Get(key), "must be a number"))
	return 0
}

const durationSyntax = "must be a duration such as 90s, 30m or 48h"

func (d *decoder) duration(key string) time.Duration {
	return d.durationValue(key, d.v.Get(key))
}

func (d *decoder) durationValue(key string, v any) time.Duration {
	switch t := v.(type) {
	case time.Duration:
		return t
	case int:
		if t == 0 {
			return 0
		}
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(t))
		if err == nil {
			return dur
		}
	}
	d.fail(invalid(key, v, durationSyntax))
	return 0
}

func (d *decoder) strs(key string) []string {
	return d.strsValue(key, d.v.Get(key), true)
}

// strsValue reads a list of strings; a string is split on commas when
// split is true (the environment and --set spell lists that way).
func (d *decoder) strsValue(key string, v any, split bool) []string {
	switch t := v.(type) {
	case nil:
		return nil
	case []string:
		return t
	case string:
		if !split {
			break
		}
		var out []string
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			switch e.(type) {
			case string, bool, int, int64, uint64, float64:
				out = append(out, fmt.Sprint(e))
			default:
				d.fail(invalid(key, v, "must be a list of strings"))
				return nil
			}
		}
		return out
	}
	d.fail(invalid(key, v, "must be a list of strings"))
	return nil
}

// overrides reads overrides.<box>.<rule>.<key> from the file (already
// checked for unknown keys) and from --set, box ids lower-cased.
func (d *decoder) overrides(raw any, set map[string]map[string]map[string]string) map[string]analysis.Thresholds {
	out := map[string]analysis.Thresholds{}
	put := func(box, rule, k string, val any) {
		key := sectionOverrides + "." + box + "." + rule + "." + k
		var f float64
		switch t := val.(type) {
		case float64:
			f = t
		case int:
			f = float64(t)
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(t), 64); err != nil {
				d.fail(invalid(key, t, "must be a number"))
				return
			}
		default:
			d.fail(invalid(key, val, "must be a number"))
			return
		}
		box = strings.ToLower(box)
		if out[box] == nil {
			out[box] = analysis.Thresholds{}
		}
		if out[box][rule] == nil {
			out[box][rule] = map[string]float64{}
		}
		out[box][rule][k] = f
	}
	boxes, _ := raw.(map[string]any)
	for _, box := range sortedKeys(boxes) {
		rules, _ := boxes[box].(map[string]any)
		for _, rule := range sortedKeys(rules) {
			ks, _ := rules[rule].(map[string]any)
			for _, k := range sortedKeys(ks) {
				put(box, rule, k, ks[k])
			}
		}
	}
	for _, box := range sortedKeys(set) {
		for _, rule := range sortedKeys(set[box]) {
			for _, k := range sortedKeys(set[box][rule]) {
				put(box, rule, k, set[box][rule][k])
			}
		}
	}
	return out
}

// external reads the external analyzers from the file, filling defaults.
func (d *decoder) external(raw any) []External {
	list, _ := raw.([]any)
	out := make([]External, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue // reported by checkExternal
		}
		key := func(f string) string { return fmt.Sprintf("%s[%d].%s", sectionExternal, i, f) }
		x := External{Timeout: DefaultExternalTimeout, MaxOutputBytes: DefaultExternalMaxOutputBytes, MaxFindings: DefaultExternalMaxFindings}
		switch n := m["name"].(type) {
		case nil:
		case string:
			x.Name = n
		default:
			x.Name = fmt.Sprint(n)
		}
		if cmd, ok := m["command"]; ok {
			x.Command = d.strsValue(key("command"), cmd, false)
		}
		if t, ok := m["timeout"]; ok {
			x.Timeout = d.durationValue(key("timeout"), t)
		}
		switch n := m["max_output_bytes"].(type) {
		case nil:
		case int:
			x.MaxOutputBytes = int64(n)
		default:
			d.fail(invalid(key("max_output_bytes"), n, "must be an integer"))
		}
		switch n := m["max_findings"].(type) {
		case nil:
		case int:
			x.MaxFindings = n
		default:
			d.fail(invalid(key("max_findings"), n, "must be an integer"))
		}
		if env, ok := m["env"]; ok {
			if x.Env = d.strsValue(key("env"), env, false); len(x.Env) == 0 {
				x.Env = nil
			}
		}
		switch dir := m["dir"].(type) {
		case nil:
		case string:
			x.Dir = dir
		default:
			d.fail(invalid(key("dir"), dir, "must be a directory"))
		}
		out = append(out, x)
	}
	return out
}
