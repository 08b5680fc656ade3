package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/metrics"
	"github.com/sanwatch/sanwatch/internal/receiver"
)

func (c *cli) receiveCmd() *cobra.Command {
	var drainOnce, allowPlain bool
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Run the receiver: boxes POST their telemetry to /v1/telemetry over HTTPS, with a token or a client certificate",
		Long: `Receive serves POST /v1/telemetry, GET /v1/batches/{id} and GET /healthz on receiver.addr
until it is stopped (SIGINT, SIGTERM: posts in flight finish). A body is validated, written to
the batch store (batches.url) and recorded before it is answered with 202 and its batch and
workflow ids; its IngestTelemetry workflow is started then, or, when Temporal is unreachable,
from the outbox, which the receiver drains every receiver.sweep_every. Several receivers may
serve the same store and batch store.

Without receiver.cert_file and receiver.key_file the receiver speaks plain HTTP and listens on a
loopback address only (--allow-plain-http lifts that, behind a proxy that terminates TLS).

With receiver.drop_dirs set it also watches those directories and ingests each complete file
dropped there the same way (see receiver.drop_quiet), moving it to done/ or quarantine/.

--drain-once starts the workflows of the outbox once and exits: the sweep a scheduler can run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger := app.Logger(c.cfg, c.stderr)
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			var m *metrics.Metrics
			if metricsAddr != "" {
				m = metrics.New()
			}
			opts, err := app.ClientOptions(c.cfg, logger, m)
			if err != nil {
				return err
			}
			// Lazy: the receiver takes batches while Temporal is down.
			tc, err := client.NewLazyClient(opts)
			if err != nil {
				return fmt.Errorf("temporal client for %s: %w", c.cfg.Temporal.Address, err)
			}
			defer tc.Close()
			in, err := app.NewIntake(ctx, c.cfg, tc, st, logger)
			if err != nil {
				return err
			}
			defer in.Batches.Close()
			if drainOnce {
				res, err := in.Drain(ctx)
				if jerr := json.NewEncoder(c.stdout).Encode(res); jerr != nil {
					return jerr
				}
				if err != nil {
					return err
				}
				if res.Failed > 0 {
					return fmt.Errorf("drain outbox: %d workflow starts failed, %d batches still pending", res.Failed, res.Pending)
				}
				return nil
			}
			ro := app.ReceiverOptions(c.cfg)
			ro.AllowPlainHTTP = allowPlain
			dw, err := app.DropWatcher(c.cfg, in, logger)
			if err != nil {
				return err
			}
			// The servers (and the drop watcher) run together: one failing
			// (address in use, ...) stops the others.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var runs []func(context.Context) error
			if m != nil {
				ro.Metrics = receiver.NewMetrics(m.Registry())
				runs = append(runs, func(ctx context.Context) error { return metrics.Serve(ctx, metricsAddr, m, nil) })
			}
			if dw != nil {
				runs = append(runs, dw.Run)
			}
			srv := receiver.NewServer(in, ro)
			runs = append(runs, srv.ListenAndServe)
			errc := make(chan error, len(runs))
			for _, run := range runs {
				go func() { errc <- run(ctx) }()
			}
			err = <-errc
			cancel()
			for range runs[1:] {
				if err2 := <-errc; err == nil {
					err = err2
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics (posts by status, bytes, outbox) and /healthz on this address (default: none)")
	cmd.Flags().BoolVar(&drainOnce, "drain-once", false, "start the workflows of the outbox once, print what happened as JSON, and exit")
	cmd.Flags().BoolVar(&allowPlain, "allow-plain-http", false,
		"serve plain HTTP on a non-loopback receiver.addr: only behind a proxy that terminates TLS on a private network")
	return cmd
}
