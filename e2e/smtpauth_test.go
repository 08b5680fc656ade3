package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/email/smtptest"
)

// TestWorkerSMTPVerifiedTLSAndXOAUTH2 runs the worker binary against a relay
// that speaks STARTTLS with a certificate from a CA made at test time and
// takes only XOAUTH2: smtp.ca_file and smtp.server_name verify it (no
// insecure_skip_verify), and smtp.oauth2_token_command supplies the token.
// The finding's email arrives over TLS, authenticated with the command's
// token, and neither the token nor the worker's secrets reach its log.
func TestWorkerSMTPVerifiedTLSAndXOAUTH2(t *testing.T) {
	const user = "alerts@sanwatch.test"
	// The worker inherits this; its token command must not.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "e2e-inherited-secret")
	h := newHarness(t, harnessOptions{})
	writeFleet(t, h)
	relay := smtptest.Start(t, smtptest.WithXOAUTH2(user, func(tok string) bool { return strings.HasPrefix(tok, "e2e-token-") }))

	// The token command: a script run without a shell; it prints JSON as a
	// token endpoint does, and records what environment it got.
	dir := t.TempDir()
	envOut := filepath.Join(dir, "env")
	script := filepath.Join(dir, "get token.sh") // a space, quoted in the command
	require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf(
		"env > %q\nprintf '{\"access_token\":\"e2e-token-%%s\",\"expires_in\":3600}' \"$$\"\n", envOut)), 0o700))

	w := h.startWorker("main,analysis,email",
		"--set", "smtp.port="+strconv.Itoa(relay.Port()),
		"--set", "smtp.tls=starttls",
		"--set", "smtp.ca_file="+relay.CAFile(),
		"--set", "smtp.server_name="+smtptest.CertName,
		"--set", "smtp.auth=xoauth2",
		"--set", "smtp.username="+user,
		"--set", fmt.Sprintf("smtp.oauth2_token_command=/bin/sh '%s'", script))
	out := h.starter("ingest", faultyBatch(t, h))
	require.Contains(t, out, "findings=1 new=1")

	msgs := relay.WaitMessages(1, time.Minute)
	require.Len(t, msgs, 1, "worker log:\n%s", w.Output())
	require.True(t, msgs[0].TLS, "delivered over verified TLS")
	require.Equal(t, user, msgs[0].User, "authenticated with XOAUTH2")
	tokens := relay.Tokens()
	require.NotEmpty(t, tokens)
	for _, tok := range tokens {
		require.NotContains(t, w.Output(), tok, "the token is never logged")
	}
	env, err := os.ReadFile(envOut)
	require.NoError(t, err)
	require.NotContains(t, string(env), "e2e-inherited-secret", "the token command gets a minimal environment")
	require.Contains(t, string(env), "PATH=")
	require.Empty(t, h.smtp.Messages(), "nothing went to the harness's plain relay")
}
