package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/sanwatch/sanwatch/workflows"
)

func (c *cli) statusCmd() *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "status WORKFLOW_ID",
		Short: "Show a workflow's status, pending activities and result or failure",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			d, err := tc.DescribeWorkflowExecution(ctx, args[0], runID)
			if err != nil {
				return fmt.Errorf("describe workflow %s: %w", args[0], err)
			}
			info := d.GetWorkflowExecutionInfo()
			w := c.stdout
			fmt.Fprintf(w, "workflow:   %s\n", info.GetExecution().GetWorkflowId())
			fmt.Fprintf(w, "run:        %s\n", info.GetExecution().GetRunId())
			fmt.Fprintf(w, "type:       %s\n", info.GetType().GetName())
			fmt.Fprintf(w, "task queue: %s\n", info.GetTaskQueue())
			fmt.Fprintf(w, "status:     %s\n", info.GetStatus())
			fmt.Fprintf(w, "started:    %s\n", info.GetStartTime().AsTime().Format(time.RFC3339))
			if ct := info.GetCloseTime(); ct != nil && !ct.AsTime().IsZero() && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				fmt.Fprintf(w, "closed:     %s\n", ct.AsTime().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "history:    %d events\n", info.GetHistoryLength())
			for _, pa := range d.GetPendingActivities() {
				fmt.Fprintf(w, "pending:    %s attempt=%d state=%s", pa.GetActivityType().GetName(), pa.GetAttempt(), pa.GetState())
				if lf := pa.GetLastFailure(); lf != nil {
					fmt.Fprintf(w, " last_failure=%q", c.failureMessage(lf))
				}
				fmt.Fprintln(w)
			}
			switch info.GetStatus() {
			case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
				var raw json.RawMessage
				if err := tc.GetWorkflow(ctx, args[0], info.GetExecution().GetRunId()).Get(ctx, &raw); err != nil {
					return fmt.Errorf("get result: %w", err)
				}
				fmt.Fprintf(w, "result:     %s\n", raw)
			case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
				enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
				err := tc.GetWorkflow(ctx, args[0], info.GetExecution().GetRunId()).Get(ctx, nil)
				if err != nil {
					fmt.Fprintf(w, "failure:    %s\n", workflows.ErrorMessage(err))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run-id", "", "a specific run (default: the latest)")
	return cmd
}
