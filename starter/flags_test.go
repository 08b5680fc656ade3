package main

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// secretFlag matches flag names that would carry a secret on argv. A flag
// naming a file that holds one (…-file) is fine.
var secretFlag = regexp.MustCompile(`(?i)(password|passwd|secret|token|dsn|api-?key|credential|keys?$)`)

// TestNoSecretFlags walks every starter command and requires that none has
// a flag taking a secret: argv is visible to every user of the machine and
// kept in shell history. Secrets come from the environment or files.
func TestNoSecretFlags(t *testing.T) {
	root := (&cli{stdout: io.Discard, stderr: io.Discard}).root()
	seen := map[string]bool{}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		visit := func(f *pflag.Flag) {
			name := strings.TrimSpace(cmd.CommandPath() + " --" + f.Name)
			seen[name] = true
			if strings.HasSuffix(f.Name, "-file") || strings.HasSuffix(f.Name, "-dir") {
				// names a file or a directory of files holding secrets
				return
			}
			if secretFlag.MatchString(f.Name) {
				t.Errorf("%s looks like it takes a secret on the command line", name)
			}
		}
		cmd.LocalFlags().VisitAll(visit)
		cmd.PersistentFlags().VisitAll(visit)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	require.True(t, seen["starter --set"], "the walk sees the root's persistent flags")
	require.True(t, seen["starter ack --note"], "the walk sees subcommand flags")
}
