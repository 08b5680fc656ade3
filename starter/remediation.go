package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/email"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/search"
	"github.com/sanwatch/sanwatch/workflows"
)

// ackCmd builds `ack` and `resolve`. Both send the remediation an Update,
// which is validated (who acts, an open remediation, the right fingerprint)
// and answers with the new phase, or, for resolve, what fresh data showed.
// Remediations started before updates existed get the signal instead.
func (c *cli) ackCmd(name, update, signal, short string) *cobra.Command {
	var sig workflows.AckSignal
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   name + " FINGERPRINT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fp := args[0]
			if _, _, _, err := finding.ParseFingerprint(fp); err != nil {
				return err
			}
			if !cmd.Flags().Changed("by") {
				sig.By = os.Getenv("USER")
			}
			sig.Fingerprint = fp
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := workflows.RemediateWorkflowID(fp)
			handle, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: update, Args: []any{sig}, WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			var res workflows.UpdateResult
			if err == nil {
				err = handle.Get(ctx, &res)
			}
			var nf *serviceerror.NotFound
			switch {
			case errors.As(err, &nf):
				return fmt.Errorf("%s %s: no open remediation for this fingerprint (workflow %s not running); `starter remediations` lists the open ones", name, fp, id)
			case err != nil && strings.Contains(err.Error(), "unknown update"):
				// A remediation started before the updates existed.
				if err := tc.SignalWorkflow(ctx, id, "", signal, sig); err != nil {
					return fmt.Errorf("signal %s to %s: %w", signal, id, err)
				}
				fmt.Fprintf(c.stdout, "%s: sent %q to %s (an older remediation: it answers no updates; `starter remediations` shows its phase)\n", name, signal, id)
				return nil
			case errors.Is(err, context.DeadlineExceeded):
				return fmt.Errorf("%s %s: no answer within %s (verification may still be running; `starter remediations --box ...` shows the outcome)", name, fp, timeout)
			case err != nil:
				return fmt.Errorf("%s %s refused: %s", name, fp, workflows.ErrorMessage(err))
			}
			fmt.Fprintf(c.stdout, "%s: %s: phase %s: %s\n", name, fp, res.Phase, res.Message)
			return nil
		},
	}
	cmd.Flags().StringVar(&sig.By, "by", "", "who is acting (default: $USER)")
	cmd.Flags().StringVar(&sig.Note, "note", "", "a note kept with the finding")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the answer (resolve verifies on fresh data first)")
	return cmd
}

// remediationRow is one line of `starter remediations`.
type remediationRow struct {
	Fingerprint string `json:"fingerprint"`
	WorkflowID  string `json:"workflow_id"`
	Status      string `json:"status"`
	Phase       string `json:"phase,omitempty"`
	Severity    string `json:"severity,omitempty"`
	Site        string `json:"site,omitempty"`
	Acked       bool   `json:"acked"`
	StartedAt   string `json:"started_at"`
	// Pending is the activity the remediation waits on, with its attempt
	// and last failure: "SendEmail attempt 4: dial tcp ...: connection refused".
	Pending     string `json:"pending,omitempty"`
	LastFailure string `json:"last_failure,omitempty"`
	Attempt     int32  `json:"attempt,omitempty"`
	// PendingExpires is when the pending activity's retries run out
	// (its ScheduleToClose): for SendEmail, smtp.retry_for after the send began.
	PendingExpires time.Time `json:"pending_expires,omitzero"`

	started time.Time
}

// remediationFilter narrows `starter remediations`.
type remediationFilter struct {
	all                              bool
	box, site, rule, severity, phase string
	acked                            string // "", "true" or "false"
	olderThan                        time.Duration
	now                              func() time.Time
	searchAttributes                 bool
	// failureMessage reads a stored failure's message (decoding it with the
	// codec keys); nil: the message as stored.
	failureMessage func(*failurepb.Failure) string
}

// query is the visibility query of the filter. Values are quoted; a value
// with a quote is refused, so a filter can never change the query.
func (f remediationFilter) query() (string, error) {
	q := []string{fmt.Sprintf("WorkflowType = '%s'", activities.RemediateWorkflowType)}
	if !f.all {
		q = append(q, "ExecutionStatus = 'Running'")
	}
	for _, kv := range []struct {
		flag, attr, v string
	}{
		{"box", search.Box.GetName(), f.box}, {"site", search.Site.GetName(), f.site}, {"rule", search.Rule.GetName(), f.rule},
		{"severity", search.Severity.GetName(), f.severity}, {"phase", search.Phase.GetName(), f.phase},
	} {
		if kv.v == "" {
			continue
		}
		if !f.searchAttributes {
			return "", fmt.Errorf("--%s needs search attributes (temporal.search_attributes: true)", kv.flag)
		}
		if strings.ContainsAny(kv.v, `'"\`) {
			return "", fmt.Errorf("--%s %q: quotes and backslashes are not allowed", kv.flag, kv.v)
		}
		q = append(q, fmt.Sprintf("%s = '%s'", kv.attr, kv.v))
	}
	switch f.acked {
	case "":
	case "true", "false":
		if !f.searchAttributes {
			return "", fmt.Errorf("--acked needs search attributes (temporal.search_attributes: true)")
		}
		q = append(q, fmt.Sprintf("%s = %s", search.Acked.GetName(), f.acked))
	default:
		return "", fmt.Errorf("--acked %q: want true or false", f.acked)
	}
	return strings.Join(q, " AND "), nil
}

// listRemediations runs the filter's one visibility query, page by page,
// then asks each running remediation (at most 8 at a time) which activity
// it waits on, so a relay that refuses shows here with its error.
func listRemediations(ctx context.Context, tc client.Client, f remediationFilter) ([]remediationRow, error) {
	query, err := f.query()
	if err != nil {
		return nil, err
	}
	var rows []remediationRow
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list remediations (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			row := remediationRow{
				Fingerprint: strings.TrimPrefix(id, activities.RemediateIDPrefix), WorkflowID: id,
				Status:    strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
				StartedAt: e.GetStartTime().AsTime().UTC().Format(time.RFC3339), started: e.GetStartTime().AsTime(),
			}
			if f.olderThan > 0 && e.GetStartTime().AsTime().After(f.now().Add(-f.olderThan)) {
				continue // filtered here: visibility stores differ in how they compare times
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			row.Phase = keyword(fields, search.Phase.GetName())
			row.Severity = keyword(fields, search.Severity.GetName())
			row.Site = keyword(fields, search.Site.GetName())
			if p, ok := fields[search.Acked.GetName()]; ok {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &row.Acked)
			}
			rows = append(rows, row)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range rows {
		if rows[i].Status != "running" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *remediationRow) {
			defer wg.Done()
			defer func() { <-sem }()
			describePending(ctx, tc, r, !f.searchAttributes, f.failureMessage)
		}(&rows[i])
	}
	wg.Wait()
	return rows, nil
}

// describePending fills in the activity a running remediation waits on and,
// without search attributes, its phase and severity from the state query.
func describePending(ctx context.Context, tc client.Client, r *remediationRow, queryState bool, failureMessage func(*failurepb.Failure) string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if queryState {
		if v, err := tc.QueryWorkflow(ctx, r.WorkflowID, "", workflows.QueryState); err == nil {
			var st workflows.RemediationState
			if v.Get(&st) == nil {
				r.Phase, r.Severity, r.Acked = st.Phase, string(st.Severity), st.Acked
			}
		}
	}
	d, err := tc.DescribeWorkflowExecution(ctx, r.WorkflowID, "")
	if err != nil {
		r.Pending = "? (describe: " + workflows.ErrorMessage(err) + ")"
		return
	}
	if failureMessage == nil {
		failureMessage = (*failurepb.Failure).GetMessage
	}
	for _, pa := range d.GetPendingActivities() {
		r.Pending = pa.GetActivityType().GetName()
		r.Attempt = pa.GetAttempt()
		if t := pa.GetExpirationTime(); t != nil {
			r.PendingExpires = t.AsTime()
		}
		// No addresses in a table that ends up in tickets and chat.
		r.LastFailure = email.RedactAddresses(failureMessage(pa.GetLastFailure()))
		if r.LastFailure != "" {
			break
		}
	}
}

func keyword(fields map[string]*commonpb.Payload, name string) string {
	p, ok := fields[name]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		var list []string
		if converter.GetDefaultDataConverter().FromPayload(p, &list) == nil && len(list) > 0 {
			return list[0]
		}
	}
	return s
}

func (c *cli) remediationsCmd() *cobra.Command {
	var f remediationFilter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "remediations",
		Short: "List remediation workflows: phase, severity, site, and the activity each waits on with its last error",
		Long: "List remediation workflows with one visibility query (filters use sanwatch's search attributes), " +
			"then show, for each running one, the activity it waits on, its attempt and its last failure: " +
			"a relay that refuses shows here.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			f.searchAttributes = c.cfg.Temporal.SearchAttributes
			f.now = time.Now
			f.failureMessage = c.failureMessage
			rows, err := listRemediations(ctx, tc, f)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tSTATUS\tPHASE\tSEVERITY\tSITE\tACKED\tWAITING ON\tLAST ERROR")
			for _, r := range rows {
				waiting := r.Pending
				if waiting != "" && r.Attempt > 1 {
					waiting += fmt.Sprintf(" (attempt %d)", r.Attempt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", r.Fingerprint, r.Status, orDash(r.Phase), orDash(r.Severity),
					orDash(r.Site), r.Acked, orDash(waiting), orDash(r.LastFailure))
			}
			tw.Flush()
			fmt.Fprintf(c.stdout, "%d remediations\n", len(rows))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.all, "all", false, "include completed remediations")
	fl.StringVar(&f.box, "box", "", "only this box")
	fl.StringVar(&f.site, "site", "", "only boxes of this site")
	fl.StringVar(&f.rule, "rule", "", "only this rule, e.g. disk_health")
	fl.StringVar(&f.severity, "severity", "", "only this severity: info, warning, critical")
	fl.StringVar(&f.phase, "phase", "", "only this phase: notifying, waiting, acknowledged, clearing, undeliverable, resolved")
	fl.StringVar(&f.acked, "acked", "", "true or false: only (un)acknowledged ones")
	fl.DurationVar(&f.olderThan, "older-than", 0, "only remediations started longer ago than this")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
