package backtest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report as a table, one row per rule, with the
// period and any skipped truth rows and notes below it.
func WriteTable(w io.Writer, r Report) error {
	fmt.Fprintf(w, "backtest: %s to %s, %d boxes, %d components, %d samples, %d box evaluations, %d incidents\n",
		r.From.Format("2006-01-02 15:04"), r.To.Format("2006-01-02 15:04"), r.Boxes, r.Components, r.Samples, r.Steps, r.Incidents)
	if r.Baseline != "" {
		fmt.Fprintf(w, "baseline: %s\n", r.Baseline)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rule\tincidents\tfound\trecall\tlead p10\tlead median\tlead p90\t>= %s ahead\thealthy flagged\tper 1000 comp-days\tprecision\t\n", Days(r.Lead))
	for _, s := range r.Rules {
		pct := func(v float64, n int) string {
			if n == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", v*100)
		}
		lead := func(d time.Duration) string {
			if s.Found == 0 {
				return "-"
			}
			return Days(d)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s (%d/%d)\t%.2f\t%s\t\n", s.Rule, s.Incidents, s.Found,
			pct(s.Recall, s.Incidents), lead(s.LeadP10), lead(s.LeadMedian), lead(s.LeadP90), pct(s.AheadShare, s.Incidents),
			pct(s.HealthyShare, s.Healthy), s.HealthyFlagged, s.Healthy, s.FlagsPer1000, pct(s.Precision, s.Flagged))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Skipped {
		fmt.Fprintln(w, "skipped:", s)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// Days formats a duration in days ("7d", "2.5d") or hours under a day.
func Days(d time.Duration) string {
	if d < 24*time.Hour {
		return fmt.Sprintf("%.0fh", d.Hours())
	}
	s := fmt.Sprintf("%.1f", d.Hours()/24)
	return strings.TrimSuffix(s, ".0") + "d"
}

// ParseDays parses "7d", "36h" or any Go duration.
func ParseDays(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		var n float64
		if _, err := fmt.Sscanf(strings.TrimSuffix(s, "d"), "%g", &n); err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want a number of days such as 7d, or a Go duration such as 36h", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want a number of days such as 7d, or a Go duration such as 36h", s)
	}
	return d, nil
}
