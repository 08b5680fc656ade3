package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/metrics"
	"github.com/sanwatch/sanwatch/internal/store"
)

// TestVerifyWhileAnalyzerFails runs real scripts as external analyzers:
// "fans" reports fan_stopped, reports nothing or fails as a mode file
// says; "psu" always succeeds and reports psu_hot while its own mode file
// says so. A finding of a failed analyzer is unknown, never cleared:
// VerifyFinding returns a retryable AnalyzerFailed error for it, while the
// findings of the analyzer that ran (and the built-in ones) are judged as
// usual. The failure is counted per analyzer and stored for starter check.
func TestVerifyWhileAnalyzerFails(t *testing.T) {
	f := newFixture(t)
	mode := func(name, m string) { require.NoError(t, os.WriteFile(filepath.Join(f.dir, name), []byte(m), 0o644)) }
	fans := f.write(t, "fans.sh", `cat >/dev/null
case $(cat `+filepath.Join(f.dir, "fans.mode")+`) in
find) echo '{"rule":"fan_stopped","component":"fan/1","severity":"critical"}' ;;
fail) echo 'fan table missing' >&2; exit 3 ;;
esac
`)
	psu := f.write(t, "psu.sh", `cat >/dev/null
if [ "$(cat `+filepath.Join(f.dir, "psu.mode")+`)" = find ]; then echo '{"rule":"psu_hot","component":"psu/0"}'; fi
`)
	eng, err := analysis.New(analysis.Options{External: []analysis.ExternalAnalyzer{
		{Name: "fans", Command: []string{"sh", fans}},
		{Name: "psu", Command: []string{"sh", psu}},
	}})
	require.NoError(t, err)
	f.acts.Engine = eng
	f.acts.Metrics = metrics.New()
	p := f.write(t, "b.csv", latencyCSV("box-0001"))
	_, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
	require.NoError(t, err)

	const fanFP, psuFP = "box-0001/fan_stopped/fan/1", "box-0001/psu_hot/psu/0"
	mode("fans.mode", "find")
	mode("psu.mode", "find")
	_, err = f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: []string{"box-0001"}})
	require.NoError(t, err)

	steps := []struct {
		name      string
		fans, psu string // modes
		fp        string
		present   bool
		err       string // whole message of an AnalyzerFailed error
	}{
		{name: "fans fails: its finding is unknown", fans: "fail", psu: "find", fp: fanFP,
			err: `verify box-0001/fan_stopped/fan/1: unknown: external analyzer "fans" failed on box box-0001: run external analyzer "fans": exit status 3; stderr: fan table missing`},
		{name: "fans fails: psu's finding cleared by psu is cleared", fans: "fail", psu: "clear", fp: psuFP, present: false},
		{name: "fans fails: the built-in finding is still judged", fans: "fail", psu: "clear", fp: "box-0001/latency_anomaly/volume/vol0", present: true},
		{name: "fans runs again and finds it", fans: "find", psu: "clear", fp: fanFP, present: true},
		{name: "fans runs again and it is gone", fans: "clear", psu: "clear", fp: fanFP, present: false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			mode("fans.mode", s.fans)
			mode("psu.mode", s.psu)
			val, err := f.env.ExecuteActivity(f.acts.VerifyFinding, VerifyInput{Fingerprint: s.fp})
			if s.err != "" {
				var appErr *temporal.ApplicationError
				require.True(t, errors.As(err, &appErr), "%v", err)
				require.Equal(t, ErrTypeAnalyzerFailed, appErr.Type())
				require.False(t, appErr.NonRetryable(), "retried, and in the end recorded as the remediation's LastError")
				require.Equal(t, s.err, appErr.Message())
				return
			}
			require.NoError(t, err)
			var res VerifyResult
			require.NoError(t, val.Get(&res))
			require.Equal(t, s.present, res.Present)
		})
	}
	failures := func(name string) float64 {
		var m dto.Metric
		require.NoError(t, f.acts.Metrics.ExternalFailures.WithLabelValues(name).Write(&m))
		return m.GetCounter().GetValue()
	}
	require.Equal(t, 3.0, failures("fans"), "one per failed run: three verifications")
	require.Equal(t, 0.0, failures("psu"))
	st, err := f.acts.Store.AnalyzerStatuses(context.Background())
	require.NoError(t, err)
	require.Len(t, st, 2)
	require.Equal(t, "fans", st[0].Analyzer)
	require.Equal(t, `run external analyzer "fans": exit status 3; stderr: fan table missing`, st[0].LastError)
	require.Equal(t, "box-0001", st[0].LastBox)
	require.Equal(t, []string{"fan_stopped"}, st[0].Rules)
	require.Equal(t, store.AnalyzerStatus{Analyzer: "psu", OKAt: f.acts.now().UTC(), Rules: []string{"psu_hot"}}, st[1])
}
