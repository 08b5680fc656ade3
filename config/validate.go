package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
)

// validate checks every value of c; the errors come in key order, joined.
func validate(c *Config) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// temporal
	add(hostPort("temporal.address", c.Temporal.Address, false))
	add(nonEmpty("temporal.namespace", c.Temporal.Namespace))
	tls := c.Temporal.TLS
	if tls.CertFile != "" && tls.KeyFile == "" {
		add(invalid("temporal.tls.key_file", tls.KeyFile, "must be set when temporal.tls.cert_file is set"))
	}
	if tls.KeyFile != "" && tls.CertFile == "" {
		add(invalid("temporal.tls.cert_file", tls.CertFile, "must be set when temporal.tls.key_file is set"))
	}
	add(existingFile("temporal.tls.cert_file", tls.CertFile))
	add(existingFile("temporal.tls.key_file", tls.KeyFile))
	add(existingFile("temporal.tls.ca_file", tls.CAFile))

	// queues
	queues := []struct{ key, val string }{
		{"queues.main", c.Queues.Main}, {"queues.analysis", c.Queues.Analysis}, {"queues.email", c.Queues.Email},
	}
	for i, q := range queues {
		if q.val == "" {
			add(invalid(q.key, q.val, "must be non-empty"))
			continue
		}
		for _, p := range queues[:i] {
			if p.val == q.val {
				add(invalid(q.key, q.val, "must be distinct from "+p.key))
				break
			}
		}
	}

	// store
	switch c.Store.Driver {
	case DriverSQLite:
		add(nonEmpty("store.path", c.Store.Path))
	case DriverPostgres:
		if c.Store.DSN == "" {
			add(invalid(keyDSN, "", "must be set when store.driver is postgres"))
		}
	default:
		add(invalid("store.driver", c.Store.Driver, "must be sqlite or postgres"))
	}
	add(nonEmpty("data_dir", c.DataDir))
	validateSamples(c.Samples, add)

	// ingest
	// Empty roots are valid here (a starter that only reads findings, an
	// analysis worker); a worker serving the main queue refuses to start
	// without them (app.NewWorkers).
	for _, r := range c.Ingest.Roots {
		if strings.TrimSpace(r) == "" {
			add(invalid("ingest.roots", r, "must not hold an empty directory"))
		}
	}
	if r := c.Ingest.MaxRejectRatio; !(r > 0 && r <= 1) {
		add(invalid("ingest.max_reject_ratio", r, "must be >0 and <=1"))
	}
	add(notNegative("ingest.max_future_skew", c.Ingest.MaxFutureSkew))
	add(intRange("ingest.chunk_rows", c.Ingest.ChunkRows, 1, -1))
	add(intRange("ingest.max_errors", c.Ingest.MaxErrors, 0, -1))

	// analysis
	add(positive("analysis.window", c.Analysis.Window))
	add(intRange("analysis.shard_size", c.Analysis.ShardSize, 1, 10000))
	add(intRange("analysis.max_in_flight", c.Analysis.MaxInFlight, 1, 1000))
	add(positive("analysis.shard_deadline", c.Analysis.ShardDeadline))

	// rules and overrides
	add(checkThresholds(sectionRules, c.Rules, nil))
	for _, box := range sortedKeys(c.Overrides) {
		add(checkThresholds(sectionOverrides+"."+box, c.Overrides[box], c.Rules))
	}

	// external
	seen := map[string]int{}
	for i, x := range c.External {
		key := func(f string) string { return fmt.Sprintf("%s[%d].%s", sectionExternal, i, f) }
		switch j, dup := seen[x.Name]; {
		case x.Name == "":
			add(invalid(key("name"), x.Name, "must be non-empty"))
		case !analysis.ValidAnalyzerName(x.Name):
			add(invalid(key("name"), x.Name, fmt.Sprintf("must be up to %d of A-Z a-z 0-9 . _ -", analysis.MaxAnalyzerNameLen)))
		case dup:
			add(invalid(key("name"), x.Name, fmt.Sprintf("must be unique (also %s[%d].name)", sectionExternal, j)))
		default:
			seen[x.Name] = i
		}
		if len(x.Command) == 0 || x.Command[0] == "" {
			add(invalid(key("command"), strings.Join(x.Command, " "), "must be a non-empty list: the program, then its arguments"))
		}
		add(positive(key("timeout"), x.Timeout))
		if x.MaxOutputBytes <= 0 {
			add(invalid(key("max_output_bytes"), x.MaxOutputBytes, "must be >0"))
		}
		add(intRange(key("max_findings"), x.MaxFindings, 1, -1))
		for _, name := range x.Env {
			add(checkEnvName(key("env"), name))
		}
	}

	// worker
	if len(c.Worker.Queues) == 0 {
		add(invalid("worker.queues", "", "must list at least one of main, analysis, email"))
	}
	for _, q := range c.Worker.Queues {
		if q != QueueMain && q != QueueAnalysis && q != QueueEmail {
			add(invalid("worker.queues", q, "must be main, analysis or email"))
		}
	}
	if c.Worker.MetricsAddr != "" {
		add(hostPort("worker.metrics_addr", c.Worker.MetricsAddr, true))
	}
	if c.Worker.PprofAddr != "" {
		switch err := loopbackHostPort("worker.pprof_addr", c.Worker.PprofAddr); {
		case err != nil:
			add(err)
		case c.Worker.PprofAddr == c.Worker.MetricsAddr:
			add(invalid("worker.pprof_addr", c.Worker.PprofAddr, "must differ from worker.metrics_addr: pprof has a listener of its own"))
		}
	}
	add(intRange("worker.analysis_concurrency", c.Worker.AnalysisConcurrency, 1, -1))
	add(intRange("worker.email_concurrency", c.Worker.EmailConcurrency, 1, -1))
	add(intRange("worker.workflow_concurrency", c.Worker.WorkflowConcurrency, 0, -1))
	add(notNegative("worker.shutdown_timeout", c.Worker.ShutdownTimeout))
	if (c.Worker.DeploymentName == "") != (c.Worker.BuildID == "") {
		add(invalid("worker.build_id", c.Worker.BuildID, "must be set together with worker.deployment_name (Worker Versioning), or both empty"))
	}

	// smtp
	add(nonEmpty("smtp.host", c.SMTP.Host))
	add(intRange("smtp.port", c.SMTP.Port, 1, 65535))
	switch c.SMTP.TLS {
	case SMTPTLSNone, SMTPTLSStartTLS, SMTPTLSImplicit:
	default:
		add(invalid("smtp.tls", c.SMTP.TLS, "must be none, starttls or tls"))
	}
	add(address("smtp.from", c.SMTP.From))
	if r := c.SMTP.RatePerSecond; !(r > 0) {
		add(invalid("smtp.rate_per_second", r, "must be >0"))
	}
	add(positive("smtp.timeout", c.SMTP.Timeout))
	add(positive("smtp.retry_for", c.SMTP.RetryFor))
	if c.SMTP.DefaultOwner != "" {
		add(address("smtp.default_owner", c.SMTP.DefaultOwner))
	}
	add(validateSMTPSecurity(&c.SMTP))

	// retention
	if need := c.LongestHistory(); c.Retention.Samples < need {
		add(invalid("retention.samples", c.Retention.Samples,
			fmt.Sprintf("must be at least %s, the longest history a rule reads (analysis.window, rules.*.history_days, overrides)", need)))
	}
	add(positive("retention.every", c.Retention.Every))
	add(positive("retention.batches", c.Retention.Batches))
	add(positive("retention.quarantine", c.Retention.Quarantine))

	// receiver
	add(hostPort("receiver.addr", c.Receiver.Addr, true))
	if (c.Receiver.CertFile == "") != (c.Receiver.KeyFile == "") {
		add(invalid("receiver.key_file", c.Receiver.KeyFile, "must be set together with receiver.cert_file, or both empty"))
	}
	if c.Receiver.CertFile == "" && (c.Receiver.ClientCAFile != "" || c.Receiver.RequireClientCert) {
		add(invalid("receiver.client_ca_file", c.Receiver.ClientCAFile, "client certificates need TLS: set receiver.cert_file and receiver.key_file"))
	}
	if c.Receiver.RequireClientCert && c.Receiver.ClientCAFile == "" {
		add(invalid("receiver.require_client_cert", true, "needs receiver.client_ca_file to verify the certificates"))
	}
	if c.Receiver.MaxBody < 1 {
		add(invalid("receiver.max_body", c.Receiver.MaxBody, "must be >0"))
	}
	if c.Receiver.MaxInflated < c.Receiver.MaxBody {
		add(invalid("receiver.max_inflated", c.Receiver.MaxInflated, "must be at least receiver.max_body"))
	}
	if r := c.Receiver.BoxRate; !(r > 0) {
		add(invalid("receiver.box_rate", r, "must be >0"))
	}
	add(intRange("receiver.box_burst", c.Receiver.BoxBurst, 1, -1))
	add(positive("receiver.read_header_timeout", c.Receiver.ReadHeaderTimeout))
	add(positive("receiver.read_timeout", c.Receiver.ReadTimeout))
	add(positive("receiver.start_timeout", c.Receiver.StartTimeout))
	add(positive("receiver.sweep_every", c.Receiver.SweepEvery))
	add(positive("receiver.drop_quiet", c.Receiver.DropQuiet))

	// remediation
	switch c.Remediation.MinSeverity {
	case "info", "warning", "critical":
	default:
		add(invalid("remediation.min_severity", c.Remediation.MinSeverity, "must be info, warning or critical"))
	}
	add(positive("remediation.reminder", c.Remediation.Reminder))
	add(positive("remediation.escalate_after", c.Remediation.EscalateAfter))
	add(positive("remediation.resolve_after", c.Remediation.ResolveAfter))
	add(positive("remediation.verify_every", c.Remediation.VerifyEvery))
	add(positive("remediation.notify_failing_after", c.Remediation.NotifyFailingAfter))

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add(invalid("log.level", c.Log.Level, "must be debug, info, warn or error"))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add(invalid("log.format", c.Log.Format, "must be text or json"))
	}

	// codec
	add(validateCodec(c.Codec))
	return errors.Join(errs...)
}

func nonEmpty(key, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(key, v, "must be non-empty")
	}
	return nil
}

// intRange checks min <= v and, when max >= min, v <= max.
func intRange(key string, v, minV, maxV int) error {
	switch {
	case maxV >= minV && (v < minV || v > maxV):
		return invalid(key, v, fmt.Sprintf("must be %d-%d", minV, maxV))
	case v < minV && minV == 0:
		return invalid(key, v, "must be >=0")
	case v < minV:
		return invalid(key, v, fmt.Sprintf("must be >=%d", minV))
	}
	return nil
}

// checkEnvName checks a name of external[i].env: a variable name, and not
// one of sanwatch's own, which configure it and hold its secrets.
func checkEnvName(key, name string) error {
	for _, k := range sortedKeys(secretKeys) {
		if strings.EqualFold(name, envName(k)) {
			return invalid(key, name, fmt.Sprintf("must not be a secret of sanwatch's (%s): analyzers never get sanwatch's variables", k))
		}
	}
	if strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") {
		return invalid(key, name, "must not start with "+EnvPrefix+"_: analyzers never get sanwatch's variables")
	}
	if err := analysis.CheckEnvName(name); err != nil {
		return invalid(key, name, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
	}
	return nil
}

func positive(key string, d time.Duration) error {
	if d <= 0 {
		return invalid(key, d, "must be >0")
	}
	return nil
}

func notNegative(key string, d time.Duration) error {
	if d < 0 {
		return invalid(key, d, "must be >=0")
	}
	return nil
}

// hostPort checks host:port with a port of 1-65535 (0 too when listening);
// the host may be empty only when listening (all interfaces).
func hostPort(key, v string, listen bool) error {
	allowed := "must be host:port"
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return invalid(key, v, allowed)
	}
	n, err := strconv.Atoi(port)
	lowest := 1
	if listen {
		lowest = 0
	}
	if err != nil || n < lowest || n > 65535 || (host == "" && !listen) {
		return invalid(key, v, allowed)
	}
	return nil
}

// loopbackHostPort checks a listen address whose host is loopback:
// localhost, 127.0.0.0/8 or ::1. An empty host (all interfaces) is refused.
func loopbackHostPort(key, v string) error {
	const allowed = "must be a loopback host:port such as 127.0.0.1:6060 (localhost, 127.0.0.0/8 or ::1): pprof has no authentication"
	host, _, err := net.SplitHostPort(v)
	if err != nil || hostPort(key, v, true) != nil {
		return invalid(key, v, allowed)
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return invalid(key, v, allowed)
	}
	return nil
}

// validateSMTPSecurity checks TLS and authentication of the relay: the CA
// file, the server name, the xoauth2 token source, and that no credential
// crosses the network in clear text unless allow_insecure_auth says so.
func validateSMTPSecurity(s *SMTP) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := existingFile("smtp.ca_file", s.CAFile); err != nil {
		add(err)
	} else if s.CAFile != "" {
		add(pemCertificates("smtp.ca_file", s.CAFile))
	}
	if s.CAFile != "" && s.InsecureSkipVerify {
		add(invalid("smtp.insecure_skip_verify", s.InsecureSkipVerify, "must be false when smtp.ca_file is set (skipping verification ignores the CA)"))
	}
	if n := s.ServerName; n != "" && (strings.ContainsAny(n, " /:@") || strings.IndexFunc(n, isControl) >= 0) {
		add(invalid("smtp.server_name", n, "must be a host name or IP address"))
	}

	switch s.Auth {
	case "":
		for _, k := range []struct{ key, val string }{{"smtp.oauth2_token_file", s.OAuth2TokenFile}, {"smtp.oauth2_token_command", s.OAuth2TokenCommand}} {
			if k.val != "" {
				add(invalid(k.key, k.val, "must be empty unless smtp.auth is xoauth2"))
			}
		}
	case SMTPAuthXOAUTH2:
		if s.Username == "" {
			add(invalid("smtp.username", "", "must be set with smtp.auth xoauth2: the mailbox the token is for"))
		}
		switch {
		case s.OAuth2TokenFile == "" && s.OAuth2TokenCommand == "":
			add(invalid("smtp.oauth2_token_file", "", "must be set with smtp.auth xoauth2, or smtp.oauth2_token_command"))
		case s.OAuth2TokenFile != "" && s.OAuth2TokenCommand != "":
			add(invalid("smtp.oauth2_token_command", s.OAuth2TokenCommand, "must be empty when smtp.oauth2_token_file is set: one token source"))
		case s.OAuth2TokenCommand != "":
			if _, err := SplitCommand(s.OAuth2TokenCommand); err != nil {
				add(invalid("smtp.oauth2_token_command", s.OAuth2TokenCommand, "must be a program and its arguments ("+err.Error()+"); no shell runs it"))
			}
		}
	default:
		add(invalid("smtp.auth", s.Auth, "must be empty (PLAIN or LOGIN with smtp.username) or xoauth2"))
	}

	credentials := s.Username != "" || s.Auth == SMTPAuthXOAUTH2
	if credentials && s.TLS == SMTPTLSNone && !s.AllowInsecureAuth {
		add(invalid("smtp.tls", s.TLS, "sends the credentials of smtp.username in clear text: use starttls or tls, "+
			"or set smtp.allow_insecure_auth: true for a relay on loopback or a trusted network"))
	}
	return errors.Join(errs...)
}

// pemCertificates checks that path holds at least one PEM certificate.
func pemCertificates(key, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return invalid(key, path, "must be a readable file")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return invalid(key, path, "must hold PEM certificates (-----BEGIN CERTIFICATE-----)")
	}
	return nil
}

func isControl(r rune) bool { return unicode.IsControl(r) }

func existingFile(key, path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		return invalid(key, path, "must be an existing file")
	}
	return nil
}

func address(key, v string) error {
	a, err := mail.ParseAddress(v)
	if err != nil || !strings.Contains(a.Address, "@") {
		return invalid(key, v, "must be an email address such as sanwatch@example.com")
	}
	return nil
}

// checkThresholds checks each value with analysis.CheckThreshold, then the
// pairs of keys (critical_days <= warning_days ...) of the effective
// thresholds: t laid over base (the configured rules, for overrides).
func checkThresholds(prefix string, t, base analysis.Thresholds) error {
	var errs []error
	for _, rule := range finding.Rules {
		for _, k := range sortedKeys(t[rule]) {
			v := t[rule][k]
			if err := analysis.CheckThreshold(rule, k, v); err != nil {
				errs = append(errs, invalid(prefix+"."+rule+"."+k, v, thresholdAllowed(err)))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	eff := analysis.Thresholds{}
	for _, src := range []analysis.Thresholds{base, t} {
		for rule, ks := range src {
			if eff[rule] == nil {
				eff[rule] = map[string]float64{}
			}
			for k, v := range ks {
				eff[rule][k] = v
			}
		}
	}
	if err := eff.Validate(); err != nil {
		return fmt.Errorf("config: %s: %w", prefix, err)
	}
	return nil
}

// thresholdAllowed keeps what CheckThreshold says is allowed ("allowed 0
// to 3650 days"), dropping its restatement of the key and value, which the
// ValidationError already shows.
func thresholdAllowed(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// validateSamples checks samples.*: the engine's URL and API when the
// backend is prometheus, the bounds, auth and files.
func validateSamples(s Samples, add func(error)) {
	switch s.Backend {
	case SamplesSQL:
		return
	case SamplesPrometheus:
	default:
		add(invalid("samples.backend", s.Backend, "must be sql or prometheus"))
		return
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(invalid("samples.url", s.URL, "must be http(s)://host[:port][/path] when samples.backend is prometheus"))
	} else if u.User != nil {
		add(invalid("samples.url", "", "must not hold credentials: use samples.username and samples.password_file"))
	}
	if s.API != "victoriametrics" && s.API != "prometheus" {
		add(invalid("samples.api", s.API, "must be victoriametrics or prometheus"))
	}
	if s.MaxPoints < 1 {
		add(invalid("samples.max_points", s.MaxPoints, "must be >= 1"))
	}
	add(positive("samples.timeout", s.Timeout))
	if s.Username != "" && s.BearerToken != "" {
		add(invalid("samples.username", s.Username, "must be empty with samples.bearer_token: one kind of auth"))
	}
	if (s.Username == "") != (s.Password == "") {
		add(invalid("samples.username", s.Username, "needs samples.password (SANWATCH_SAMPLES_PASSWORD or samples.password_file), and the password a username"))
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		add(invalid("samples.tls.cert_file", s.TLS.CertFile, "goes with samples.tls.key_file"))
	}
	add(existingFile("samples.tls.ca_file", s.TLS.CAFile))
	add(existingFile("samples.tls.cert_file", s.TLS.CertFile))
	add(existingFile("samples.tls.key_file", s.TLS.KeyFile))
	for _, f := range s.MappingFiles {
		add(existingFile("samples.mapping_files", f))
	}
}
