package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sanwatch/sanwatch/activities"
)

// OutboxSweepScheduleID is the id of the Temporal Schedule that runs
// SweepOutbox: the scheduled sweep of the receiver's outbox.
const OutboxSweepScheduleID = "sanwatch-outbox-sweep"

// SweepOutbox starts the ingest workflows of accepted batches that are
// still in the receiver's outbox (accepted while Temporal was unreachable,
// by a receiver that has not drained them since), and returns what it did.
func SweepOutbox(ctx workflow.Context) (activities.OutboxDrained, error) {
	var out activities.OutboxDrained
	s, err := loadSettings(ctx)
	if err != nil {
		return out, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              s.MainQueue,
		StartToCloseTimeout:    5 * time.Minute,
		ScheduleToCloseTimeout: 15 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput},
		},
		Summary: "start the ingest workflows left in the outbox",
	})
	err = workflow.ExecuteActivity(actx, a.DrainOutbox).Get(ctx, &out)
	return out, err
}
