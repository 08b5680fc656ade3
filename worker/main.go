// Command worker runs sanwatch's Temporal workers: the task queues named by
// --queues (main, analysis, email; default all), with Prometheus /metrics
// and /healthz on worker.metrics_addr, and /debug/pprof only when
// worker.pprof_addr names a loopback address of its own. At start it registers
// sanwatch's search attributes (temporal.search_attributes) and, serving the
// main queue, creates or updates the sanwatch-retention schedule
// (retention.schedule). SIGTERM or SIGINT
// stops it gracefully: running activities get worker.shutdown_timeout to finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/metrics"
	"github.com/sanwatch/sanwatch/internal/search"
	"github.com/sanwatch/sanwatch/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// newFlagSet returns the worker's flags: config.AddFlags's, --queues and
// --metrics-addr. No flag takes a secret (see config: secrets are refused
// on --set).
func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	config.AddFlags(fs)
	fs.String("queues", "", "comma-separated queue roles to serve: main, analysis, email (default: worker.queues, all)")
	fs.String("metrics-addr", "", "address of /metrics and /healthz (default: worker.metrics_addr)")
	return fs
}

func run(ctx context.Context, args []string) error {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if q, _ := fs.GetString("queues"); q != "" {
		_ = fs.Set(config.FlagSet, "worker.queues="+q)
	}
	if a, _ := fs.GetString("metrics-addr"); a != "" {
		_ = fs.Set(config.FlagSet, "worker.metrics_addr="+a)
	}
	cfg, err := config.Load(config.LoadOptions{Flags: fs})
	if err != nil {
		return err
	}
	logger := app.Logger(cfg, os.Stderr)
	slog.SetDefault(logger)
	m := metrics.New()

	c, err := app.Dial(ctx, cfg, logger, m)
	if err != nil {
		return err
	}
	defer c.Close()
	if cfg.Temporal.SearchAttributes {
		if err := registerSearchAttributes(ctx, c, cfg.Temporal.Namespace); err != nil {
			return err
		}
		logger.Info("search attributes registered", "namespace", cfg.Temporal.Namespace)
	}
	acts, err := app.NewActivities(ctx, cfg, c, m, logger)
	if err != nil {
		return err
	}
	defer acts.Store.Close()
	ws, err := app.NewWorkers(c, cfg, acts)
	if err != nil {
		return err
	}
	for i, w := range ws {
		if err := w.Start(); err != nil {
			stopAll(ws[:i])
			return fmt.Errorf("start worker: %w", err)
		}
	}
	if cfg.Retention.Schedule && slices.Contains(cfg.Worker.Queues, app.RoleMain) {
		ensureRetentionSchedule(ctx, c, cfg, logger)
		ensureOutboxSweepSchedule(ctx, c, cfg, logger)
	}
	logger.Info("worker started", "queues", strings.Join(cfg.Worker.Queues, ","), "temporal", cfg.Temporal.Address,
		"namespace", cfg.Temporal.Namespace, "store", cfg.Store.Driver, "metrics", cfg.Worker.MetricsAddr,
		"pprof", cfg.Worker.PprofAddr)

	// Either server failing (address in use, ...) stops the worker.
	errc := make(chan error, 2)
	if cfg.Worker.MetricsAddr != "" {
		go func() {
			errc <- metrics.Serve(ctx, cfg.Worker.MetricsAddr, m, func() error {
				_, err := c.CheckHealth(context.Background(), nil)
				return err
			})
		}()
	}
	if cfg.Worker.PprofAddr != "" {
		go func() { errc <- metrics.ServePprof(ctx, cfg.Worker.PprofAddr) }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	logger.Info("worker stopping: waiting for running activities", "timeout", cfg.Worker.ShutdownTimeout)
	stopAll(ws)
	logger.Info("worker stopped")
	return err
}

// registerSearchAttributes registers sanwatch's search attributes, which
// remediations and scans set, and says how to do without them if the server
// refuses (a conflicting attribute, or no permission: Temporal Cloud adds
// them only through its UI or tcld).
func registerSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := search.Register(ctx, c, namespace); err != nil {
		return fmt.Errorf("register search attributes: %w (to start without them, which makes scans and "+
			"remediations unsearchable by box, site, rule and phase, set temporal.search_attributes: false "+
			"or SANWATCH_TEMPORAL_SEARCH_ATTRIBUTES=false)", err)
	}
	return nil
}

// ensureRetentionSchedule creates or updates the sanwatch-retention schedule
// (retention.schedule). A failure is a warning that says how to fix it: the
// worker's work does not depend on the schedule.
func ensureRetentionSchedule(ctx context.Context, c client.Client, cfg *config.Config, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	verb, err := app.EnsureRetentionSchedule(ctx, c, cfg)
	if err != nil {
		logger.Warn("retention schedule not created: nothing is pruned until it is; run `starter retention` "+
			"once Temporal accepts it, or set retention.schedule: false to leave it to `starter retention`",
			"schedule", workflows.RetentionScheduleID, "error", err)
		return
	}
	logger.Info("retention schedule "+verb, "schedule", workflows.RetentionScheduleID, "every", cfg.Retention.Every,
		"samples", cfg.Retention.Samples, "batches", cfg.Retention.Batches, "quarantine", cfg.Retention.Quarantine)
}

// ensureOutboxSweepSchedule creates or updates the sanwatch-outbox-sweep
// schedule (with retention.schedule); a refusal is a warning, not fatal.
func ensureOutboxSweepSchedule(ctx context.Context, c client.Client, cfg *config.Config, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	verb, err := app.EnsureOutboxSweepSchedule(ctx, c, cfg)
	if err != nil {
		logger.Warn("outbox sweep schedule not created: batches a stopped receiver accepted while Temporal was down wait "+
			"until a receiver runs again (or `starter receive --drain-once`)", "schedule", workflows.OutboxSweepScheduleID, "error", err)
		return
	}
	logger.Info("outbox sweep schedule "+verb, "schedule", workflows.OutboxSweepScheduleID, "every", app.OutboxSweepEvery(cfg))
}

// stopAll stops the workers of every role at once and waits for all of them:
// each Stop waits up to worker.shutdown_timeout for its running activities,
// so stopping them one after another would take that long per role.
func stopAll(ws []worker.Worker) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Stop()
		}()
	}
	wg.Wait()
}
