package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// OutboxDrained is what one DrainOutbox call did.
type OutboxDrained struct {
	Started int `json:"started"` // ingest workflows started
	Failed  int `json:"failed"`  // starts that failed (left in the outbox)
	Pending int `json:"pending"` // left in the outbox afterwards
}

// Outbox starts the ingest workflows of accepted batches whose start did
// not happen (the receiver's outbox). internal/app wires the receiver's
// intake into it.
type Outbox interface {
	Drain(ctx context.Context) (OutboxDrained, error)
}

// DrainOutbox starts the ingest workflows of the batches the receivers
// accepted while Temporal was unreachable and could not start since (a
// receiver that was stopped, or scaled away, drains nothing): the scheduled
// sweep, run by the sanwatch-outbox-sweep schedule. Starting is idempotent
// (a batch's workflow id is its content hash).
func (a *Activities) DrainOutbox(ctx context.Context) (OutboxDrained, error) {
	if a.Outbox == nil {
		return OutboxDrained{}, temporal.NewNonRetryableApplicationError("drain outbox: this worker has no outbox (no store of intakes)", ErrTypeInvalidInput, nil)
	}
	res, err := a.Outbox.Drain(ctx)
	if err != nil {
		return res, fmt.Errorf("drain outbox: %w", err)
	}
	activity.GetLogger(ctx).Info("outbox drained", "started", res.Started, "failed", res.Failed, "pending", res.Pending)
	return res, nil
}
