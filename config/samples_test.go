package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSamplesValidation: samples.* errors name the key, the value and what
// is allowed; nothing is checked while the backend is sql.
func TestSamplesValidation(t *testing.T) {
	const prom = "samples:\n  backend: prometheus\n  url: http://vm:8428\n"
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"unknown backend", "samples:\n  backend: influx\n", nil,
			`config: samples.backend = "influx": must be sql or prometheus`},
		{"no url", "samples:\n  backend: prometheus\n", nil,
			`config: samples.url = "": must be http(s)://host[:port][/path] when samples.backend is prometheus`},
		{"credentials in the url", "samples:\n  backend: prometheus\n  url: http://u:SECRET@vm:8428\n", nil,
			`config: samples.url = "": must not hold credentials: use samples.username and samples.password_file`},
		{"unknown api", prom + "  api: graphite\n", nil,
			`config: samples.api = "graphite": must be victoriametrics or prometheus`},
		{"zero max points", prom + "  max_points: 0\n", nil,
			`config: samples.max_points = 0: must be >= 1`},
		{"zero timeout", prom + "  timeout: 0s\n", nil,
			`config: samples.timeout = 0s: must be >0`},
		{"username without password", prom + "  username: sanwatch\n", nil,
			`config: samples.username = "sanwatch": needs samples.password (SANWATCH_SAMPLES_PASSWORD or samples.password_file), and the password a username`},
		{"basic and bearer", prom + "  username: sanwatch\n", map[string]string{"SANWATCH_SAMPLES_PASSWORD": "pw", "SANWATCH_SAMPLES_BEARER_TOKEN": "tok"},
			`config: samples.username = "sanwatch": must be empty with samples.bearer_token: one kind of auth`},
		{"cert without key", prom + "  tls:\n    cert_file: c.pem\n", nil,
			"config: samples.tls.cert_file = \"c.pem\": goes with samples.tls.key_file\nconfig: samples.tls.cert_file = \"c.pem\": must be an existing file"},
		{"password in the file", prom + "  password: pw\n", nil,
			`config: samples.password: set it with SANWATCH_SAMPLES_PASSWORD or samples.password_file, not in the config file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(tc.file), 0o600))
			c, err := Load(LoadOptions{Env: envOf(tc.env), Flags: flags(t)})
			require.EqualError(t, err, tc.want)
			require.Nil(t, c)
		})
	}
}

// TestSamplesSecretsFromFiles: the password and the bearer token come from
// files, and the effective configuration never shows them.
func TestSamplesSecretsFromFiles(t *testing.T) {
	dir := isolate(t)
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("PW-FROM-FILE\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte("samples:\n  backend: prometheus\n  url: https://vm:8428\n  username: sanwatch\n  password_file: "+pw+"\n"), 0o600))
	c, err := Load(LoadOptions{Env: envOf(nil), Flags: flags(t)})
	require.NoError(t, err)
	require.Equal(t, "PW-FROM-FILE", c.Samples.Password)
	require.NotContains(t, c.YAML(), "PW-FROM-FILE")
	require.Contains(t, c.YAML(), "password: <redacted>")
	require.True(t, c.Samples.FlushWrites)
	require.Equal(t, 1_000_000, c.Samples.MaxPoints)
}
