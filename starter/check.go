package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Nagios/Monit plugin exit codes.
const (
	checkOK       = 0
	checkWarning  = 1
	checkCritical = 2
	checkUnknown  = 3
)

func (c *cli) checkCmd() *cobra.Command {
	var temporal bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Nagios/Monit check: exit 0 OK, 1 WARNING, 2 CRITICAL (open findings), 3 UNKNOWN (sanwatch unreachable)",
		Long: "Nagios/Monit check: exit 0 OK, 1 WARNING (open warning findings, or a scan schedule that does not scan: no\n" +
			"completed scan for 3 intervals, a scan running longer than its interval, runs skipped recently; or an external\n" +
			"analyzer that failed in its last run or within the hour, named with its last error),\n" +
			"2 CRITICAL (open critical findings), 3 UNKNOWN (store or Temporal unreachable).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			code, msg := c.check(ctx, temporal)
			fmt.Fprintln(c.stdout, msg)
			if code != checkOK {
				return &exitError{code: code, err: fmt.Errorf("check: %s", msg)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&temporal, "temporal", true, "also check that the Temporal frontend answers")
	return cmd
}

// check returns the plugin exit code and its one-line status.
func (c *cli) check(ctx context.Context, temporal bool) (int, string) {
	if c.cfg.Store.Driver == "sqlite" {
		// Opening a missing SQLite file would create an empty store and say OK.
		if _, err := os.Stat(c.cfg.Store.Path); err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - store: " + err.Error()
		}
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return checkUnknown, "SANWATCH UNKNOWN - store: " + err.Error()
	}
	defer st.Close()
	notifyFailing, notifyMsg := 0, ""
	var late []string // scan schedules that do not scan as they should
	if temporal {
		tc, err := c.dial(ctx)
		if err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - " + err.Error()
		}
		defer tc.Close()
		if _, err = tc.CheckHealth(ctx, nil); err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - temporal health: " + err.Error()
		}
		if notifyFailing, notifyMsg, err = c.notifyFailing(ctx, tc); err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - remediations: " + err.Error()
		}
		if late, err = scheduleProblems(ctx, tc, c.cfg.Temporal.Namespace, time.Now()); err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - schedules: " + err.Error()
		}
	}
	counts := map[finding.Severity]int{}
	for _, status := range []finding.Status{finding.StatusOpen, finding.StatusUndeliverable} {
		fs, err := st.Findings(ctx, store.FindingQuery{Status: status, MinSeverity: finding.Warning})
		if err != nil {
			return checkUnknown, "SANWATCH UNKNOWN - findings: " + err.Error()
		}
		for _, f := range fs {
			counts[f.Severity]++
		}
	}
	perf := fmt.Sprintf("critical=%d warning=%d notify_failing=%d", counts[finding.Critical], counts[finding.Warning], notifyFailing)
	analyzers, err := st.AnalyzerStatuses(ctx)
	if err != nil {
		return checkUnknown, "SANWATCH UNKNOWN - external analyzers: " + err.Error()
	}
	// Late schedules and failing analyzers are a WARNING of their own,
	// added to what findings say.
	late = append(late, failingAnalyzers(analyzers, time.Now())...)
	schedules := ""
	if len(late) > 0 {
		schedules = "; " + strings.Join(late, "; ")
	}
	switch {
	case notifyFailing > 0:
		return checkCritical, fmt.Sprintf("SANWATCH CRITICAL - %s%s | %s", notifyMsg, schedules, perf)
	case counts[finding.Critical] > 0:
		return checkCritical, fmt.Sprintf("SANWATCH CRITICAL - %d critical, %d warning findings not acknowledged%s | %s", counts[finding.Critical], counts[finding.Warning], schedules, perf)
	case counts[finding.Warning] > 0:
		return checkWarning, fmt.Sprintf("SANWATCH WARNING - %d warning findings not acknowledged%s | %s", counts[finding.Warning], schedules, perf)
	case len(late) > 0:
		return checkWarning, fmt.Sprintf("SANWATCH WARNING - %s | %s", strings.Join(late, "; "), perf)
	}
	return checkOK, "SANWATCH OK - no unacknowledged findings | " + perf
}

// analyzerFailureRecent is how long a failure of an external analyzer that
// succeeded since (on other boxes, or on the same one) still warns.
const analyzerFailureRecent = time.Hour

// maxCheckError bounds an analyzer's error in check's one-line output.
const maxCheckError = 160

// failingAnalyzers describes each external analyzer whose last run failed,
// or that failed within analyzerFailureRecent: its findings are unknown
// meanwhile (neither verified nor cleared).
func failingAnalyzers(statuses []store.AnalyzerStatus, now time.Time) []string {
	var out []string
	for _, a := range statuses {
		if a.FailedAt.IsZero() || (a.FailedAt.Before(a.OKAt) && now.Sub(a.FailedAt) > analyzerFailureRecent) {
			continue
		}
		msg := strings.Join(strings.Fields(a.LastError), " ") // one line
		if len(msg) > maxCheckError {
			msg = strings.ToValidUTF8(msg[:maxCheckError], "") + "..."
		}
		out = append(out, fmt.Sprintf("external analyzer %q failed %s ago on box %s (its findings are unknown): %s",
			a.Analyzer, now.Sub(a.FailedAt).Round(time.Second), a.LastBox, msg))
	}
	return out
}
