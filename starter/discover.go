package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/app"
)

// discoverCmd records the boxes found in the time-series engine, so that a
// FleetScan's box listing finds a fleet whose metrics sanwatch never
// received: the values of each mapping entry's box label.
func (c *cli) discoverCmd() *cobra.Command {
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Record the boxes that have metrics in the time-series engine (samples.backend: prometheus)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.cfg.Samples.Backend != config.SamplesPrometheus {
				return fmt.Errorf("discover: samples.backend is %q: discovery reads a time-series engine (samples.backend: prometheus)", c.cfg.Samples.Backend)
			}
			if window <= 0 {
				return fmt.Errorf("discover: --window %s: must be >0", window)
			}
			ctx := cmd.Context()
			b, err := app.SamplesBackend(c.cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			now := time.Now()
			d, err := b.Discover(ctx, now.Add(-window), now)
			for _, e := range d.Empty {
				fmt.Fprintf(c.stderr, "warning: %s\n", e)
			}
			if err != nil {
				return err
			}
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.TouchBoxes(ctx, d.Boxes); err != nil {
				return fmt.Errorf("discover: record boxes: %w", err)
			}
			fmt.Fprintf(c.stdout, "discovered %d boxes\n", len(d.Boxes))
			return nil
		},
	}
	cmd.Flags().DurationVar(&window, "window", 48*time.Hour, "how far back to look for series")
	return cmd
}
