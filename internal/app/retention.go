package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/workflows"
)

// RetentionTimeout bounds one Retention run, across its continue-as-new runs.
const RetentionTimeout = 12 * time.Hour

// RetentionInput is the Retention input of the configuration: how long
// samples, batch objects and quarantined objects are kept.
func RetentionInput(cfg *config.Config) workflows.RetentionInput {
	return workflows.RetentionInput{
		Samples:    cfg.Retention.Samples.String(),
		Batches:    cfg.Retention.Batches.String(),
		Quarantine: cfg.Retention.Quarantine.String(),
	}
}

// retentionAction is what the retention schedule starts.
func retentionAction(cfg *config.Config) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                       workflows.RetentionScheduleID,
		Workflow:                 workflows.Retention,
		Args:                     []any{RetentionInput(cfg)},
		TaskQueue:                cfg.Queues.Main,
		WorkflowExecutionTimeout: RetentionTimeout,
	}
}

// EnsureRetentionSchedule creates the sanwatch-retention schedule (Retention
// every retention.every, overlapping runs skipped), or updates an existing
// one to the configuration, and says which it did ("created" or
// "updated"). `starter retention` and the worker at start (retention.schedule)
// both call it; running it again changes nothing.
func EnsureRetentionSchedule(ctx context.Context, tc client.Client, cfg *config.Config) (string, error) {
	every := cfg.Retention.Every
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := tc.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            workflows.RetentionScheduleID,
		Spec:          spec,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: every,
		Action:        retentionAction(cfg),
	})
	verb := "created"
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		verb = "updated"
		h := tc.ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID)
		err = h.Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := u.Description.Schedule
				s.Spec = &spec
				s.Action = retentionAction(cfg)
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
		return "", fmt.Errorf("create or update schedule %s: %w", workflows.RetentionScheduleID, err)
	}
	return verb, nil
}
