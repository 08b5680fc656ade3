package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sanwatch/sanwatch/internal/analysis"
)

const exampleFile = "sanwatch.example.yaml"

func TestExampleLoadsAsDefaultsExceptWhereItSaysSo(t *testing.T) {
	path, err := filepath.Abs(exampleFile)
	require.NoError(t, err)
	isolate(t)

	got, err := Load(LoadOptions{File: path, Env: noEnv})
	require.NoError(t, err)

	// The example says: box SW-DEMO-0001 warns 30 days before its pools
	// fill; the id is stored lower-case. Everything else is the default.
	want := Default()
	want.Overrides = map[string]analysis.Thresholds{
		"sw-demo-0001": {"capacity_forecast": {"warning_days": 30}},
	}
	require.Equal(t, want, got)
}

// TestExampleDocumentsEveryKey fails when a key is added to the code and not
// to the example, or appears there without a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	require.Len(t, doc.Content, 1)

	documented := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if prefix != "" {
				name = prefix + "." + k.Value
			}
			documented[name] = k.HeadComment != "" || k.LineComment != ""
			if v.Kind == yaml.MappingNode {
				walk(v, name)
			}
		}
	}
	walk(doc.Content[0], "")

	for _, k := range allKeys() {
		if k.name == keyPassword || k.name == keySamplesPassword || k.name == keySamplesBearer {
			continue // not allowed in a file; the comment above password_file says so
		}
		t.Run(k.name, func(t *testing.T) {
			has, ok := documented[k.name]
			require.True(t, ok, "key missing from %s", exampleFile)
			require.True(t, has, "key without a comment in %s", exampleFile)
		})
	}
	for _, section := range []string{sectionOverrides, sectionExternal, "temporal", "temporal.tls", "rules.firmware_advisory"} {
		t.Run(section, func(t *testing.T) {
			require.True(t, documented[section], "section without a comment in %s", exampleFile)
		})
	}
	t.Run("password explained", func(t *testing.T) {
		require.Contains(t, string(data), "The password is NOT allowed in this file: set SANWATCH_SMTP_PASSWORD or password_file.")
	})
}
