package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/workflows"
)

// scanFlags are the FleetScan input flags shared by `scan` and `schedule create`.
type scanFlags struct {
	selector    string
	window      string
	shardSize   int
	maxInFlight int
	noRemediate bool
}

func (f *scanFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.selector, "selector", "all", "boxes to scan: all, or site=X,tag=Y,model=Z")
	fl.StringVar(&f.window, "window", "", "history per box, e.g. 48h (default analysis.window)")
	fl.IntVar(&f.shardSize, "shard-size", 0, "boxes per analysis activity (default analysis.shard_size)")
	fl.IntVar(&f.maxInFlight, "max-in-flight", 0, "shard activities running at once (default analysis.max_in_flight)")
	fl.BoolVar(&f.noRemediate, "no-remediate", false, "store findings without emailing")
}

func (f *scanFlags) input() (workflows.FleetScanInput, error) {
	sel, err := activities.ParseSelector(f.selector)
	if err != nil {
		return workflows.FleetScanInput{}, fmt.Errorf("--selector: %w", err)
	}
	if f.window != "" {
		if d, err := time.ParseDuration(f.window); err != nil || d <= 0 {
			return workflows.FleetScanInput{}, fmt.Errorf("--window %q: want a positive duration such as 48h", f.window)
		}
	}
	in := workflows.FleetScanInput{Selector: sel, Window: f.window, ShardSize: f.shardSize, MaxInFlight: f.maxInFlight}
	if f.noRemediate {
		no := false
		in.Remediate = &no
	}
	return in, nil
}

func (c *cli) scanCmd() *cobra.Command {
	var f scanFlags
	var id string
	var wait bool
	var waitWorker time.Duration
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Run a FleetScan now: analyse every selected box and hand findings to remediation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := f.input()
			if err != nil {
				return err
			}
			if id == "" {
				id = "scan-" + time.Now().UTC().Format("20060102T150405Z")
			}
			ctx := cmd.Context()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			if err := waitForWorkers(ctx, tc, c.stderr, waitWorker,
				queueNeed{c.cfg.Queues.Main, enumspb.TASK_QUEUE_TYPE_WORKFLOW},
				queueNeed{c.cfg.Queues.Analysis, enumspb.TASK_QUEUE_TYPE_ACTIVITY}); err != nil {
				return err
			}
			meta := c.scanMetadata(in, "starter scan")
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: id, TaskQueue: c.cfg.Queues.Main, WorkflowExecutionErrorWhenAlreadyStarted: true,
				StaticSummary: meta.summary, StaticDetails: meta.details, TypedSearchAttributes: meta.attrs,
			}, workflows.FleetScan, in)
			if err != nil {
				return fmt.Errorf("start scan: %w", searchAttributeHint(err))
			}
			fmt.Fprintf(c.stdout, "scan %s started (selector %s); progress: temporal workflow query --workflow-id %s --type %s\n",
				id, in.Selector, id, workflows.QueryProgress)
			if !wait {
				return nil
			}
			var rep store.ScanReport
			if err := run.Get(ctx, &rep); err != nil {
				return fmt.Errorf("scan %s: %s", id, workflows.ErrorMessage(err))
			}
			c.printScanReport(rep)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow id (default scan-<UTC time>)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the scan and print its report")
	addWaitForWorker(cmd, &waitWorker)
	return cmd
}

func (c *cli) scansCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "scans",
		Short: "List stored scan reports, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			reps, err := st.ScanReports(cmd.Context(), limit)
			if err != nil {
				return fmt.Errorf("list scans: %w", err)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSELECTOR\tSTARTED\tDURATION\tBOXES\tANALYSED\tFINDINGS\tFAILED SHARDS\tRUNS")
			for _, r := range reps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Selector, r.StartedAt.UTC().Format(time.RFC3339),
					r.FinishedAt.Sub(r.StartedAt).Round(time.Second), r.Boxes, r.Analysed, r.Findings, len(r.FailedShards), r.Runs)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (0: all)")
	return cmd
}

func (c *cli) scanReportCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scan-report ID",
		Short: "Show one stored scan report",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := st.ScanReport(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("scan-report %s: no such scan (`starter scans` lists them)", args[0])
			}
			if err != nil {
				return fmt.Errorf("read scan report: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			c.printScanReport(rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *cli) printScanReport(r store.ScanReport) {
	w := c.stdout
	fmt.Fprintf(w, "scan:      %s\nselector:  %s\nstarted:   %s\nfinished:  %s (%s)\n", r.ID, r.Selector,
		r.StartedAt.UTC().Format(time.RFC3339), r.FinishedAt.UTC().Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	fmt.Fprintf(w, "boxes:     %d (analysed %d)\nfindings:  %d", r.Boxes, r.Analysed, r.Findings)
	var sev []string
	for _, s := range []string{"critical", "warning", "info"} {
		if n := r.BySeverity[s]; n > 0 {
			sev = append(sev, fmt.Sprintf("%s=%d", s, n))
		}
	}
	if len(sev) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(sev, " "))
	}
	fmt.Fprintf(w, "\nremediations: %d\nruns:      %d\n", r.Remediations, r.Runs)
	for _, f := range r.FailedShards {
		fmt.Fprintf(w, "failed shard: %s\n", f)
	}
	for _, e := range r.DispatchErrors {
		fmt.Fprintf(w, "remediation hand-off failed: %s\n", e)
	}
}
