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

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/workflows"
)

// poolBatch writes 5-minute pool samples of boxes from start for n points.
func poolBatch(t *testing.T, h *harness, name string, start time.Time, n int, boxes ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("time,box,component,metric,value\n")
	for i := range n {
		at := start.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339)
		for _, box := range boxes {
			fmt.Fprintf(&b, "%s,%s,pool/p0,pool.used_bytes,%.0f\n%s,%s,pool/p0,pool.total_bytes,%.0f\n", at, box, 40e12, at, box, 100e12)
		}
	}
	p := filepath.Join(h.dir, name)
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// TestSilentBox: a box stops reporting while the rest of the fleet goes on;
// the next scan raises a critical silent_box finding and emails its owner;
// when its data returns, the remediation verifies it clear and sends
// "Resolved:".
func TestSilentBox(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	require.NoError(t, os.MkdirAll(filepath.Join(h.dir, "sim"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(h.dir, "sim", "fleet.yaml"), []byte(`boxes:
  - {id: box-0001, model: SW-7000, firmware: 4.3.1, site: par1, owners: [owner1@example.com]}
  - {id: box-0002, model: SW-7000, firmware: 4.3.1, site: par1, owners: [owner2@example.com]}
`), 0o644))
	h.startWorker("main,analysis,email")

	// Six hours of both boxes, then two more of box-0002 alone.
	h.starter("ingest", poolBatch(t, h, "both.csv", t0, 72, "box-0001", "box-0002"))
	h.starter("ingest", poolBatch(t, h, "only2.csv", t0.Add(6*time.Hour), 24, "box-0002"))
	require.Empty(t, h.smtp.Messages(), "nothing wrong yet as far as ingest could see")

	// The scheduled scan sees the box that sent nothing.
	out := h.starter("scan", "--id", "scan-silent")
	require.Contains(t, out, "critical=1")
	fp := finding.Fingerprint("box-0001", finding.RuleSilentBox, analysis.SilentComponent)
	msgs := h.smtp.WaitMessages(1, 30*time.Second)
	require.Len(t, msgs, 1)
	subject := msgs[0].Header.Get("Subject")
	require.Equal(t, fp, msgs[0].Header.Get("X-Sanwatch-Fingerprint"))
	require.Contains(t, subject, "[CRITICAL] box-0001")
	require.Contains(t, subject, "has sent nothing for 2.0 hours")
	require.Equal(t, []string{"owner1@example.com"}, msgs[0].To)

	// Its data comes back (late, with the hours it missed): verified clear, resolved.
	h.starter("ingest", poolBatch(t, h, "back1.csv", t0.Add(6*time.Hour), 24, "box-0001"))
	msgs = h.smtp.WaitMessages(2, 60*time.Second)
	require.Len(t, msgs, 2)
	require.True(t, strings.HasPrefix(msgs[1].Header.Get("Subject"), "Resolved: "), msgs[1].Header.Get("Subject"))
	require.Equal(t, fp, msgs[1].Header.Get("X-Sanwatch-Fingerprint"))
	var final workflows.RemediationState
	require.NoError(t, h.c.GetWorkflow(context.Background(), workflows.RemediateWorkflowID(fp), "").Get(context.Background(), &final))
	require.Equal(t, workflows.PhaseResolved, final.Phase)
}
