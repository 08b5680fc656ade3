package app

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/sanwatch/sanwatch/activities"
	"github.com/sanwatch/sanwatch/config"
)

// TestNewWorkersRoles: one worker per role; the main queue, where
// StoreBatch runs, starts without ingest.roots (batches come from the batch
// store; a batch named by a path is then refused by StoreBatch), and an
// unknown role is refused.
func TestNewWorkersRoles(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cases := []struct {
		name    string
		queues  []string
		roots   []string
		workers int
		err     string
	}{
		{name: "main without roots", queues: []string{RoleMain, RoleEmail}, workers: 2},
		{name: "unknown role", queues: []string{RoleMain, "mail"}, err: `worker.queues: unknown role "mail": allowed main, analysis, email`},
		{name: "main with roots", queues: []string{RoleMain}, roots: []string{t.TempDir()}, workers: 1},
		{name: "analysis and email without roots", queues: []string{RoleAnalysis, RoleEmail}, workers: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Worker.Queues, cfg.Ingest.Roots = tc.queues, tc.roots
			ws, err := NewWorkers(c, cfg, &activities.Activities{})
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, ws, tc.workers)
		})
	}
}
