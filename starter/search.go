package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/search"
	"github.com/sanwatch/sanwatch/workflows"
)

func (c *cli) searchAttributesCmd() *cobra.Command {
	var devFlags bool
	cmd := &cobra.Command{
		Use:   "search-attributes",
		Short: "Register sanwatch's search attributes (SanwatchBox, SanwatchSite, ...) in temporal.namespace and list them",
		Long: "Registers the custom search attributes remediations and scans set, in the namespace of temporal.namespace;\n" +
			"attributes already there are left alone, one registered with another type is an error. Workers do the\n" +
			"same at start unless temporal.search_attributes is false. --dev-server-flags prints the\n" +
			"`temporal server start-dev` flags that register them instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if devFlags {
				_, err := fmt.Fprintln(c.stdout, strings.Join(search.DevServerFlags(), " "))
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			tc, err := c.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			ns := c.cfg.Temporal.Namespace
			if err := search.Register(ctx, tc, ns); err != nil {
				return err
			}
			have, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
			if err != nil {
				return fmt.Errorf("list search attributes of namespace %q: %w", ns, err)
			}
			var names []string
			for n := range search.Attributes() {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Fprintf(c.stdout, "namespace %s: sanwatch's search attributes are registered\n", ns)
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE")
			for _, n := range names {
				fmt.Fprintf(tw, "%s\t%s\n", n, have.GetCustomAttributes()[n])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&devFlags, "dev-server-flags", false, "print `--search-attribute Name=Type` flags for `temporal server start-dev` and exit")
	return cmd
}

// scanMeta is what a scan carries for the Temporal UI and visibility queries:
// a one-line summary, details, and (when temporal.search_attributes is on)
// the site its selector names.
type scanMeta struct {
	summary, details string
	attrs            temporal.SearchAttributes
}

// scanMetadata describes a scan of in; origin says what starts it ("starter
// scan", "schedule fleet-15m").
func (c *cli) scanMetadata(in workflows.FleetScanInput, origin string) scanMeta {
	window, windowNote := in.Window, ""
	if window == "" {
		window, windowNote = shortDuration(c.cfg.Analysis.Window), " (analysis.window)"
	}
	what := "all boxes"
	var parts []string
	for _, kv := range [][2]string{{"site", in.Selector.Site}, {"tag", in.Selector.Tag}, {"model", in.Selector.Model}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(parts) > 0 {
		what = strings.Join(parts, ", ")
	}
	m := scanMeta{summary: fmt.Sprintf("fleet scan of %s, window %s", what, window)}
	remediate := "yes: findings go to remediation"
	if in.Remediate != nil && !*in.Remediate {
		m.summary += ", no emails"
		remediate = "no: findings are stored only"
	}
	shard, inFlight := fmt.Sprint(in.ShardSize), fmt.Sprint(in.MaxInFlight)
	if in.ShardSize == 0 {
		shard = fmt.Sprintf("%d (analysis.shard_size)", c.cfg.Analysis.ShardSize)
	}
	if in.MaxInFlight == 0 {
		inFlight = fmt.Sprintf("%d (analysis.max_in_flight)", c.cfg.Analysis.MaxInFlight)
	}
	m.details = fmt.Sprintf("selector: %s\nwindow: %s%s\nboxes per shard: %s\nshards at once: %s\nremediate: %s\nstarted by: %s",
		in.Selector, window, windowNote, shard, inFlight, remediate, origin)
	if c.cfg.Temporal.SearchAttributes && in.Selector.Site != "" {
		m.attrs = temporal.NewSearchAttributes(search.Site.ValueSet(in.Selector.Site))
	}
	return m
}

// shortDuration prints 48h rather than 48h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// searchAttributeHint adds what to do to an error about an unregistered
// search attribute.
func searchAttributeHint(err error) error {
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "search attribute") {
		return err
	}
	return fmt.Errorf("%w (register sanwatch's search attributes: start a worker or run `starter search-attributes`; "+
		"or set temporal.search_attributes: false)", err)
}
