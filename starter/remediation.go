package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/workflows"
)

// signalCmd builds `ack` and `resolve`: both signal the fingerprint's Remediate workflow.
func (c *cli) signalCmd(name, signal, short string) *cobra.Command {
	var sig workflows.AckSignal
	cmd := &cobra.Command{
		Use:   name + " FINGERPRINT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fp := args[0]
			if _, _, _, err := finding.ParseFingerprint(fp); err != nil {
				return err
			}
			if sig.By == "" {
				sig.By = os.Getenv("USER")
			}
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			id := workflows.RemediateWorkflowID(fp)
			err = tc.SignalWorkflow(cmd.Context(), id, "", signal, sig)
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return fmt.Errorf("%s %s: no open remediation for this fingerprint (workflow %s not running); `starter remediations` lists the open ones", name, fp, id)
			}
			if err != nil {
				return fmt.Errorf("signal %s to %s: %w", signal, id, err)
			}
			fmt.Fprintf(c.stdout, "%s: sent %q to %s\n", name, signal, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&sig.By, "by", "", "who is acting (default: $USER)")
	cmd.Flags().StringVar(&sig.Note, "note", "", "a note kept with the finding")
	return cmd
}

func (c *cli) remediationsCmd() *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "remediations",
		Short: "List remediation workflows: state, emails sent, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			query := fmt.Sprintf("WorkflowType = '%s'", activities.RemediateWorkflowType)
			if !all {
				query += " AND ExecutionStatus = 'Running'"
			}
			var states []workflows.RemediationState
			var token []byte
			for {
				resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
				if err != nil {
					return fmt.Errorf("list remediations: %w", err)
				}
				for _, e := range resp.GetExecutions() {
					id := e.GetExecution().GetWorkflowId()
					st := workflows.RemediationState{Fingerprint: strings.TrimPrefix(id, activities.RemediateIDPrefix), Phase: strings.ToLower(e.GetStatus().String())}
					if v, err := tc.QueryWorkflow(ctx, id, e.GetExecution().GetRunId(), workflows.QueryState); err == nil {
						_ = v.Get(&st)
					}
					states = append(states, st)
				}
				if token = resp.GetNextPageToken(); len(token) == 0 {
					break
				}
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(states)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tPHASE\tSEVERITY\tEMAILS\tACKED BY\tLAST ERROR")
			for _, s := range states {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Fingerprint, s.Phase, s.Severity, s.EmailsSent, s.AckedBy, s.LastError)
			}
			tw.Flush()
			fmt.Fprintf(c.stdout, "%d remediations\n", len(states))
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include completed remediations")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
