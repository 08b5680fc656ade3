package email

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/email/smtptest"
)

const oauthUser = "alerts@example.com"

// tokenScript writes a shell script that counts its runs in a file and
// prints body (a printf format; %s is the run number) and returns the argv
// that runs it and the counter's path.
func tokenScript(t *testing.T, body string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	counter := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "token.sh")
	src := fmt.Sprintf(`n=$(cat %[1]q 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > %[1]q
printf '%[2]s' "$n"
`, counter, body)
	require.NoError(t, os.WriteFile(script, []byte(src), 0o700))
	return []string{"/bin/sh", script}, counter
}

func runs(t *testing.T, counter string) int {
	t.Helper()
	data, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	var n int
	_, err = fmt.Sscan(string(data), &n)
	require.NoError(t, err)
	return n
}

// xoauthSender returns a sender that authenticates with XOAUTH2 over
// verified STARTTLS to srv, with tokens from ts.
func xoauthSender(t *testing.T, srv *smtptest.Server, ts TokenSource) *Sender {
	return newSender(t, srv, func(o *SMTPOptions) {
		o.TLS, o.CAFile, o.Auth, o.Username, o.Token = TLSStartTLS, srv.CAFile(), AuthXOAUTH2, oauthUser, ts
	})
}

func accept(tokens ...string) func(string) bool {
	return func(tok string) bool { return slices.Contains(tokens, tok) }
}

// TestSendXOAUTH2TokenFile: the token file is read again before every
// connection, so a refresher outside sanwatch can replace it.
func TestSendXOAUTH2TokenFile(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithXOAUTH2(oauthUser, accept("file-token-1", "file-token-2")))
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("file-token-1\n"), 0o600))
	s := xoauthSender(t, srv, &TokenFile{Path: path})
	m := testMessage()

	require.NoError(t, s.Send(context.Background(), m, render(t, m)))
	require.NoError(t, os.WriteFile(path, []byte(`{"access_token":"file-token-2"}`), 0o600))
	require.NoError(t, s.Send(context.Background(), m, render(t, m)))

	require.Equal(t, []string{"file-token-1", "file-token-2"}, srv.Tokens())
	got := srv.WaitMessages(2, 5*time.Second)
	require.Len(t, got, 2)
	for _, r := range got {
		require.Equal(t, oauthUser, r.User)
		require.True(t, r.TLS)
	}
}

// TestSendXOAUTH2TokenRefresh: the command's token is reused while it is
// fresh and the command runs again once it is about to expire.
func TestSendXOAUTH2TokenRefresh(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithXOAUTH2(oauthUser, accept("cmd-token-1", "cmd-token-2")))
	argv, counter := tokenScript(t, `{"access_token": "cmd-token-%s", "expires_in": 600}`)
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tc := &TokenCommand{Argv: argv, now: func() time.Time { return clock }}
	s := xoauthSender(t, srv, tc)
	m := testMessage()
	send := func() { require.NoError(t, s.Send(context.Background(), m, render(t, m))) }

	send()
	require.Equal(t, 1, runs(t, counter))
	clock = clock.Add(9*time.Minute - time.Second) // 10 minutes' lifetime, refreshed TokenRefreshMargin before expiry
	send()
	require.Equal(t, 1, runs(t, counter), "the token is reused while fresh")
	clock = clock.Add(time.Second)
	send()
	require.Equal(t, 2, runs(t, counter), "the command runs again before the token expires")

	require.Equal(t, []string{"cmd-token-1", "cmd-token-1", "cmd-token-2"}, srv.Tokens())
	require.Len(t, srv.WaitMessages(3, 5*time.Second), 3)
}

// TestSendXOAUTH2RefusedToken: a token the relay refuses is a temporary
// failure that drops the cached token; the retry runs the command again.
// The token is in no error.
func TestSendXOAUTH2RefusedToken(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithXOAUTH2(oauthUser, accept("cmd-token-2")))
	argv, counter := tokenScript(t, `cmd-token-%s`) // a bare token: cached DefaultTokenLifetime
	s := xoauthSender(t, srv, &TokenCommand{Argv: argv})
	m := testMessage()

	err := s.Send(context.Background(), m, render(t, m))
	var se *SendError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 535, se.Code)
	require.True(t, se.Temporary, "a refused token may be refreshed: %v", err)
	require.NotContains(t, fmt.Sprintf("%v %+v", err, err), "cmd-token-1")

	require.NoError(t, s.Send(context.Background(), m, render(t, m)))
	require.Equal(t, 2, runs(t, counter))
	require.Equal(t, []string{"cmd-token-1", "cmd-token-2"}, srv.Tokens())
}

// TestTokenCommandEnvironment: the command sees only TokenEnv, never the
// worker's secrets.
func TestTokenCommandEnvironment(t *testing.T) {
	t.Setenv("SANWATCH_SMTP_PASSWORD", "leaked-password")
	t.Setenv("SANWATCH_STORE_DSN", "postgres://u:leaked@db/x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "leaked-aws")
	t.Setenv("LANG", "C.UTF-8")
	out := filepath.Join(t.TempDir(), "env")
	tc := &TokenCommand{Argv: []string{"/bin/sh", "-c", `env > "$0"; echo tok`, out}}
	token, err := tc.Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, "tok", token)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	env := string(data)
	require.NotContains(t, env, "leaked")
	require.Contains(t, env, "LANG=C.UTF-8")
	require.Contains(t, env, "PATH=")
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		name, _, _ := strings.Cut(line, "=")
		// sh itself sets PWD, SHLVL and _.
		require.True(t, slices.Contains(TokenEnv, name) || slices.Contains([]string{"PWD", "SHLVL", "_"}, name), "unexpected variable %s", name)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	const secret = "s3cr3t-t0ken-value"
	tests := []struct {
		name    string
		script  string
		argv    []string
		timeout time.Duration
		wantErr string // the whole error after "run oauth2 token command <program>: "
	}{
		{name: "fails", script: `echo "login required: run az login" >&2; echo ` + secret + `; exit 3`,
			wantErr: `exit status 3 (stderr: "login required: run az login")`},
		{name: "prints nothing", script: `true`, wantErr: "invalid access token: empty"},
		{name: "prints two words", script: `echo "Bearer ` + secret + `"`,
			wantErr: "invalid access token: holds white space, control or non-ASCII characters"},
		{name: "json without token", script: `echo '{"token_type":"Bearer"}'`, wantErr: "access_token: invalid access token: empty"},
		{name: "broken json", script: `echo '{"access_token":"` + secret + `"'`, wantErr: "output starts with { but is not a JSON object"},
		{name: "bad expires_in", script: `echo '{"access_token":"` + secret + `","expires_in":-5}'`,
			wantErr: "expires_in -5: must be a positive number of seconds"},
		{name: "too much output", script: `yes ` + secret + ` | head -c 100000`, wantErr: "printed more than 65536 bytes"},
		{name: "hangs", script: `sleep 30`, timeout: 300 * time.Millisecond, wantErr: "timed out after 300ms"},
		{name: "hangs with a child holding stdout", script: `(sleep 30) & sleep 30`, timeout: 300 * time.Millisecond, wantErr: "timed out after 300ms"},
		{name: "no such program", argv: []string{"/nonexistent/get-token"},
			wantErr: `fork/exec /nonexistent/get-token: no such file or directory`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv := tc.argv
			if argv == nil {
				argv = []string{"/bin/sh", "-c", tc.script}
			}
			c := &TokenCommand{Argv: argv, Timeout: tc.timeout}
			start := time.Now()
			_, err := c.Token(context.Background())
			require.EqualError(t, err, "run oauth2 token command "+argv[0]+": "+tc.wantErr)
			require.NotContains(t, err.Error(), secret)
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name         string
		out          string
		wantToken    string
		wantLifetime time.Duration
		wantErr      string
	}{
		{name: "bare", out: "ya29.a0AfH6SM\n", wantToken: "ya29.a0AfH6SM"},
		{name: "json", out: `{"access_token":"eyJ0eXAi.x-y_z","expires_in":3599,"token_type":"Bearer"}`,
			wantToken: "eyJ0eXAi.x-y_z", wantLifetime: 3599 * time.Second},
		{name: "json expires_in as a string", out: `{"access_token":"t","expires_in":"3600"}`, wantToken: "t", wantLifetime: time.Hour},
		{name: "json without expiry", out: ` {"access_token":"t"} `, wantToken: "t"},
		{name: "empty", out: "\n", wantErr: "invalid access token: empty"},
		{name: "control character", out: "t\x01k", wantErr: "invalid access token: holds white space, control or non-ASCII characters"},
		{name: "expires_in zero", out: `{"access_token":"t","expires_in":0}`, wantErr: "expires_in 0: must be a positive number of seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token, lifetime, err := parseToken([]byte(tc.out))
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantToken, token)
			require.Equal(t, tc.wantLifetime, lifetime)
		})
	}
}

func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	missing := filepath.Join(dir, "missing")
	empty := write("empty", "\n")
	big := write("big", strings.Repeat("x", MaxTokenBytes+1))
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "missing", path: missing, wantErr: "read oauth2 token file: open " + missing + ": no such file or directory"},
		{name: "empty", path: empty, wantErr: "read oauth2 token file " + empty + ": invalid access token: empty"},
		{name: "too big", path: big, wantErr: "read oauth2 token file " + big + ": larger than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&TokenFile{Path: tc.path}).Token(context.Background())
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

// TestTokenCommandCache: how long a command's token is reused, by what the
// command says of its lifetime.
func TestTokenCommandCache(t *testing.T) {
	tests := []struct {
		name      string
		out       string
		wantRunAt time.Duration
	}{
		{name: "an hour: refreshed a minute before expiry", out: `{"access_token":"t","expires_in":3600}`, wantRunAt: 59 * time.Minute},
		{name: "a minute: refreshed a quarter before expiry", out: `{"access_token":"t","expires_in":60}`, wantRunAt: 45 * time.Second},
		{name: "bare token: DefaultTokenLifetime", out: `t`, wantRunAt: DefaultTokenLifetime - TokenRefreshMargin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv, counter := tokenScript(t, strings.ReplaceAll(tc.out, "%", "%%"))
			start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			clock := start
			c := &TokenCommand{Argv: argv, now: func() time.Time { return clock }}
			for _, at := range []time.Duration{0, tc.wantRunAt - time.Second, tc.wantRunAt} {
				clock = start.Add(at)
				_, err := c.Token(context.Background())
				require.NoError(t, err)
			}
			require.Equal(t, 2, runs(t, counter), "ran at 0 and at %s only", tc.wantRunAt)
			c.Invalidate()
			_, err := c.Token(context.Background())
			require.NoError(t, err)
			require.Equal(t, 3, runs(t, counter), "Invalidate drops the token")
		})
	}
}
