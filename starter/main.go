// Command starter is sanwatch's command line: it ingests telemetry, shows
// findings and workflow status, simulates a fleet, and (with later commands)
// acknowledges remediations and manages scheduled scans.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code (e.g. Nagios codes) up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cli := &cli{stdout: stdout, stderr: stderr}
	root := cli.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		if e, ok := err.(*exitError); ok {
			return e.code
		}
		if isCheck(args) {
			return checkUnknown // a plugin that cannot run reports UNKNOWN, never WARNING
		}
		return 1
	}
	return 0
}

// cli holds what the commands share: output streams and, once loaded, config.
type cli struct {
	stdout, stderr io.Writer
	cfg            *config.Config
	logger         *slog.Logger

	dcOnce sync.Once
	dc     converter.DataConverter // of dataConverter
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "starter",
		Short:         "sanwatch command line: ingest telemetry, show findings, run and schedule scans",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(config.LoadOptions{Flags: cmd.Flags()})
			if err != nil {
				return err
			}
			c.cfg = cfg
			c.logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return nil
		},
	}
	config.AddFlags(root.PersistentFlags())
	root.AddCommand(c.configCmd(), c.simulateCmd(), c.ingestCmd(), c.findingsCmd(), c.statusCmd(), c.demoReportCmd(),
		c.ackCmd("ack", workflows.UpdateAck, workflows.SignalAck, "Acknowledge a finding: reminders and escalation stop, verification goes on"),
		c.ackCmd("resolve", workflows.UpdateResolve, workflows.SignalResolve, "Say a finding is fixed: it is verified on fresh data at once and closed when clear"),
		c.remediationsCmd(), c.scanCmd(), c.scansCmd(), c.scanReportCmd(), c.scheduleCmd(), c.checkCmd(), c.importCmd(), c.backtestCmd(),
		c.searchAttributesCmd(), c.codecServerCmd(), c.codecKeygenCmd(), c.retentionCmd(), c.postCmd(),
		c.receiveCmd(), c.tokenCmd(), c.discoverCmd(), c.tlsSelfSignedCmd())
	return root
}

// dial connects to Temporal with the loaded configuration.
func (c *cli) dial(ctx context.Context) (client.Client, error) {
	return app.Dial(ctx, c.cfg, c.logger, nil)
}

// failureMessage returns a failure's message as the server stores it,
// decoded with the configured codec keys when it was encrypted.
func (c *cli) failureMessage(f *failurepb.Failure) string {
	c.dcOnce.Do(func() {
		dc, err := app.DataConverter(c.cfg)
		if err != nil {
			c.logger.Warn("failure messages stay encrypted", "error", err)
			dc = converter.GetDefaultDataConverter()
		}
		c.dc = dc
	})
	return app.FailureMessage(c.dc, f)
}

// openStore opens the configured store.
func (c *cli) openStore(ctx context.Context) (store.Store, error) {
	return app.OpenStore(ctx, c.cfg)
}

func (c *cli) configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (secrets redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(c.stdout, c.cfg.YAML())
			return err
		},
	}
}

// isCheck reports whether the command line runs `starter check`.
func isCheck(args []string) bool {
	return slices.Contains(args, "check")
}
