package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/simulate"
)

func (c *cli) simulateCmd() *cobra.Command {
	var o simulate.Options
	var end string
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Write a synthetic fleet: inventory, telemetry batches with injected faults, ground truth",
		Long: `simulate writes OUT/fleet.yaml (the inventory), OUT/batches/ (telemetry in every
format: CSV and JSON Lines, gzip or not) and OUT/faults.json (the ground truth: each injected
fault's box, kind = rule, component and onset). Same flags and seed, same bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if end != "" {
				t, err := time.Parse(time.RFC3339, end)
				if err != nil {
					return fmt.Errorf("--end %q: want RFC 3339 such as 2026-11-01T00:00:00Z", end)
				}
				o.End = t
			}
			if c.cfg.Advisories != "" {
				adv, err := analysis.LoadAdvisories(c.cfg.Advisories)
				if err != nil {
					return err
				}
				o.Advisories = adv
			}
			res, err := simulate.Run(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "simulate: boxes=%d files=%d samples=%d faults=%d\n", res.Boxes, res.Files, res.Samples, len(res.Faults))
			fmt.Fprintf(c.stdout, "inventory:    %s\nbatches:      %s\nground truth: %s\n", res.InventoryPath, res.BatchDir, res.FaultsPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Boxes, "boxes", 50, "number of boxes")
	f.IntVar(&o.Hours, "hours", 48, "hours of telemetry per box")
	f.DurationVar(&o.Interval, "interval", 5*time.Minute, "sample interval")
	f.IntVar(&o.Faults, "faults", 12, "faults to inject, on distinct boxes, cycling through every analyzer kind")
	f.Int64Var(&o.Seed, "seed", 1, "random seed: same seed, same files")
	f.IntVar(&o.BatchHours, "batch-hours", 0, "hours per batch file (0: one file per box)")
	f.StringVar(&o.Out, "out", "data/sim", "output directory")
	f.BoolVar(&o.Benign, "benign", true, "add the benign patterns of real fleets (cycles, backups, bursts, gaps, resets, thin provisioning, noisy sensors)")
	f.Float64Var(&o.Weak, "weak", 0, "share of faults injected below the thresholds on purpose (they must not be found)")
	f.StringVar(&end, "end", "", "time of the last sample, RFC 3339 (default "+simulate.DefaultEnd.Format(time.RFC3339)+")")
	return cmd
}
