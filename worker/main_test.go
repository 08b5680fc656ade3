package main

import (
	"regexp"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// secretFlag matches flag names that would carry a secret on argv. A flag
// naming a file that holds one (…-file) is fine.
var secretFlag = regexp.MustCompile(`(?i)(password|passwd|secret|token|dsn|api-?key|credential|keys?$)`)

// TestNoSecretFlags: the worker has no flag that takes a secret; secrets
// come from the environment or files (config refuses them on --set).
func TestNoSecretFlags(t *testing.T) {
	var names []string
	newFlagSet().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	require.Contains(t, names, "metrics-addr", "the walk sees the worker's flags")
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			if regexp.MustCompile(`-file$`).MatchString(n) {
				return
			}
			require.False(t, secretFlag.MatchString(n), "flag --%s looks like it takes a secret on the command line", n)
		})
	}
}
