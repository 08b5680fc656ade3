package codec

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

const testToken = "0123456789abcdef0123456789abcdef"

func TestHandler(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	sealed, err := c.Encode([]*commonpb.Payload{payload(t, "owner@example.com")})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: sealed})
	require.NoError(t, err)
	var logs bytes.Buffer
	srv := httptest.NewServer(Handler(c, ServerOptions{
		Token: testToken, CORSOrigins: []string{"http://localhost:8233"},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}))
	defer srv.Close()
	// The response holds the decoded payload: data is base64 in proto JSON.
	clear := base64.StdEncoding.EncodeToString([]byte(`"owner@example.com"`))

	for _, tc := range []struct {
		name       string
		method     string
		path       string
		headers    map[string]string
		body       []byte
		wantStatus int
		wantBody   string // substring of the response
		wantHeader map[string]string
	}{
		{name: "no auth header", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusUnauthorized,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="sanwatch codec"`}},
		{name: "wrong token", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusUnauthorized,
			headers: map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(testToken))}},
		{name: "token without Bearer", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusUnauthorized,
			headers: map[string]string{"Authorization": testToken}},
		{name: "encode needs auth too", method: http.MethodPost, path: "/encode", body: body, wantStatus: http.StatusUnauthorized},
		{name: "decode", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusOK,
			headers: map[string]string{"Authorization": "Bearer " + testToken, "X-Namespace": "default"}, wantBody: clear},
		{name: "decode under a prefix", method: http.MethodPost, path: "/default/decode", body: body, wantStatus: http.StatusOK,
			headers: map[string]string{"Authorization": "Bearer " + testToken}, wantBody: clear},
		{name: "decode from the UI origin", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusOK,
			headers:    map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://localhost:8233"},
			wantHeader: map[string]string{"Access-Control-Allow-Origin": "http://localhost:8233"}},
		{name: "preflight from the UI", method: http.MethodOptions, path: "/decode", wantStatus: http.StatusNoContent,
			headers: map[string]string{"Origin": "http://localhost:8233", "Access-Control-Request-Headers": "authorization,x-namespace"},
			wantHeader: map[string]string{"Access-Control-Allow-Origin": "http://localhost:8233",
				"Access-Control-Allow-Headers": "Authorization, Content-Type, X-Namespace", "Access-Control-Allow-Methods": "POST, OPTIONS"}},
		{name: "preflight from another origin", method: http.MethodOptions, path: "/decode", wantStatus: http.StatusForbidden,
			headers: map[string]string{"Origin": "https://evil.example"}, wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "another origin gets no CORS header", method: http.MethodPost, path: "/decode", body: body, wantStatus: http.StatusOK,
			headers:    map[string]string{"Authorization": "Bearer " + testToken, "Origin": "https://evil.example"},
			wantHeader: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "bad body", method: http.MethodPost, path: "/decode", body: []byte("{"), wantStatus: http.StatusBadRequest,
			headers: map[string]string{"Authorization": "Bearer " + testToken}},
		{name: "GET decode", method: http.MethodGet, path: "/decode", wantStatus: http.StatusNotFound},
		{name: "other path", method: http.MethodPost, path: "/other", wantStatus: http.StatusNotFound,
			headers: map[string]string{"Authorization": "Bearer " + testToken}},
		{name: "health", method: http.MethodGet, path: "/healthz", wantStatus: http.StatusOK, wantBody: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			require.NoError(t, err)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.wantStatus, resp.StatusCode, "body: %s", got)
			require.Contains(t, string(got), tc.wantBody)
			if resp.StatusCode != http.StatusOK {
				require.NotContains(t, string(got), clear)
			}
			for k, v := range tc.wantHeader {
				require.Equal(t, v, resp.Header.Get(k), "header %s", k)
			}
		})
	}
	require.Contains(t, logs.String(), "reason=\"no Authorization header\"")
	require.Contains(t, logs.String(), "reason=\"wrong bearer token\"")
	require.NotContains(t, logs.String(), testToken, "the token is never logged")
	require.NotContains(t, logs.String(), strings.Repeat("x", len(testToken)), "a wrong token is never logged")
}

// TestHandlerDecodesThroughRemoteCodec uses the SDK's own client of the codec
// protocol, as the temporal CLI does with --codec-endpoint and --codec-auth.
func TestHandlerDecodesThroughRemoteCodec(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	srv := httptest.NewServer(Handler(c, ServerOptions{Token: testToken, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	sealed, err := c.Encode([]*commonpb.Payload{payload(t, "secret-note-xyz")})
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		auth    string
		want    string
		wantErr string
	}{
		{name: "with token", auth: "Bearer " + testToken, want: "secret-note-xyz"},
		{name: "without token", wantErr: "Unauthorized: unauthorized: send Authorization: Bearer <token of codec.auth_token_file>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
				Endpoint: srv.URL,
				ModifyRequest: func(r *http.Request) error {
					if tc.auth != "" {
						r.Header.Set("Authorization", tc.auth)
					}
					return nil
				},
			})
			out, err := remote.Decode(sealed)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var got string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out[0], &got))
			require.Equal(t, tc.want, got)
		})
	}
}

func TestHandlerWithoutToken(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	srv := httptest.NewServer(Handler(c, ServerOptions{Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	sealed, err := c.Encode([]*commonpb.Payload{payload(t, "x")})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: sealed})
	require.NoError(t, err)
	resp, err := http.Post(srv.URL+"/decode", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "Origin", resp.Header.Get("Vary"))

	// DNS rebinding: a page on evil.example whose name now points at
	// 127.0.0.1 sends its own host name; without a token that is refused.
	for host, want := range map[string]int{"evil.example:8081": http.StatusForbidden, "localhost:8081": http.StatusOK, "[::1]:8081": http.StatusOK} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, host)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     string
		token    string
		insecure bool
		wantErr  string
	}{
		{name: "loopback v4 without token", addr: "127.0.0.1:8081"},
		{name: "loopback v6 without token", addr: "[::1]:8081"},
		{name: "localhost without token", addr: "localhost:8081"},
		{name: "all interfaces with token", addr: "0.0.0.0:8081", token: testToken},
		{name: "all interfaces without token", addr: "0.0.0.0:8081",
			wantErr: "codec server without codec.auth_token_file listens only on loopback: 0.0.0.0:8081 is not loopback; set codec.auth_token_file (or --insecure-no-auth where the port is published on loopback only)"},
		{name: "empty host without token", addr: ":8081",
			wantErr: "codec server without codec.auth_token_file listens only on loopback: :8081 is not loopback; set codec.auth_token_file (or --insecure-no-auth where the port is published on loopback only)"},
		{name: "all interfaces, insecure on purpose", addr: "0.0.0.0:8081", insecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckListen(tc.addr, tc.token, tc.insecure)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
			require.ErrorIs(t, err, ErrNoAuth)
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	for _, tc := range []struct {
		name, path, want, wantErr string
	}{
		{name: "trailing newline", path: write("ok", testToken+"\n"), want: testToken},
		{name: "short", path: write("short", "abc\n"),
			wantErr: "codec auth token file " + filepath.Join(dir, "short") + ": the token is 3 characters, must be at least 16 (make one with `openssl rand -hex 32`)"},
		{name: "two words", path: write("two", testToken+" "+testToken),
			wantErr: "codec auth token file " + filepath.Join(dir, "two") + ": the token must be one word (no white space)"},
		{name: "missing", path: filepath.Join(dir, "none"),
			wantErr: "read codec auth token file: open " + filepath.Join(dir, "none") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadToken(tc.path)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), testToken)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
