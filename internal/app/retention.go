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

// OutboxSweepEvery is how often the sanwatch-outbox-sweep schedule runs:
// six receiver.sweep_every, at least a minute (the receivers drain their
// own outbox every sweep_every; the schedule is for batches whose receiver
// is gone).
func OutboxSweepEvery(cfg *config.Config) time.Duration {
	return max(6*cfg.Receiver.SweepEvery, time.Minute)
}

// EnsureOutboxSweepSchedule creates or updates the sanwatch-outbox-sweep
// schedule: SweepOutbox every OutboxSweepEvery, overlapping runs skipped.
func EnsureOutboxSweepSchedule(ctx context.Context, tc client.Client, cfg *config.Config) (string, error) {
	every := OutboxSweepEvery(cfg)
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.OutboxSweepScheduleID,
		Workflow:                 workflows.SweepOutbox,
		TaskQueue:                cfg.Queues.Main,
		WorkflowExecutionTimeout: 30 * time.Minute,
	}
	return ensureSchedule(ctx, tc, workflows.OutboxSweepScheduleID, every, action)
}

// ensureSchedule creates the schedule id (action every interval,
// overlapping runs skipped, missed runs caught up within one interval) or
// updates an existing one to that, and says which it did.
func ensureSchedule(ctx context.Context, tc client.Client, id string, every time.Duration, action *client.ScheduleWorkflowAction) (string, error) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := tc.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            id,
		Spec:          spec,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: every,
		Action:        action,
	})
	verb := "created"
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		verb = "updated"
		h := tc.ScheduleClient().GetHandle(ctx, id)
		err = h.Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := u.Description.Schedule
				s.Spec = &spec
				s.Action = action
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
		return "", fmt.Errorf("create or update schedule %s: %w", id, err)
	}
	return verb, nil
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
	return ensureSchedule(ctx, tc, workflows.RetentionScheduleID, cfg.Retention.Every, retentionAction(cfg))
}
