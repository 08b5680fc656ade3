package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/simulate"
	"github.com/sanwatch/sanwatch/internal/store"
)

// demoScore compares stored findings with the simulator's ground truth.
type demoScore struct {
	Detected, Injected, False int
	Weak, WeakFound           int // faults below threshold, and those found anyway (false)
	Missed, FalseFindings     []string
}

// scoreFindings counts injected faults that have a finding with the same box,
// rule and component, and findings that match no injected fault. A fault
// injected below the thresholds must not be found: a finding on it is false.
func scoreFindings(faults []simulate.Fault, fs []finding.Finding) demoScore {
	truth := make(map[string]bool, len(faults))
	weak := make(map[string]bool)
	var s demoScore
	for _, f := range faults {
		fp := finding.Fingerprint(f.Box, f.Kind, f.Component)
		if f.BelowThreshold {
			weak[fp] = true
			s.Weak++
			continue
		}
		truth[fp] = true
	}
	found := make(map[string]bool, len(fs))
	for _, f := range fs {
		fp := f.Fingerprint()
		found[fp] = true
		if !truth[fp] {
			s.False++
			s.FalseFindings = append(s.FalseFindings, fp)
			if weak[fp] {
				s.WeakFound++
			}
		}
	}
	for _, f := range faults {
		fp := finding.Fingerprint(f.Box, f.Kind, f.Component)
		if f.BelowThreshold {
			continue
		}
		s.Injected++
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
			if s.Weak > 0 {
				line += fmt.Sprintf(" below_threshold_found=%d/%d", s.WeakFound, s.Weak)
			}
			emails, matched := -1, 0
			var unmatched []string
			if mailpit != "" {
				if emails, err = waitMailpit(ctx, mailpit, s.Injected, wait); err != nil {
					return err
				}
				// Emails are matched to faults by the fingerprint header each one
				// carries, not by count: the right email about the right part.
				fps, err := mailpitFingerprints(ctx, mailpit)
				if err != nil {
					return err
				}
				want := map[string]bool{}
				for _, f := range faults {
					if f.BelowThreshold {
						continue // no email is the right answer
					}
					fp := finding.Fingerprint(f.Box, f.Kind, f.Component)
					want[fp] = true
					if fps[fp] > 0 {
						matched++
					} else {
						fmt.Fprintf(c.stdout, "no email for:  %s\n", fp)
					}
				}
				for fp, n := range fps {
					if !want[fp] || n > 1 {
						unmatched = append(unmatched, fmt.Sprintf("%s (%d)", fp, n))
					}
				}
				slices.Sort(unmatched)
				for _, u := range unmatched {
					fmt.Fprintf(c.stdout, "unexpected email: %s\n", u)
				}
				line += fmt.Sprintf(" emails=%d emails_matched=%d/%d", emails, matched, s.Injected)
			}
			fmt.Fprintln(c.stdout, line)
			if s.Detected != s.Injected || s.False != 0 {
				return &exitError{code: 1, err: fmt.Errorf("demo: %d of %d faults detected, %d false findings", s.Detected, s.Injected, s.False)}
			}
			if emails >= 0 && (matched != s.Injected || len(unmatched) > 0 || emails != s.Injected) {
				return &exitError{code: 1, err: fmt.Errorf("demo: %d emails, %d of %d faults emailed by fingerprint, %d unexpected",
					emails, matched, s.Injected, len(unmatched))}
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
	var body struct {
		Total int `json:"total"`
	}
	if err := mailpitGet(ctx, base+"/api/v1/messages?limit=1", &body); err != nil {
		return 0, err
	}
	return body.Total, nil
}

// mailpitFingerprints returns, per X-Sanwatch-Fingerprint header, how many
// of the messages Mailpit holds carry it.
func mailpitFingerprints(ctx context.Context, base string) (map[string]int, error) {
	var list struct {
		Messages []struct {
			ID string `json:"ID"`
		} `json:"messages"`
	}
	if err := mailpitGet(ctx, base+"/api/v1/messages?limit=5000", &list); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, m := range list.Messages {
		var headers map[string][]string
		if err := mailpitGet(ctx, base+"/api/v1/message/"+url.PathEscape(m.ID)+"/headers", &headers); err != nil {
			return nil, err
		}
		for _, fp := range headers["X-Sanwatch-Fingerprint"] {
			out[fp]++
		}
	}
	return out, nil
}

// mailpitGet decodes one JSON answer of Mailpit's API.
func mailpitGet(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("mailpit request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask mailpit: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask mailpit %s: %s", req.URL.Path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("read mailpit answer: %w", err)
	}
	return nil
}
