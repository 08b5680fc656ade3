package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/backtest"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
)

func (c *cli) backtestCmd() *cobra.Command {
	var truthPath, stepS, leadS, baseline, fromS, toS string
	var fromStore, asJSON bool
	var workers int
	cmd := &cobra.Command{
		Use:   "backtest [FILE|DIR...]",
		Short: "Replay history through the analyzers and score what they would have found against a truth file",
		Long: `backtest answers "what would sanwatch have told us last quarter": it replays telemetry
through the analyzers, at the configured thresholds, as they would have run at each step, in
process on all cores (no Temporal server needed), and scores the first finding of each rule on each
component against a truth file of real incidents (CSV: box,component,time[,rule]; starter import
backblaze writes one from the failure column). Per rule it reports recall, lead time (p10, median,
p90), the share found at least --lead ahead, healthy components flagged (share and per 1,000
component-days) and precision. --baseline scores a comparison rule in the same run.

Telemetry comes from batch files (files or directories, any format ingest takes) or, with
--from-store, from the configured store after an ingest.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if truthPath == "" {
				return errors.New("--truth: required: a CSV of box,component,time[,rule]")
			}
			if fromStore == (len(args) > 0) {
				return errors.New("give batch files or directories, or --from-store, not both")
			}
			var o backtest.Options
			var err error
			if stepS != "" {
				if o.Step, err = backtest.ParseDays(stepS); err != nil || o.Step <= 0 {
					return fmt.Errorf("--step %q: want a positive duration such as 1d or 15m", stepS)
				}
			}
			if o.Lead, err = backtest.ParseDays(leadS); err != nil {
				return fmt.Errorf("--lead: %w", err)
			}
			for _, p := range []struct {
				s string
				t *time.Time
			}{{fromS, &o.From}, {toS, &o.To}} {
				if p.s == "" {
					continue
				}
				if *p.t, err = parseDate(p.s); err != nil {
					return err
				}
			}
			if baseline != "" {
				if o.Baseline, err = backtest.CompileBaseline(baseline); err != nil {
					return fmt.Errorf("--baseline: %w", err)
				}
			}
			o.Workers = workers
			truth, err := backtest.LoadTruth(truthPath)
			if err != nil {
				return err
			}
			if o.Engine, err = app.Engine(c.cfg); err != nil {
				return err
			}
			if inv, err := fleet.Load(c.cfg.Inventory); err == nil {
				o.Inventory = inv
			}
			var data *backtest.Data
			if fromStore {
				st, err := c.openStore(cmd.Context())
				if err != nil {
					return err
				}
				defer st.Close()
				boxes, err := allBoxes(cmd.Context(), st)
				if err != nil {
					return err
				}
				data, err = backtest.LoadStore(cmd.Context(), st, boxes, time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
				if err != nil {
					return err
				}
			} else {
				files, err := expandBatches(args)
				if err != nil {
					return err
				}
				data, err = backtest.LoadFiles(files, nil)
				if err != nil {
					return err
				}
			}
			if f, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !asJSON {
				bar := progressbar.NewOptions(len(data.Boxes()), progressbar.OptionSetWriter(f),
					progressbar.OptionSetDescription("backtest: boxes"), progressbar.OptionShowCount(),
					progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
				o.Progress = func(done, _ int) { _ = bar.Set(done) }
			}
			rep, err := backtest.Run(cmd.Context(), data, truth, o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return backtest.WriteTable(c.stdout, rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&truthPath, "truth", "", "truth file: CSV of box,component,time[,rule] (required)")
	f.BoolVar(&fromStore, "from-store", false, "replay the configured store instead of files")
	f.StringVar(&stepS, "step", "", "evaluate each box this often (default: its own cadence, at least 15m)")
	f.StringVar(&leadS, "lead", "7d", "lead time that counts as found ahead")
	f.StringVar(&baseline, "baseline", "", "comparison rule, e.g. 'disk.reallocated_sectors > 0 || disk.pending_sectors > 0'")
	f.StringVar(&fromS, "from", "", "start of the period (RFC 3339 or YYYY-MM-DD; default: the data's)")
	f.StringVar(&toS, "to", "", "end of the period (default: the data's)")
	f.IntVar(&workers, "workers", 0, "boxes replayed at once (default: all cores)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// parseDate parses RFC 3339 or a date.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("date %q: want RFC 3339 or YYYY-MM-DD", s)
}

// allBoxes lists every box the store knows, page by page.
func allBoxes(ctx context.Context, st store.Store) ([]string, error) {
	var out []string
	q := store.BoxQuery{Limit: 1000}
	for {
		page, err := st.Boxes(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list boxes: %w", err)
		}
		for _, b := range page {
			out = append(out, b.ID)
		}
		if len(page) < q.Limit {
			return out, nil
		}
		q.After = page[len(page)-1].ID
	}
}
