package config

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// codecKey returns an "id:base64" key line of n bytes of b.
func codecKey(id string, b byte, n int) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, n))
}

func TestCodecValidation(t *testing.T) {
	isolate(t)
	good := writeFile(t, "codec.keys", "# current first\n"+codecKey("k2", 2, 32)+"\n"+codecKey("k1", 1, 32)+"\n")
	short := codecKey("old-2023", 3, 16)
	shortFile := writeFile(t, "short.keys", codecKey("k2", 2, 32)+"\n"+short+"\n")
	dupFile := writeFile(t, "dup.keys", codecKey("k1", 1, 32)+"\n"+codecKey("k1", 2, 32)+"\n")
	token := writeFile(t, "codec.token", strings.Repeat("t", 32))
	missing := filepath.Join(t.TempDir(), "missing.keys")
	const lengthMsg = "is 16 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    Codec  // checked when wantErr is empty
		wantErr string // exact
	}{
		{name: "key file", args: []string{"--set", "codec.keys_file=" + good, "--set", "codec.auth_token_file=" + token},
			want: Codec{KeysFile: good, ServerAddr: "127.0.0.1:8081", AuthTokenFile: token, CORSOrigins: []string{"http://127.0.0.1:8233", "http://localhost:8233"}}},
		{name: "keys from env", env: map[string]string{"SANWATCH_CODEC_KEYS": codecKey("k1", 1, 32) + "," + codecKey("k0", 0, 32)},
			want: Codec{Keys: codecKey("k1", 1, 32) + "," + codecKey("k0", 0, 32), ServerAddr: "127.0.0.1:8081", CORSOrigins: []string{"http://127.0.0.1:8233", "http://localhost:8233"}}},
		{name: "wrong length in the key file", args: []string{"--set", "codec.keys_file=" + shortFile},
			wantErr: `config: codec.keys_file = "` + shortFile + `": key "old-2023" (line 2): ` + lengthMsg},
		{name: "wrong length in env", env: map[string]string{"SANWATCH_CODEC_KEYS": short},
			wantErr: `config: codec.keys = "<redacted>": key "old-2023" (entry 1): ` + lengthMsg},
		{name: "duplicate id", args: []string{"--set", "codec.keys_file=" + dupFile},
			wantErr: `config: codec.keys_file = "` + dupFile + `": key "k1" (line 2): id is used by an earlier key`},
		{name: "missing key file", args: []string{"--set", "codec.keys_file=" + missing},
			wantErr: `config: codec.keys_file = "` + missing + `": must be an existing file`},
		{name: "file and env", args: []string{"--set", "codec.keys_file=" + good}, env: map[string]string{"SANWATCH_CODEC_KEYS": codecKey("k1", 1, 32)},
			wantErr: `config: codec.keys_file = "` + good + `": must not be set together with SANWATCH_CODEC_KEYS: keep the keys in one place`},
		{name: "bad server addr", args: []string{"--set", "codec.server_addr=8081"},
			wantErr: `config: codec.server_addr = "8081": must be host:port`},
		{name: "missing token file", args: []string{"--set", "codec.auth_token_file=" + missing},
			wantErr: `config: codec.auth_token_file = "` + missing + `": must be an existing file`},
		{name: "origin with a path", args: []string{"--set", "codec.cors_origins=http://localhost:8233/namespaces"},
			wantErr: `config: codec.cors_origins = "http://localhost:8233/namespaces": must be origins such as http://localhost:8233 (scheme://host[:port], no path)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(LoadOptions{Env: envOf(tc.env), Flags: flags(t, tc.args...)})
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				// Never the key material, from the file or the env.
				for _, k := range []string{short, codecKey("k1", 1, 32), codecKey("k2", 2, 32)} {
					_, b64, _ := strings.Cut(k, ":")
					require.NotContains(t, err.Error(), b64)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.Codec)
			require.NotContains(t, c.YAML(), strings.SplitN(codecKey("k1", 1, 32), ":", 2)[1], "starter config redacts codec.keys")
		})
	}
}
