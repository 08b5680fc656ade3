package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/simulate"
	"github.com/sanwatch/sanwatch/internal/store"
)

// demoScore compares stored findings with the simulator's ground truth.
type demoScore struct {
	Detected, Injected, False int
	Missed, FalseFindings     []string
}

// scoreFindings counts injected faults that have a finding with the same box,
// rule and component, and findings that match no injected fault.
func scoreFindings(faults []simulate.Fault, fs []finding.Finding) demoScore {
	truth := make(map[string]bool, len(faults))
	for _, f := range faults {
		truth[finding.Fingerprint(f.Box, f.Kind, f.Component)] = true
	}
	found := make(map[string]bool, len(fs))
	var s demoScore
	for _, f := range fs {
		fp := f.Fingerprint()
		found[fp] = true
		if !truth[fp] {
			s.False++
			s.FalseFindings = append(s.FalseFindings, fp)
		}
	}
	s.Injected = len(faults)
	for _, f := range faults {
		fp := finding.Fingerprint(f.Box, f.Kind, f.Component)
		if found[fp] {
			s.Detected++
		} else {
			s.Missed = append(s.Missed, fp)
		}
	}
	return s
}

func (c *cli) demoReportCmd() *cobra.Command {
	var faultsPath, mailpit string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "demo-report",
		Short: "Compare stored findings with a simulation's ground truth and print the demo summary line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			faults, err := simulate.LoadFaults(faultsPath)
			if err != nil {
				return err
			}
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			stats, err := st.Stats(ctx)
			if err != nil {
				return fmt.Errorf("read store stats: %w", err)
			}
			fs, err := st.Findings(ctx, store.FindingQuery{})
			if err != nil {
				return fmt.Errorf("list findings: %w", err)
			}
			s := scoreFindings(faults, fs)
			for _, m := range s.Missed {
				fmt.Fprintf(c.stdout, "missed fault:  %s\n", m)
			}
			for _, f := range s.FalseFindings {
				fmt.Fprintf(c.stdout, "false finding: %s\n", f)
			}
			line := fmt.Sprintf("demo: boxes=%d samples=%d rejected=%d findings=%d faults_detected=%d/%d false_findings=%d",
				stats.Boxes, stats.Samples, stats.Rejected, len(fs), s.Detected, s.Injected, s.False)
			emails := -1
			if mailpit != "" {
				if emails, err = waitMailpit(ctx, mailpit, s.Injected, wait); err != nil {
					return err
				}
				line += fmt.Sprintf(" emails=%d", emails)
			}
			fmt.Fprintln(c.stdout, line)
			if s.Detected != s.Injected || s.False != 0 {
				return &exitError{code: 1, err: fmt.Errorf("demo: %d of %d faults detected, %d false findings", s.Detected, s.Injected, s.False)}
			}
			if emails >= 0 && emails != s.Injected {
				return &exitError{code: 1, err: fmt.Errorf("demo: %d emails for %d injected faults", emails, s.Injected)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&faultsPath, "faults", "data/sim/faults.json", "ground truth written by simulate")
	cmd.Flags().DurationVar(&wait, "wait", 0, "with --mailpit: wait up to this long for the email count to reach the injected faults and settle")
	cmd.Flags().StringVar(&mailpit, "mailpit", "", "Mailpit base URL (e.g. http://127.0.0.1:8025): count the emails it accepted")
	return cmd
}

// waitMailpit polls Mailpit until it holds at least want messages and the
// count is stable for a few seconds, or until wait runs out.
func waitMailpit(ctx context.Context, base string, want int, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	prev, stable := -1, 0
	for {
		n, err := mailpitTotal(ctx, base)
		if err != nil {
			return 0, err
		}
		if n == prev {
			stable++
		} else {
			prev, stable = n, 0
		}
		if (n >= want && stable >= 3) || !time.Now().Before(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// mailpitTotal asks Mailpit's API how many messages it holds.
func mailpitTotal(ctx context.Context, base string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/messages?limit=1", nil)
	if err != nil {
		return 0, fmt.Errorf("mailpit request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ask mailpit at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("ask mailpit at %s: %s", base, resp.Status)
	}
	var body struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("read mailpit answer: %w", err)
	}
	return body.Total, nil
}
