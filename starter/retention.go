package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/workflows"
)

// retentionTimeout bounds one Retention run, across its continue-as-new runs.
const retentionTimeout = 12 * time.Hour

func (c *cli) retentionCmd() *cobra.Command {
	var now bool
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Create or update the sanwatch-retention schedule (every retention.every); --now runs retention once and prints what it freed",
		Long: "Without --now: creates the Temporal Schedule " + workflows.RetentionScheduleID + ", or updates it to the\n" +
			"configuration, so that the Retention workflow deletes samples older than retention.samples\n" +
			"every retention.every (overlapping runs are skipped). With --now: runs Retention once, waits,\n" +
			"and prints what it freed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			in := workflows.RetentionInput{Samples: c.cfg.Retention.Samples.String()}
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			if now {
				return c.retentionNow(ctx, tc, in)
			}
			return c.retentionSchedule(ctx, tc, in)
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "run retention once now and print what it freed, instead of scheduling it")
	return cmd
}

// retentionAction is what the retention schedule starts.
func (c *cli) retentionAction(in workflows.RetentionInput) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                       workflows.RetentionScheduleID,
		Workflow:                 workflows.Retention,
		Args:                     []any{in},
		TaskQueue:                c.cfg.Queues.Main,
		WorkflowExecutionTimeout: retentionTimeout,
	}
}

// retentionSchedule creates the retention schedule, or updates an existing
// one to the configured interval and retention.
func (c *cli) retentionSchedule(ctx context.Context, tc client.Client, in workflows.RetentionInput) error {
	every := c.cfg.Retention.Every
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := tc.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            workflows.RetentionScheduleID,
		Spec:          spec,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: every,
		Action:        c.retentionAction(in),
	})
	verb := "created"
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		verb = "updated"
		h := tc.ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID)
		err = h.Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := u.Description.Schedule
				s.Spec = &spec
				s.Action = c.retentionAction(in)
				if s.Policy == nil {
					s.Policy = &client.SchedulePolicies{}
				}
				s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
				s.Policy.CatchupWindow = every
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("create or update schedule %s: %w", workflows.RetentionScheduleID, err)
	}
	fmt.Fprintf(c.stdout, "schedule %s %s: Retention every %s, samples kept %s\n",
		workflows.RetentionScheduleID, verb, every, c.cfg.Retention.Samples)
	return nil
}

// retentionNow runs Retention once and prints what it freed.
func (c *cli) retentionNow(ctx context.Context, tc client.Client, in workflows.RetentionInput) error {
	id := workflows.RetentionWorkflowID(time.Now())
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: c.cfg.Queues.Main, WorkflowExecutionTimeout: retentionTimeout,
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
	return nil
}
