package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/workflows"
)

// ScanWorkflowIDForSchedule is the workflow id prefix of scans a schedule starts;
// Temporal appends the scheduled time.
func scanWorkflowIDForSchedule(id string) string { return "scan-" + id }

func (c *cli) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage periodic fleet scans (Temporal Schedules; overlapping runs are skipped)",
	}
	cmd.AddCommand(c.scheduleCreateCmd(), c.scheduleListCmd(), c.scheduleDescribeCmd(), c.scheduleBackfillCmd(),
		c.scheduleSimpleCmd("pause", "Pause a schedule", func(h client.ScheduleHandle, cmd *cobra.Command, note string) error {
			return h.Pause(cmd.Context(), client.SchedulePauseOptions{Note: note})
		}),
		c.scheduleSimpleCmd("unpause", "Unpause a schedule", func(h client.ScheduleHandle, cmd *cobra.Command, note string) error {
			return h.Unpause(cmd.Context(), client.ScheduleUnpauseOptions{Note: note})
		}),
		c.scheduleSimpleCmd("trigger", "Start a scan of a schedule now (skipped if one is running)", func(h client.ScheduleHandle, cmd *cobra.Command, _ string) error {
			return h.Trigger(cmd.Context(), client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
		}),
		c.scheduleSimpleCmd("delete", "Delete a schedule (running scans go on)", func(h client.ScheduleHandle, cmd *cobra.Command, _ string) error {
			return h.Delete(cmd.Context())
		}),
	)
	return cmd
}

func (c *cli) scheduleCreateCmd() *cobra.Command {
	var f scanFlags
	var id, every, cron, note string
	var paused bool
	var timeout, catchup time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a schedule that runs FleetScan --every DURATION or on --cron EXPR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return fmt.Errorf("--id is required")
			}
			if (every == "") == (cron == "") {
				return fmt.Errorf("give exactly one of --every (e.g. 15m) or --cron (e.g. \"0 */6 * * *\")")
			}
			var spec client.ScheduleSpec
			// A scan that hangs (analysis workers down, a misnamed queue) must
			// not skip every later one in silence: each scan gets a deadline
			// (default 3 intervals), and after an outage at most one missed
			// run is caught up (default within one interval).
			period := 6 * time.Hour
			if every != "" {
				d, err := time.ParseDuration(every)
				if err != nil || d < time.Minute {
					return fmt.Errorf("--every %q: want a duration of at least 1m, such as 15m", every)
				}
				spec.Intervals = []client.ScheduleIntervalSpec{{Every: d}}
				period = d
			} else {
				if n := len(strings.Fields(cron)); n < 5 || n > 7 {
					return fmt.Errorf("--cron %q: want 5 fields (minute hour day-of-month month day-of-week)", cron)
				}
				spec.CronExpressions = []string{cron}
			}
			if timeout == 0 {
				timeout = 3 * period
			}
			if catchup == 0 {
				catchup = max(period, time.Minute)
			}
			if timeout < time.Minute || catchup < time.Minute {
				return fmt.Errorf("--timeout %s, --catchup-window %s: want at least 1m each", timeout, catchup)
			}
			// A shard that no analysis worker takes fails at its deadline and
			// the scan saves its report; a run timeout before that would end
			// the scan with nothing saved.
			if sd := c.cfg.Analysis.ShardDeadline; timeout <= sd {
				return fmt.Errorf("--timeout %s must be longer than analysis.shard_deadline (%s), so a scan whose shards no worker takes still ends with a report; raise --timeout or lower analysis.shard_deadline", timeout, sd)
			}
			in, err := f.input()
			if err != nil {
				return err
			}
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			meta := c.scanMetadata(in, "schedule "+id)
			_, err = tc.ScheduleClient().Create(cmd.Context(), client.ScheduleOptions{
				ID:            id,
				Spec:          spec,
				Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
				CatchupWindow: catchup,
				Paused:        paused,
				Note:          note,
				Action: &client.ScheduleWorkflowAction{
					ID:                       scanWorkflowIDForSchedule(id),
					Workflow:                 workflows.FleetScan,
					Args:                     []any{in},
					TaskQueue:                c.cfg.Queues.Main,
					WorkflowExecutionTimeout: timeout, // the whole scan, across its continue-as-new runs
					StaticSummary:            meta.summary,
					StaticDetails:            meta.details,
					TypedSearchAttributes:    meta.attrs,
				},
			})
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", id, searchAttributeHint(err))
			}
			fmt.Fprintf(c.stdout, "schedule %s created: FleetScan of %s, overlap policy skip, timeout %s, catch-up window %s\n",
				id, in.Selector, timeout, catchup)
			return nil
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&id, "id", "", "schedule id (required)")
	fl.StringVar(&every, "every", "", "interval, e.g. 15m or 6h")
	fl.StringVar(&cron, "cron", "", "cron expression, e.g. \"0 */6 * * *\"")
	fl.BoolVar(&paused, "paused", false, "create paused")
	fl.StringVar(&note, "note", "", "note shown on the schedule")
	fl.DurationVar(&timeout, "timeout", 0, "deadline of each scan, across its runs (default 3 intervals; 18h with --cron)")
	fl.DurationVar(&catchup, "catchup-window", 0, "after an outage, catch up a missed run only within this (default one interval)")
	return cmd
}

func (c *cli) scheduleListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List schedules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			it, err := tc.ScheduleClient().List(cmd.Context(), client.ScheduleListOptions{})
			if err != nil {
				return fmt.Errorf("list schedules: %w", err)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWORKFLOW\tPAUSED\tNEXT RUN")
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return fmt.Errorf("list schedules: %w", err)
				}
				next := ""
				if len(e.NextActionTimes) > 0 {
					next = e.NextActionTimes[0].UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", e.ID, e.WorkflowType.Name, e.Paused, next)
			}
			return tw.Flush()
		},
	}
}

func (c *cli) scheduleDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe ID",
		Short: "Show a schedule: spec, state, recent and next runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			d, err := tc.ScheduleClient().GetHandle(cmd.Context(), args[0]).Describe(cmd.Context())
			if err != nil {
				return fmt.Errorf("describe schedule %s: %w", args[0], err)
			}
			w := c.stdout
			fmt.Fprintf(w, "schedule:  %s\n", args[0])
			if s := d.Schedule.Spec; s != nil {
				for _, iv := range s.Intervals {
					fmt.Fprintf(w, "every:     %s\n", iv.Every)
				}
				for _, ce := range s.CronExpressions {
					fmt.Fprintf(w, "cron:      %s\n", ce)
				}
				if len(s.Calendars) > 0 {
					fmt.Fprintf(w, "calendars: %d\n", len(s.Calendars))
				}
			}
			if st := d.Schedule.State; st != nil {
				fmt.Fprintf(w, "paused:    %t\n", st.Paused)
				if st.Note != "" {
					fmt.Fprintf(w, "note:      %s\n", st.Note)
				}
			}
			if p := d.Schedule.Policy; p != nil {
				fmt.Fprintf(w, "overlap:   %s\n", p.Overlap)
				fmt.Fprintf(w, "catch-up:  %s\n", p.CatchupWindow)
			}
			if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok && a.WorkflowExecutionTimeout > 0 {
				fmt.Fprintf(w, "timeout:   %s\n", a.WorkflowExecutionTimeout)
			}
			fmt.Fprintf(w, "runs:      %d (skipped for overlap %d, missed the catch-up window %d)\n",
				d.Info.NumActions, d.Info.NumActionsSkippedOverlap, d.Info.NumActionsMissedCatchupWindow)
			for _, r := range d.Info.RunningWorkflows {
				fmt.Fprintf(w, "running:   %s\n", r.WorkflowID)
			}
			for _, r := range d.Info.RecentActions {
				if r.StartWorkflowResult != nil {
					fmt.Fprintf(w, "recent:    %s %s\n", r.ActualTime.UTC().Format(time.RFC3339), r.StartWorkflowResult.WorkflowID)
				}
			}
			for _, t := range d.Info.NextActionTimes {
				fmt.Fprintf(w, "next:      %s\n", t.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
}

// scheduleSimpleCmd builds the one-argument schedule commands.
func (c *cli) scheduleSimpleCmd(name, short string, do func(client.ScheduleHandle, *cobra.Command, string) error) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			if err := do(tc.ScheduleClient().GetHandle(cmd.Context(), args[0]), cmd, note); err != nil {
				return fmt.Errorf("%s schedule %s: %w", name, args[0], err)
			}
			fmt.Fprintf(c.stdout, "schedule %s: %s done\n", args[0], name)
			return nil
		},
	}
	if name == "pause" || name == "unpause" {
		cmd.Flags().StringVar(&note, "note", "", "why")
	}
	return cmd
}

// overlapPolicies are the --overlap values of `schedule backfill`.
var overlapPolicies = []struct {
	name   string
	policy enumspb.ScheduleOverlapPolicy
}{
	{"skip", enumspb.SCHEDULE_OVERLAP_POLICY_SKIP},
	{"buffer-one", enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE},
	{"buffer-all", enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL},
	{"cancel-other", enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER},
	{"terminate-other", enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER},
	{"allow-all", enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL},
}

// backfillTimeLayouts are the time forms --from and --to accept.
var backfillTimeLayouts = []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"}

// parseBackfill checks the flags of `schedule backfill` against now.
func parseBackfill(from, to, overlap string, now time.Time) (client.ScheduleBackfill, error) {
	var b client.ScheduleBackfill
	parse := func(flag, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, fmt.Errorf("%s is required: a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)", flag)
		}
		for _, layout := range backfillTimeLayouts {
			if t, err := time.Parse(layout, v); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%s %q: want a time such as 2026-11-24T06:00:00Z or 2026-11-24 (UTC)", flag, v)
	}
	var err error
	if b.Start, err = parse("--from", from); err != nil {
		return b, err
	}
	if b.End, err = parse("--to", to); err != nil {
		return b, err
	}
	if !b.Start.Before(b.End) {
		return b, fmt.Errorf("--from %s is not before --to %s", b.Start.UTC().Format(time.RFC3339), b.End.UTC().Format(time.RFC3339))
	}
	if b.End.After(now) {
		return b, fmt.Errorf("--to %s is in the future: backfill runs the scans that were due in the past",
			b.End.UTC().Format(time.RFC3339))
	}
	var names []string
	for _, p := range overlapPolicies {
		if p.name == overlap {
			b.Overlap = p.policy
		}
		names = append(names, p.name)
	}
	if b.Overlap == enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED {
		return b, fmt.Errorf("--overlap %q: want one of %s", overlap, strings.Join(names, ", "))
	}
	return b, nil
}

func (c *cli) scheduleBackfillCmd() *cobra.Command {
	var id, from, to, overlap string
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Run the scans a schedule would have run --from T --to T (e.g. after an outage)",
		Long: "Runs, now, the scans that schedule --id had due between --from and --to (RFC 3339 such as\n" +
			"2026-11-24T06:00:00Z, or 2026-11-24T06:00 or 2026-11-24 in UTC). --overlap buffer-all (the default)\n" +
			"runs them one after another; skip drops those due while another scan runs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return fmt.Errorf("--id is required")
			}
			b, err := parseBackfill(from, to, overlap, time.Now())
			if err != nil {
				return err
			}
			tc, err := c.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer tc.Close()
			h := tc.ScheduleClient().GetHandle(cmd.Context(), id)
			if err := h.Backfill(cmd.Context(), client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{b}}); err != nil {
				return fmt.Errorf("backfill schedule %s: %w", id, err)
			}
			fmt.Fprintf(c.stdout, "schedule %s: backfill from %s to %s requested (overlap %s); `starter schedule describe %s` shows the runs\n",
				id, b.Start.UTC().Format(time.RFC3339), b.End.UTC().Format(time.RFC3339), overlap, id)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&id, "id", "", "schedule id (required)")
	fl.StringVar(&from, "from", "", "start of the range (required)")
	fl.StringVar(&to, "to", "", "end of the range (required, not in the future)")
	fl.StringVar(&overlap, "overlap", "buffer-all", "overlap policy of the backfilled runs: skip, buffer-one, buffer-all, cancel-other, terminate-other, allow-all")
	return cmd
}
