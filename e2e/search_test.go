package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sanwatch/sanwatch/internal/search"
)

// registered returns the custom search attributes of the harness namespace.
func (h *harness) registered() map[string]enumspb.IndexedValueType {
	h.t.Helper()
	resp, err := h.c.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: h.ts.GetDefaultNamespace()})
	require.NoError(h.t, err)
	return resp.GetCustomAttributes()
}

// TestWorkerRegistersSearchAttributes starts the worker binary on a namespace
// with and without a conflicting attribute, with temporal.search_attributes on
// and off.
func TestWorkerRegistersSearchAttributes(t *testing.T) {
	tests := []struct {
		name     string
		conflict bool     // SanwatchAcked registered as Keyword beforehand
		args     []string // extra worker flags
		wantErr  string   // %s is the namespace; empty: the worker starts
		wantAll  bool     // every sanwatch attribute is registered afterwards
	}{
		{name: "registers at start", wantAll: true},
		{
			name: "a conflicting attribute stops it", conflict: true,
			wantErr: `worker: register search attributes: search attribute SanwatchAcked is registered in namespace "%s" as Keyword, sanwatch needs Bool ` +
				`(to start without them, which makes scans and remediations unsearchable by box, site, rule and phase, ` +
				`set temporal.search_attributes: false or SANWATCH_TEMPORAL_SEARCH_ATTRIBUTES=false)`,
		},
		{name: "turned off, it starts anyway", conflict: true, args: []string{"--set", "temporal.search_attributes=false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSearchAttributes: true})
			writeFleet(t, h)
			if tc.conflict {
				_, err := h.c.OperatorService().AddSearchAttributes(context.Background(), &operatorservice.AddSearchAttributesRequest{
					Namespace:        h.ts.GetDefaultNamespace(),
					SearchAttributes: map[string]enumspb.IndexedValueType{"SanwatchAcked": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
				})
				require.NoError(t, err)
			}
			if tc.wantErr != "" {
				out, code := h.run("worker", append([]string{"--queues", "main"}, tc.args...)...)
				require.Equal(t, 1, code, out)
				require.Equal(t, fmt.Sprintf(tc.wantErr, h.ts.GetDefaultNamespace()), lastLine(out))
				require.NotContains(t, h.registered(), "SanwatchBox", "nothing registered after a conflict")
				return
			}
			w := h.startWorker("main", tc.args...)
			require.Eventually(t, func() bool { return strings.Contains(w.Output(), "worker started") }, 30*time.Second, 50*time.Millisecond, w.Output())
			got := h.registered()
			for name, typ := range search.Attributes() {
				if tc.wantAll {
					require.Equal(t, typ, got[name], name)
				} else if name != "SanwatchAcked" {
					require.NotContains(t, got, name)
				}
			}
		})
	}
}

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestStarterSearchAttributes: `starter search-attributes` registers and lists
// the attributes (twice: idempotent) and prints the dev-server flags.
func TestStarterSearchAttributes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for range 2 {
		out := h.starter("search-attributes")
		require.Contains(t, out, fmt.Sprintf("namespace %s: sanwatch's search attributes are registered", h.ts.GetDefaultNamespace()))
		require.Regexp(t, `SanwatchAcked\s+Bool`, out)
		require.Regexp(t, `SanwatchSite\s+Keyword`, out)
	}
	got := h.registered()
	for name, typ := range search.Attributes() {
		require.Equal(t, typ, got[name], name)
	}
	out := h.starter("search-attributes", "--dev-server-flags")
	require.Equal(t, strings.Join(search.DevServerFlags(), " "), strings.TrimSpace(out))
}

// TestScansAreSearchable starts scans of a site and of the whole fleet, by
// `starter scan` and by a schedule, and finds the site's scans with the
// visibility query SanwatchSite = "par1"; each scan shows its summary.
func TestScansAreSearchable(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	h.startWorker("main,analysis,email") // registers the search attributes
	h.starter("scan", "--selector", "site=par1", "--id", "scan-par1")
	h.starter("scan", "--id", "scan-all", "--no-remediate")
	h.starter("scan", "--selector", "site=par1", "--id", "scan-par1-unindexed", "--set", "temporal.search_attributes=false")
	h.starter("schedule", "create", "--id", "par1-hourly", "--every", "1h", "--selector", "site=par1", "--window", "24h")
	h.starter("schedule", "trigger", "par1-hourly")

	ctx := context.Background()
	var ids []string
	require.Eventually(t, func() bool {
		resp, err := h.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: h.ts.GetDefaultNamespace(), Query: `SanwatchSite = "par1"`,
		})
		if err != nil {
			return false
		}
		ids = ids[:0]
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		sort.Strings(ids)
		return len(ids) == 2
	}, 30*time.Second, 200*time.Millisecond, "found %v", ids)
	require.Equal(t, "scan-par1", ids[0])
	require.True(t, strings.HasPrefix(ids[1], "scan-par1-hourly-"), ids[1])

	tests := []struct {
		id, summary, details string
	}{
		{"scan-par1", "fleet scan of site par1, window 48h", "started by: starter scan"},
		{"scan-all", "fleet scan of all boxes, window 48h, no emails", "remediate: no: findings are stored only"},
		{"scan-par1-unindexed", "fleet scan of site par1, window 48h", "selector: site=par1"},
		{ids[1], "fleet scan of site par1, window 24h", "started by: schedule par1-hourly"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			d, err := h.c.DescribeWorkflowExecution(ctx, tc.id, "")
			require.NoError(t, err)
			md := d.GetExecutionConfig().GetUserMetadata()
			var summary, details string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetSummary(), &summary))
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetDetails(), &details))
			require.Equal(t, tc.summary, summary)
			require.Contains(t, details, tc.details)
		})
	}
}
