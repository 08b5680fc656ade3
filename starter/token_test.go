package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/receiver"
)

// TestTokenCommands makes, lists and revokes tokens in a fresh SQLite store:
// the token is printed once, alone on stdout, and never listed; refusals
// name the flag.
func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SANWATCH_INVENTORY", filepath.Join(dir, "none.yaml"))
	starter := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, "--data-dir", dir, "--set", "store.path="+filepath.Join(dir, "sanwatch.db")), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, tok, stderr := starter("token", "create", "--box", "box-0001", "--label", "rack 4", "--expires", "720h")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^swt_[A-Za-z0-9_-]{43}\n$`, tok, "only the token on stdout")
	m := regexp.MustCompile(`^token (tok_[0-9a-f]{16}) for box box-0001 \(expires \S+\); it is shown once: keep it on the box\n$`).FindStringSubmatch(stderr)
	require.NotNil(t, m, stderr)
	id := m[1]
	code, _, stderr = starter("token", "create", "--box", "box-0002")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "(never expires)")

	code, list, stderr := starter("token", "list")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^`+id+`\s+box-0001\s+valid\s+\S+\s+\S+\s+-\s+rack 4$`, list)
	require.Regexp(t, `(?m)^tok_[0-9a-f]{16}\s+box-0002\s+valid\s+\S+\s+never\s+-\s*$`, list)
	require.NotContains(t, list, strings.TrimSpace(tok))
	require.NotContains(t, list, receiver.HashToken(strings.TrimSpace(tok)))
	code, list, _ = starter("token", "list", "--box", "box-0002", "--json")
	require.Equal(t, 0, code)
	require.Equal(t, 1, strings.Count(list, "\n"))
	require.NotContains(t, list, "hash")

	code, out, stderr := starter("token", "revoke", "--id", id)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "revoked 1 token(s)\n", out)
	code, list, _ = starter("token", "list", "--box", "box-0001")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^`+id+`\s+box-0001\s+revoked\s`, list)

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"token", "create"}, "token create: --box is required"},
		{[]string{"token", "create", "--box", "b", "--expires", "-1h"}, "token create: --expires -1h0m0s: must not be negative (0: never)"},
		{[]string{"token", "revoke"}, "token revoke: give --box or --id, not both"},
		{[]string{"token", "revoke", "--box", "b", "--id", "x"}, "token revoke: give --box or --id, not both"},
		{[]string{"token", "revoke", "--id", id}, "token revoke: no token " + id + " that is not revoked already"},
	} {
		code, _, stderr := starter(tc.args...)
		require.Equal(t, 1, code, tc.args)
		require.Equal(t, "starter: "+tc.err+"\n", stderr, tc.args)
	}
}
