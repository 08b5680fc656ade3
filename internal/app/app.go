// Package app assembles sanwatch from its configuration: the Temporal client,
// the store, the analysis engine and the activities. The worker and starter
// mains share it so both see the same wiring.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/email"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/metrics"
	"github.com/sanwatch/sanwatch/internal/pemfile"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/tsdb"
)

// Logger returns the slog logger the configuration asks for, writing to w.
func Logger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ClientOptions returns the client options of the configuration: address,
// namespace, credentials, TLS and, when codec keys are configured, the
// encrypting data and failure converters (WithCodec).
func ClientOptions(cfg *config.Config, logger *slog.Logger, m *metrics.Metrics) (client.Options, error) {
	opts := client.Options{
		HostPort:  cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		Logger:    tlog.NewStructuredLogger(logger),
	}
	if m != nil {
		opts.MetricsHandler = m.TemporalHandler()
	}
	if cfg.Temporal.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.Temporal.APIKey)
	}
	if cfg.Temporal.TLS.Enabled || cfg.Temporal.APIKey != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return client.Options{}, err
		}
		opts.ConnectionOptions.TLS = tc
	}
	pc, err := Codec(cfg)
	if err != nil {
		return client.Options{}, err
	}
	if pc != nil {
		opts = WithCodec(opts, pc)
		logger.Info("payload encryption on", "encrypt_key", pc.KeyIDs()[0], "keys", len(pc.KeyIDs()))
	}
	return opts, nil
}

// Dial connects to the Temporal frontend named by the configuration, with
// the options of ClientOptions.
func Dial(ctx context.Context, cfg *config.Config, logger *slog.Logger, m *metrics.Metrics) (client.Client, error) {
	opts, err := ClientOptions(cfg, logger, m)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s (namespace %s): %w", cfg.Temporal.Address, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

func tlsConfig(cfg *config.Config) (*tls.Config, error) {
	t := cfg.Temporal.TLS
	tc := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load temporal.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pool, err := pemfile.CertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// OpenStore opens the configured store: with samples.backend prometheus,
// the samples are in the time-series engine and the rest in the SQL store.
// With samples.flush_writes the engine flushes after each write.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	st, _, err := openStore(ctx, cfg, cfg.Samples.FlushWrites)
	return st, err
}

// openStore is OpenStore that also returns the time-series engine (nil
// with samples.backend sql); flushEachWrite says whether the engine
// flushes after each write.
func openStore(ctx context.Context, cfg *config.Config, flushEachWrite bool) (store.Store, *tsdb.Backend, error) {
	st, err := store.Open(ctx, store.Options{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN})
	if err != nil || cfg.Samples.Backend != config.SamplesPrometheus {
		return st, nil, err
	}
	b, err := samplesBackend(cfg, flushEachWrite)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return store.WithSamples(st, b), b, nil
}

// SamplesBackend opens the time-series engine samples.* configures, with
// its mapping when samples.mapping_files is set.
func SamplesBackend(cfg *config.Config) (*tsdb.Backend, error) {
	return samplesBackend(cfg, cfg.Samples.FlushWrites)
}

// The engine is what StoreBatch flushes once a batch.
var _ activities.SampleFlusher = (*tsdb.Backend)(nil)

func samplesBackend(cfg *config.Config, flushEachWrite bool) (*tsdb.Backend, error) {
	s := cfg.Samples
	o := tsdb.Options{
		URL: s.URL, API: s.API, Username: s.Username, Password: s.Password, BearerToken: s.BearerToken,
		CAFile: s.TLS.CAFile, CertFile: s.TLS.CertFile, KeyFile: s.TLS.KeyFile, MaxPoints: s.MaxPoints, Timeout: s.Timeout,
		FlushAfterWrite: flushEachWrite,
	}
	if len(s.MappingFiles) > 0 {
		m, err := tsdb.LoadMapping(s.MappingFiles...)
		if err != nil {
			return nil, err
		}
		o.Mapping = m
	}
	return tsdb.Open(o)
}

// LoadInventory reads the inventory file. A missing file gives an empty
// inventory and a warning (every box is then "not in the inventory").
func LoadInventory(cfg *config.Config, logger *slog.Logger) (*fleet.Inventory, error) {
	inv, err := fleet.Load(cfg.Inventory)
	if errors.Is(err, fs.ErrNotExist) {
		logger.Warn("inventory file not found; every box will be flagged as unknown", "inventory", cfg.Inventory)
		return fleet.Parse(cfg.Inventory, []byte("boxes: []\n"))
	}
	if err != nil {
		return nil, err
	}
	for _, w := range inv.Warnings() {
		logger.Warn(w)
	}
	return inv, nil
}

// Engine builds the analysis engine: thresholds, per-box overrides, advisories
// and external analyzers from the configuration.
func Engine(cfg *config.Config) (*analysis.Engine, error) {
	var advisories []analysis.Advisory
	if cfg.Advisories != "" {
		var err error
		if advisories, err = analysis.LoadAdvisories(cfg.Advisories); err != nil {
			return nil, err
		}
	}
	ext := make([]analysis.ExternalAnalyzer, 0, len(cfg.External))
	for _, e := range cfg.External {
		ext = append(ext, analysis.ExternalAnalyzer{Name: e.Name, Command: e.Command, Timeout: e.Timeout, MaxOutputBytes: e.MaxOutputBytes,
			MaxFindings: e.MaxFindings, Env: e.Env, Dir: e.Dir})
	}
	return analysis.New(analysis.Options{
		Window: cfg.Analysis.Window, Thresholds: cfg.Rules, Overrides: cfg.Overrides, Advisories: advisories, External: ext,
	})
}

// Settings returns the values workflows read through the Settings activity.
func Settings(cfg *config.Config) activities.Settings {
	return activities.Settings{
		MainQueue: cfg.Queues.Main, AnalysisQueue: cfg.Queues.Analysis, EmailQueue: cfg.Queues.Email,
		ShardSize: cfg.Analysis.ShardSize, MaxInFlight: cfg.Analysis.MaxInFlight, Window: cfg.Analysis.Window,
		Reminder: cfg.Remediation.Reminder, EscalateAfter: cfg.Remediation.EscalateAfter,
		ResolveAfter: cfg.Remediation.ResolveAfter, VerifyEvery: cfg.Remediation.VerifyEvery,
		SMTPRetryFor: cfg.SMTP.RetryFor, SMTPTimeout: cfg.SMTP.Timeout,
		ShardDeadline: cfg.Analysis.ShardDeadline, SearchAttributes: cfg.Temporal.SearchAttributes,
	}
}

// IngestOptions returns StoreBatch's limits from the configuration.
func IngestOptions(cfg *config.Config) activities.IngestOptions {
	return activities.IngestOptions{
		Roots: cfg.Ingest.Roots, MaxRejectRatio: cfg.Ingest.MaxRejectRatio, MaxFutureSkew: cfg.Ingest.MaxFutureSkew,
		ChunkRows: cfg.Ingest.ChunkRows, MaxErrors: cfg.Ingest.MaxErrors,
	}
}

// NewActivities assembles the activities: store, engine, inventory (synced into
// the store), client and metrics. The caller closes the returned store.
//
// With the samples in a time-series engine and samples.flush_writes,
// StoreBatch flushes the engine once at the end of each batch (the
// activities' SampleFlusher) instead of the engine flushing after each of
// the batch's writes: the analysis right after a batch still sees all of it.
func NewActivities(ctx context.Context, cfg *config.Config, c client.Client, m *metrics.Metrics, logger *slog.Logger) (*activities.Activities, error) {
	st, samples, err := openStore(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	var flusher activities.SampleFlusher
	if samples != nil && cfg.Samples.FlushWrites {
		flusher = samples
	}
	inv, err := LoadInventory(cfg, logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := st.UpsertBoxes(ctx, inv.Boxes()); err != nil {
		st.Close()
		return nil, fmt.Errorf("sync inventory into store: %w", err)
	}
	eng, err := Engine(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	mailer, err := Mailer(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	batches, err := blobstore.Open(ctx, cfg.Batches.URL)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &activities.Activities{
		Batches: batches, Outbox: newOutbox(cfg, c, st, batches, logger),
		Store: st, SampleFlusher: flusher, Engine: eng, Inventory: inv, Ingest: IngestOptions(cfg),
		Settings: Settings(cfg), Metrics: m, Client: c, Mailer: mailer,
		Mail: activities.MailOptions{From: cfg.SMTP.From, DefaultOwner: cfg.SMTP.DefaultOwner, Domain: mailDomain(cfg.SMTP.From)},
		Remediation: activities.RemediationOptions{
			Disabled: !cfg.Remediation.Enabled, MinSeverity: finding.Severity(cfg.Remediation.MinSeverity),
		},
	}, nil
}

// Mailer builds the SMTP sender from smtp.*: TLS verified against
// smtp.ca_file (or the system roots) for smtp.server_name (or the host), and
// PLAIN/LOGIN or XOAUTH2 with a token from smtp.oauth2_token_file or
// smtp.oauth2_token_command.
func Mailer(cfg *config.Config) (*email.Sender, error) {
	s := cfg.SMTP
	o := email.SMTPOptions{
		Host: s.Host, Port: s.Port, TLS: email.TLSMode(s.TLS),
		Username: s.Username, Password: s.Password, Timeout: s.Timeout,
		CAFile: s.CAFile, ServerName: s.ServerName,
		InsecureSkipVerify: s.InsecureSkipVerify, AllowInsecureAuth: s.AllowInsecureAuth,
	}
	if s.Auth == config.SMTPAuthXOAUTH2 {
		o.Auth = email.AuthXOAUTH2
		switch {
		case s.OAuth2TokenFile != "":
			o.Token = &email.TokenFile{Path: s.OAuth2TokenFile}
		default:
			argv, err := config.SplitCommand(s.OAuth2TokenCommand)
			if err != nil { // validated at load
				return nil, fmt.Errorf("split smtp.oauth2_token_command: %w", err)
			}
			// A run may take as long as one SMTP conversation.
			o.Token = &email.TokenCommand{Argv: argv, Timeout: s.Timeout}
		}
	}
	return email.NewSender(o)
}

// mailDomain is the domain of the From address, used in Message-IDs.
func mailDomain(from string) string {
	if i := strings.LastIndex(from, "@"); i >= 0 {
		return strings.TrimSuffix(from[i+1:], ">")
	}
	return email.DefaultDomain
}
