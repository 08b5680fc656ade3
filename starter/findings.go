package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

func (c *cli) findingsCmd() *cobra.Command {
	var q store.FindingQuery
	var severity, status string
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "List stored findings, most severe first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if severity != "" {
				s, err := finding.ParseSeverity(severity)
				if err != nil {
					return fmt.Errorf("--severity: %w", err)
				}
				q.MinSeverity = s
			}
			if status != "" {
				switch st := finding.Status(status); st {
				case finding.StatusOpen, finding.StatusAcknowledged, finding.StatusResolved, finding.StatusUndeliverable:
					q.Status = st
				case finding.StatusUnknown: // derived below, not stored
				default:
					return fmt.Errorf("--status %q: allowed open, acknowledged, resolved, undeliverable, unknown", status)
				}
			}
			st, err := c.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			fs, err := st.Findings(cmd.Context(), q)
			if err != nil {
				return fmt.Errorf("list findings: %w", err)
			}
			analyzers, err := st.AnalyzerStatuses(cmd.Context())
			if err != nil {
				return fmt.Errorf("read external analyzers' last runs: %w", err)
			}
			fs = markUnknown(fs, analyzers)
			if finding.Status(status) == finding.StatusUnknown {
				fs = slices.DeleteFunc(fs, func(f finding.Finding) bool { return f.Status != finding.StatusUnknown })
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if fs == nil {
					fs = []finding.Finding{}
				}
				return enc.Encode(fs)
			}
			c.printFindings(fs, verbose)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Box, "box", "", "only this box")
	f.StringVar(&q.Rule, "rule", "", "only this rule (capacity_forecast, latency_anomaly, ...)")
	f.StringVar(&severity, "severity", "", "at least this severity: info, warning, critical")
	f.StringVar(&status, "status", "", "only this status: open, acknowledged, resolved, undeliverable, unknown (its external analyzer is failing)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many (0: all)")
	f.BoolVar(&asJSON, "json", false, "print JSON with the full evidence")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the problem and remediation steps under each finding")
	return cmd
}

func (c *cli) printFindings(fs []finding.Finding, verbose bool) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tBOX\tRULE\tCOMPONENT\tSTATUS\tTITLE\tLAST SEEN")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(string(f.Severity)), f.Box, f.Rule,
			f.Component, f.Status, f.Title, f.LastSeen.UTC().Format("2006-01-02 15:04"))
		if verbose {
			fmt.Fprintf(tw, "\t%s\n", f.Problem)
			for i, step := range f.Remediation {
				fmt.Fprintf(tw, "\t  %d. %s\n", i+1, step)
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%d findings\n", len(fs))
}

// markUnknown shows as "unknown" each open finding whose rule an external
// analyzer reports and whose last run of that analyzer failed: its state is
// not known, and it is neither cleared nor resolved meanwhile. The note
// names the analyzer and its error.
func markUnknown(fs []finding.Finding, analyzers []store.AnalyzerStatus) []finding.Finding {
	failing := map[string]store.AnalyzerStatus{}
	for _, a := range analyzers {
		if a.FailedAt.IsZero() || !a.FailedAt.After(a.OKAt) {
			continue
		}
		for _, r := range a.Rules {
			failing[r] = a
		}
	}
	for i, f := range fs {
		a, ok := failing[f.Rule]
		if !ok || f.Status == finding.StatusResolved {
			continue
		}
		fs[i].Status = finding.StatusUnknown
		fs[i].Note = fmt.Sprintf("external analyzer %q failed on its last run (%s): %s",
			a.Analyzer, a.FailedAt.UTC().Format(time.RFC3339), a.LastError)
	}
	return fs
}
