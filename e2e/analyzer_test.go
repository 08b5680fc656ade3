package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/workflows"
)

// TestFailingAnalyzerKeepsFindingOpen runs a real script as an external
// analyzer ("fans") that reports a stopped fan, then fails, then reports
// nothing. While it fails, its finding is unknown: the remediation's
// verification fails (the activity's failure names the analyzer) and the
// finding is neither cleared nor resolved; `starter check` names the
// analyzer. Once it runs and reports nothing, the finding resolves as usual.
func TestFailingAnalyzerKeepsFindingOpen(t *testing.T) {
	modeFile := filepath.Join(t.TempDir(), "mode")
	mode := func(m string) { require.NoError(t, os.WriteFile(modeFile, []byte(m), 0o644)) }
	script := fmt.Sprintf(`cat >/dev/null
case $(cat %s) in
find) echo '{"rule":"fan_stopped","component":"fan/1","severity":"warning","title":"fan/1 stopped"}' ;;
fail) echo 'fan table missing' >&2; exit 3 ;;
esac`, modeFile)
	h := newHarness(t, harnessOptions{extraYAML: fmt.Sprintf(`external:
  - name: fans
    command: ["/bin/sh", "-c", %q]
`, script)})
	writeFleet(t, h)
	acts := h.inProcess(nil)
	const fanFP = "box-0001/fan_stopped/fan/1"
	wid := workflows.RemediateWorkflowID(fanFP)

	mode("find")
	require.Contains(t, h.starter("ingest", faultyBatch(t, h)), "findings=2 new=2")
	h.smtp.WaitMessages(2, 30*time.Second)

	// The analyzer fails: verification of its finding fails, naming it.
	mode("fail")
	ctx := context.Background()
	require.Eventually(t, func() bool {
		d, err := h.c.DescribeWorkflowExecution(ctx, wid, "")
		require.NoError(t, err)
		for _, pa := range d.GetPendingActivities() {
			if strings.Contains(pa.GetLastFailure().GetMessage(), `unknown: external analyzer "fans" failed on box box-0001`) {
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "verification fails while the analyzer does")
	// Longer than resolve_after (2s) and several verify_every (1s): not resolved, not clearing.
	time.Sleep(5 * time.Second)
	st := stateOf(t, h, wid)
	require.NotEqual(t, workflows.PhaseClearing, st.Phase)
	require.NotEqual(t, workflows.PhaseResolved, st.Phase)
	require.True(t, st.ClearSince.IsZero())
	f, err := acts.Store.Finding(ctx, fanFP)
	require.NoError(t, err)
	require.Equal(t, finding.StatusOpen, f.Status)
	for _, m := range h.smtp.Messages() {
		require.False(t, strings.HasPrefix(m.Header.Get("Subject"), "Resolved: "), m.Header.Get("Subject"))
	}
	out, code := h.run("starter", "check")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, `external analyzer "fans" failed`)
	require.Contains(t, out, `on box box-0001 (its findings are unknown): run external analyzer "fans": exit status 3; stderr: fan table missing`)
	require.Regexp(t, `(?m)^\S+\s+box-0001\s+\S+\s+\S+\s+unknown\s`, h.starter("findings", "--status", "unknown"), "starter findings shows the finding as unknown")

	// It runs again and reports nothing: now the finding is clear, and resolves.
	mode("clear")
	require.Eventually(t, func() bool { return stateOf(t, h, wid).Phase == workflows.PhaseResolved }, 90*time.Second, 200*time.Millisecond)
	f, err = acts.Store.Finding(ctx, fanFP)
	require.NoError(t, err)
	require.Equal(t, finding.StatusResolved, f.Status)
}

// stateOf queries a remediation's state.
func stateOf(t *testing.T, h *harness, wid string) workflows.RemediationState {
	t.Helper()
	v, err := h.c.QueryWorkflow(context.Background(), wid, "", workflows.QueryState)
	require.NoError(t, err)
	var st workflows.RemediationState
	require.NoError(t, v.Get(&st))
	return st
}
