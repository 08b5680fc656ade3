package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStarterPost: `starter post`, the box side of calling home, posts each
// file with its box's token from --tokens-dir, and --wait follows every
// batch to the end of its ingest; a box without a token is a clear failure
// that does not stop the others.
func TestStarterPost(t *testing.T) {
	addr := freeAddr(t)
	h := newHarness(t, harnessOptions{extraYAML: receiverYAML(addr)})
	h.startWorker("main,analysis,email")
	h.startReceiver(addr)

	tokens := filepath.Join(h.dir, "tokens")
	require.NoError(t, os.MkdirAll(tokens, 0o700))
	files := filepath.Join(h.dir, "outbox")
	require.NoError(t, os.MkdirAll(files, 0o700))
	for _, box := range []string{"box-0001", "box-0002"} {
		require.NoError(t, os.WriteFile(filepath.Join(tokens, box+".token"), []byte(h.newToken(box)+"\n"), 0o600))
	}
	for i, box := range []string{"box-0001", "box-0001", "box-0002", "box-0003"} {
		require.NoError(t, os.WriteFile(filepath.Join(files, box+"-"+string(rune('a'+i))+".csv"), boxBatch(box, i, 10), 0o600))
	}

	out, code := h.run("starter", "post", "--url", "http://"+addr, "--tokens-dir", tokens, "--wait", "2m", files)
	require.Equal(t, 1, code, out)
	require.Regexp(t, `(?m)^ok   .*box-0001-a\.csv box=box-0001 batch=[0-9a-f]{16} workflow=ingest-[0-9a-f]+ status=started then stored$`, out)
	require.Regexp(t, `(?m)^ok   .*box-0001-b\.csv box=box-0001 .* then stored$`, out)
	require.Regexp(t, `(?m)^ok   .*box-0002-c\.csv box=box-0002 .* then stored$`, out)
	require.Regexp(t, `(?m)^FAIL .*box-0003-d\.csv: no token for box box-0003 in --tokens-dir$`, out)
	require.Contains(t, out, "post: files=4 ok=3 failed=1 duplicates=0")
	require.NotRegexp(t, regexp.MustCompile(`swt_[A-Za-z0-9_-]{20,}`), out, "no token is printed")

	// Posting the same files again: the receiver says they are duplicates.
	out, code = h.run("starter", "post", "--url", "http://"+addr, "--tokens-dir", tokens, filepath.Join(files, "box-0001-a.csv"))
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "(already received)")
}
