package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/workflows"
)

func (c *cli) retentionCmd() *cobra.Command {
	var now bool
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Create or update the sanwatch-retention schedule (every retention.every); --now runs retention once and prints what it freed",
		Long: "Without --now: creates the Temporal Schedule " + workflows.RetentionScheduleID + ", or updates it to the\n" +
			"configuration, so that the Retention workflow deletes samples older than retention.samples,\n" +
			"batch objects older than retention.batches and quarantined objects older than\n" +
			"retention.quarantine every retention.every (overlapping runs are skipped). A worker serving\n" +
			"the main queue does the same when it starts (retention.schedule, on by default). With --now:\n" +
			"runs Retention once, waits, and prints what it freed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			in := app.RetentionInput(c.cfg)
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			if now {
				return c.retentionNow(ctx, tc, in)
			}
			return c.retentionSchedule(ctx, tc)
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "run retention once now and print what it freed, instead of scheduling it")
	return cmd
}

// retentionSchedule creates the retention schedule, or updates an existing
// one to the configured interval and retention.
func (c *cli) retentionSchedule(ctx context.Context, tc client.Client) error {
	verb, err := app.EnsureRetentionSchedule(ctx, tc, c.cfg)
	if err != nil {
		return err
	}
	r := c.cfg.Retention
	fmt.Fprintf(c.stdout, "schedule %s %s: Retention every %s, samples kept %s, batch objects kept %s, quarantined kept %s\n",
		workflows.RetentionScheduleID, verb, r.Every, r.Samples, r.Batches, r.Quarantine)
	return nil
}

// retentionNow runs Retention once and prints what it freed.
func (c *cli) retentionNow(ctx context.Context, tc client.Client, in workflows.RetentionInput) error {
	id := workflows.RetentionWorkflowID(time.Now())
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: c.cfg.Queues.Main, WorkflowExecutionTimeout: app.RetentionTimeout,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.Retention, in)
	if err != nil {
		return fmt.Errorf("start retention: %w", err)
	}
	var res workflows.RetentionResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("retention %s: %s", id, workflows.ErrorMessage(err))
	}
	fmt.Fprintf(c.stdout, "retention %s: deleted %d samples older than %s (kept %s)\n",
		id, res.SamplesDeleted, res.Before.UTC().Format(time.RFC3339), c.cfg.Retention.Samples)
	fmt.Fprintf(c.stdout, "retention %s: deleted %d batch objects (%s) written before %s (kept %s)\n",
		id, res.BatchesDeleted, byteSize(res.BatchBytes), res.BatchesBefore.UTC().Format(time.RFC3339), c.cfg.Retention.Batches)
	fmt.Fprintf(c.stdout, "retention %s: deleted %d quarantined objects (%s) written before %s (kept %s)\n",
		id, res.QuarantineDeleted, byteSize(res.QuarantineBytes), res.QuarantineBefore.UTC().Format(time.RFC3339), c.cfg.Retention.Quarantine)
	fmt.Fprintf(c.stdout, "retention %s: deleted %d receiver intake records of batches started before %s\n",
		id, res.IntakesDeleted, res.BatchesBefore.UTC().Format(time.RFC3339))
	return nil
}

// byteSize writes n bytes for people: 512 B, 1.5 KiB, 3.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
