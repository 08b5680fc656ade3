package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// fleetScanType is the workflow type name of FleetScan, which marks a
// schedule as one of sanwatch's scan schedules.
const fleetScanType = "FleetScan"

// scheduleState is what `starter check` judges about one scan schedule.
type scheduleState struct {
	id             string
	paused         bool
	interval       time.Duration // 0: unknown, not judged
	created        time.Time
	lastCompleted  time.Time     // close time of the newest completed scan; zero: none
	running        []runningScan // scans running now
	recent         []time.Time   // scheduled times of the recent actions, oldest first
	skippedOverlap int           // runs skipped because a scan was still running, since created
	missedCatchup  int           // runs missed after an outage (beyond the catch-up window), since created
}

// runningScan is a scan of a schedule that has not finished.
type runningScan struct {
	id    string
	since time.Time
}

// problem returns what is wrong with the schedule at now, in one line that
// names it and its counts, or "" when it scans as it should. Wrong is: no
// completed scan for more than 3 intervals (unless paused); a scan running
// longer than one interval (the next runs are skipped); or runs skipped or
// missed recently: a gap of more than 1.5 intervals between the recent
// actions while the skip counters are not zero. Skips long ago, followed by
// regular runs, are not a problem.
func (s scheduleState) problem(now time.Time) string {
	if s.interval <= 0 {
		return ""
	}
	every := shortDuration(s.interval)
	var why []string
	// A schedule (re)created less than 3 intervals ago is not late yet.
	since := s.created
	if s.lastCompleted.After(since) {
		since = s.lastCompleted
	}
	if !s.paused && now.Sub(since) > 3*s.interval {
		if s.lastCompleted.IsZero() {
			why = append(why, fmt.Sprintf("no scan completed in the %s since it was created (every %s)", roundAge(now.Sub(s.created)), every))
		} else {
			why = append(why, fmt.Sprintf("last scan completed %s ago, more than 3 intervals (every %s)", roundAge(now.Sub(s.lastCompleted)), every))
		}
	}
	for _, r := range s.running {
		if d := now.Sub(r.since); d > s.interval {
			why = append(why, fmt.Sprintf("scan %s running for %s, longer than its interval %s: the runs due meanwhile are skipped", r.id, roundAge(d), every))
		}
	}
	if s.skippedOverlap+s.missedCatchup > 0 {
		for i := 1; i < len(s.recent); i++ {
			if gap := s.recent[i].Sub(s.recent[i-1]); gap > s.interval*3/2 {
				why = append(why, fmt.Sprintf("no run between %s and %s (every %s)",
					s.recent[i-1].UTC().Format(time.RFC3339), s.recent[i].UTC().Format(time.RFC3339), every))
			}
		}
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("schedule %s: %s (runs skipped for overlap %d, missed the catch-up window %d)",
		s.id, strings.Join(why, "; "), s.skippedOverlap, s.missedCatchup)
}

// roundAge rounds a duration for a status line: seconds under ten minutes,
// minutes above.
func roundAge(d time.Duration) string {
	if d < 10*time.Minute {
		return shortDuration(d.Round(time.Second))
	}
	return shortDuration(d.Round(time.Minute))
}

// scheduleProblems judges every FleetScan schedule of the namespace and
// returns one line per schedule that does not scan as it should.
func scheduleProblems(ctx context.Context, tc client.Client, namespace string, now time.Time) ([]string, error) {
	it, err := tc.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var out []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if e.WorkflowType.Name != fleetScanType {
			continue
		}
		s, err := loadScheduleState(ctx, tc, namespace, e.ID)
		if err != nil {
			return nil, err
		}
		if p := s.problem(now); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// loadScheduleState describes a schedule and finds its newest completed scan.
func loadScheduleState(ctx context.Context, tc client.Client, namespace, id string) (scheduleState, error) {
	d, err := tc.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		return scheduleState{}, fmt.Errorf("describe schedule %s: %w", id, err)
	}
	s := scheduleState{
		id: id, created: d.Info.CreatedAt, interval: scheduleInterval(d),
		skippedOverlap: d.Info.NumActionsSkippedOverlap, missedCatchup: d.Info.NumActionsMissedCatchupWindow,
	}
	if st := d.Schedule.State; st != nil {
		s.paused = st.Paused
	}
	started := map[string]time.Time{}
	for _, a := range d.Info.RecentActions {
		s.recent = append(s.recent, a.ScheduleTime)
		if a.StartWorkflowResult != nil {
			started[a.StartWorkflowResult.WorkflowID] = a.ActualTime
		}
	}
	for _, r := range d.Info.RunningWorkflows {
		since, ok := started[r.WorkflowID]
		if !ok {
			desc, err := tc.DescribeWorkflowExecution(ctx, r.WorkflowID, "")
			if err != nil {
				return scheduleState{}, fmt.Errorf("describe scan %s of schedule %s: %w", r.WorkflowID, id, err)
			}
			since = desc.GetWorkflowExecutionInfo().GetStartTime().AsTime()
		}
		s.running = append(s.running, runningScan{id: r.WorkflowID, since: since})
	}
	// Visibility lists closed executions newest close time first.
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: namespace, PageSize: 1,
		Query: fmt.Sprintf(`TemporalScheduledById = %q AND ExecutionStatus = "Completed"`, id),
	})
	if err != nil {
		return scheduleState{}, fmt.Errorf("find the last completed scan of schedule %s: %w", id, err)
	}
	if ex := resp.GetExecutions(); len(ex) > 0 {
		s.lastCompleted = ex[0].GetCloseTime().AsTime()
	}
	return s, nil
}

// scheduleInterval is how often a schedule runs: the shortest --every, or
// for cron and calendar specs the longest gap between its next run times
// (the most lenient, so that a weekday-only cron is not stale on Monday).
func scheduleInterval(d *client.ScheduleDescription) time.Duration {
	var every time.Duration
	if sp := d.Schedule.Spec; sp != nil {
		for _, iv := range sp.Intervals {
			if every == 0 || iv.Every < every {
				every = iv.Every
			}
		}
	}
	if every > 0 {
		return every
	}
	next := d.Info.NextActionTimes
	for i := 1; i < len(next); i++ {
		every = max(every, next[i].Sub(next[i-1]))
	}
	return every
}
