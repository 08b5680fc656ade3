package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// pollerFresh is how recently a poller must have been seen to count as a
// live worker. A long poll lasts about 60 s before the worker polls again,
// and a worker runs several pollers, so a live one is seen within this; the
// server keeps a stopped worker's pollers listed for minutes longer, which
// must not count. A live worker that was just missed is seen on a later
// check while waiting.
const pollerFresh = 75 * time.Second

// pollerCheckEvery is how often the task queue is asked again while waiting.
const pollerCheckEvery = time.Second

// queueNeed is a task queue a command's workflows cannot finish without.
type queueNeed struct {
	name string
	kind enumspb.TaskQueueType // workflow or activity pollers
}

// addWaitForWorker adds --wait-for-worker to cmd.
func addWaitForWorker(cmd *cobra.Command, d *time.Duration) {
	cmd.Flags().DurationVar(d, "wait-for-worker", 30*time.Second,
		"how long to wait for a worker to poll the task queues before giving up (0: check once)")
}

// errNoWorker says which task queue nobody polls.
type errNoWorker struct{ queue string }

func (e *errNoWorker) Error() string {
	return fmt.Sprintf("no worker is polling task queue %q: start bin/worker", e.queue)
}

// waitForWorkers returns once every queue in needs has a live poller, and an
// *errNoWorker naming the first queue that has none after wait. Started
// workflows would otherwise sit in a queue nobody serves, and the command
// would wait forever with nothing said. A server that refuses the question
// (no permission for DescribeTaskQueue) is noted on stderr and not waited on.
func waitForWorkers(ctx context.Context, tc client.Client, stderr io.Writer, wait time.Duration, needs ...queueNeed) error {
	deadline := time.Now().Add(wait)
	told := false
	for _, q := range needs {
		for {
			ok, err := hasLivePoller(ctx, tc, q)
			var denied *serviceerror.PermissionDenied
			if errors.As(err, &denied) {
				fmt.Fprintf(stderr, "starter: cannot see the pollers of task queue %q (%v); not checking for workers\n", q.name, err)
				return nil
			}
			var unavailable *serviceerror.Unavailable
			if err != nil && !errors.As(err, &unavailable) {
				return fmt.Errorf("describe task queue %q: %w", q.name, err)
			}
			if err != nil && !time.Now().Before(deadline) {
				return fmt.Errorf("describe task queue %q: %w", q.name, err) // the server is still starting, or gone
			}
			if ok {
				break
			}
			if !time.Now().Before(deadline) {
				return &errNoWorker{queue: q.name}
			}
			if !told {
				fmt.Fprintf(stderr, "starter: waiting up to %s for a worker to poll task queue %q\n", wait.Round(time.Second), q.name)
				told = true
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(pollerCheckEvery, time.Until(deadline))):
			}
		}
	}
	return nil
}

// hasLivePoller reports whether q has a poller seen within pollerFresh.
func hasLivePoller(ctx context.Context, tc client.Client, q queueNeed) (bool, error) {
	resp, err := tc.DescribeTaskQueue(ctx, q.name, q.kind)
	if err != nil {
		return false, err
	}
	for _, p := range resp.GetPollers() {
		if t := p.GetLastAccessTime(); t != nil && time.Since(t.AsTime()) < pollerFresh {
			return true, nil
		}
	}
	return false, nil
}
