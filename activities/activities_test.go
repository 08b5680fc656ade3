package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/email"
	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
)

// fixture is a real SQLite store, engine and inventory in a temp dir.
type fixture struct {
	dir  string
	acts *Activities
	env  *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dir, "s.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	eng, err := analysis.New(analysis.Options{})
	require.NoError(t, err)
	inv, err := fleet.New("fleet.yaml", nil, []fleet.Box{
		{ID: "box-0001", Model: "SW-7000", Firmware: "4.3.1", Site: "par1", Owners: []string{"owner@example.com"}, Escalation: []string{"oncall@example.com"}},
		{ID: "box-0002", Model: "SW-7000", Firmware: "4.3.1", Site: "par1"},
	})
	require.NoError(t, err)
	acts := &Activities{
		Store: st, Engine: eng, Inventory: inv,
		Ingest:   IngestOptions{Roots: []string{dir}, MaxRejectRatio: 0.5, MaxFutureSkew: time.Hour, ChunkRows: 100, MaxErrors: 5},
		Settings: Settings{Window: 48 * time.Hour},
		Now:      func() time.Time { return time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) },
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{dir: dir, acts: acts, env: env}
}

func (f *fixture) write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// latencyCSV is 48 h of box's volume/vol0 read latency, 1 ms then 8 ms for the last 4 h.
func latencyCSV(box string) string {
	var b strings.Builder
	b.WriteString("time,box,component,metric,value\n")
	t0 := time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 576; i++ {
		v := 1.0 + float64(i%5)*0.02
		if i >= 528 {
			v = 8
		}
		b.WriteString(t0.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339) + "," + box + ",volume/vol0,volume.read_latency_ms," + strconv.FormatFloat(v, 'f', -1, 64) + "\n")
	}
	return b.String()
}

func appErrType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

func TestStoreBatch(t *testing.T) {
	f := newFixture(t)
	good := f.write(t, "good.csv", latencyCSV("box-0001")+"2026-11-01T00:00:00Z,box-0001,volume/vol0,volume.read_latency_ms,x\n")
	val, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: good})
	require.NoError(t, err)
	var sum BatchSummary
	require.NoError(t, val.Get(&sum))
	require.Equal(t, int64(576), sum.Accepted)
	require.Equal(t, int64(1), sum.Rejected)
	require.Equal(t, []string{"box-0001"}, sum.Boxes)
	require.Empty(t, sum.UnknownBoxes)
	require.Equal(t, []string{`good.csv:578: value "x" is not a number`}, sum.Errors)
	require.False(t, sum.AlreadyStored)

	// The same content again is recognised and not stored twice.
	val, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: good})
	require.NoError(t, err)
	require.NoError(t, val.Get(&sum))
	require.True(t, sum.AlreadyStored)
	stats, err := f.acts.Store.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(576), stats.Samples)

	cases := []struct {
		name, path, errType, msg string
	}{
		{"outside roots", "/etc/hostname", ErrTypePathNotAllowed, "path is outside the allowed ingest roots"},
		{"missing", filepath.Join(f.dir, "nope.csv"), ErrTypeInvalidInput, "no such file"},
		{"not telemetry", f.write(t, "h.csv", "a,b\n1,2\n"), ErrTypeInvalidTelemetry, `h.csv:1: header is not time,box,component,metric,value: 2 columns, want 5`},
		{"only a header", f.write(t, "hdr.csv", "time,box,component,metric,value\n"), ErrTypeInvalidTelemetry, "hdr.csv: no samples, only a header"},
		{"mostly bad", f.write(t, "bad.csv", "time,box,component,metric,value\n2026-11-01T00:00:00Z,b,c/1,m,1\n2026-11-01T00:00:00Z,b,c/1,m,x\n2026-11-01T00:00:00Z,b,c/1,m,y\n"),
			ErrTypeQuarantined, "bad.csv: quarantined: 2 of 3 lines rejected"},
		{"changed content", good, ErrTypeBatchChanged, "does not match batch id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := StoreBatchInput{Path: tc.path}
			if tc.errType == ErrTypeBatchChanged {
				in.BatchID = "0000000000000000"
			}
			_, err := f.env.ExecuteActivity(f.acts.StoreBatch, in)
			require.Error(t, err)
			require.Equal(t, tc.errType, appErrType(err))
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	// A truncated gzip stream is bad content: quarantined at once, not retried.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write([]byte(latencyCSV("box-0002")))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	trunc := f.write(t, "trunc.csv.gz", string(gz.Bytes()[:gz.Len()/2]))
	_, err = f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: trunc})
	require.Equal(t, ErrTypeInvalidTelemetry, appErrType(err))
	require.Contains(t, err.Error(), "trunc.csv.gz")
	tid, err := HashFile(trunc)
	require.NoError(t, err)
	tb, err := f.acts.Store.Batch(context.Background(), tid)
	require.NoError(t, err)
	require.Equal(t, store.BatchQuarantined, tb.Status)

	// A quarantined batch is recorded, with nothing applied.
	id, err := HashFile(filepath.Join(f.dir, "bad.csv"))
	require.NoError(t, err)
	b, err := f.acts.Store.Batch(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, store.BatchQuarantined, b.Status)
	require.Zero(t, b.Accepted)
}

func TestAnalyzeShardStoresFindingsOnce(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "b.csv", latencyCSV("box-0001"))
	_, err := f.env.ExecuteActivity(f.acts.StoreBatch, StoreBatchInput{Path: p})
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		val, err := f.env.ExecuteActivity(f.acts.AnalyzeShard, AnalyzeShardInput{Boxes: []string{"box-0001", "box-0002", "box-9999"}})
		require.NoError(t, err)
		var res ShardResult
		require.NoError(t, val.Get(&res))
		require.Equal(t, 3, res.Analysed)
		require.Equal(t, 2, res.NoData)
		require.Len(t, res.Findings, 1)
		require.Equal(t, "box-0001/latency_anomaly/volume/vol0", res.Findings[0].Fingerprint)
		require.Equal(t, i == 0, res.Findings[0].New, "a repeat detection updates, it does not duplicate")
	}
	fs, err := f.acts.Store.Findings(context.Background(), store.FindingQuery{})
	require.NoError(t, err)
	require.Len(t, fs, 1)
}

func TestSendEmailRoutesAndDedupes(t *testing.T) {
	f := newFixture(t)
	srv := smtptest.Start(t)
	sender, err := email.NewSender(email.SMTPOptions{Host: srv.Host(), Port: srv.Port(), TLS: email.TLSNone, Timeout: 3 * time.Second})
	require.NoError(t, err)
	f.acts.Mailer = sender
	f.acts.Mail = MailOptions{From: "sanwatch@example.com", Domain: "example.com"}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, box := range []string{"box-0001", "box-0002"} {
		_, err := f.acts.Store.UpsertFinding(context.Background(), finding.Finding{
			Box: box, Rule: finding.RuleSaturation, Component: "node/0", Severity: finding.Critical,
			Title: "CPU 97% for 1 h", Problem: "busy", Remediation: []string{"rebalance"}, DetectedAt: at,
		})
		require.NoError(t, err)
	}
	send := func(fp, kind string, step int) (SendEmailResult, error) {
		val, err := f.env.ExecuteActivity(f.acts.SendEmail, SendEmailInput{WorkflowID: "remediate-" + fp, ThreadKey: "remediate-" + fp + "/run1", Fingerprint: fp, Kind: kind, Step: step})
		var res SendEmailResult
		if err == nil {
			require.NoError(t, val.Get(&res))
		}
		return res, err
	}

	res, err := send("box-0001/controller_saturation/node/0", EmailNotify, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"owner@example.com"}, res.To)
	res, err = send("box-0001/controller_saturation/node/0", EmailEscalation, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"oncall@example.com"}, res.To)
	require.Equal(t, []string{"owner@example.com"}, res.Cc)
	msgs := srv.WaitMessages(2, 10*time.Second)
	require.Len(t, msgs, 2)
	require.Equal(t, msgs[0].Header.Get("Message-Id"), msgs[1].Header.Get("In-Reply-To"))

	// The same step again (a retry after a crash) is not sent twice.
	again, err := send("box-0001/controller_saturation/node/0", EmailNotify, 0)
	require.NoError(t, err)
	require.True(t, again.Skipped)
	require.Equal(t, msgs[0].Header.Get("Message-Id"), again.MessageID)

	// A box with no owner: without a default owner it is undeliverable, nothing sent.
	_, err = send("box-0002/controller_saturation/node/0", EmailNotify, 0)
	require.Equal(t, ErrTypeUndeliverable, appErrType(err))
	require.Contains(t, err.Error(), "no recipient for notify email about box box-0002: the inventory names none and smtp.default_owner is not set")
	// With one, it goes there and says so.
	f.acts.Mail.DefaultOwner = "noc@example.com"
	res, err = send("box-0002/controller_saturation/node/0", EmailNotify, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"noc@example.com"}, res.To)
	msgs = srv.WaitMessages(3, 10*time.Second)
	require.Contains(t, string(msgs[2].Data), "has no owner contact in the inventory")
	require.Len(t, srv.Messages(), 3)

	// A permanent SMTP failure is non-retryable.
	srv.FailNext(1, smtptest.Perm5xx)
	_, err = send("box-0001/controller_saturation/node/0", EmailReminder, 2)
	require.Equal(t, ErrTypeUndeliverable, appErrType(err))
	// An unknown fingerprint is a clear, non-retryable error.
	_, err = send("box-0042/controller_saturation/node/0", EmailNotify, 0)
	require.Equal(t, ErrTypeUnknownFinding, appErrType(err))
}

func TestDispatchFindingsWithoutClientSkips(t *testing.T) {
	f := newFixture(t)
	val, err := f.env.ExecuteActivity(f.acts.DispatchFindings, DispatchInput{Findings: []FindingRef{{Fingerprint: "a/b/c", Severity: finding.Critical}}})
	require.NoError(t, err)
	var res DispatchResult
	require.NoError(t, val.Get(&res))
	require.Equal(t, DispatchResult{Skipped: 1}, res)
}

func TestSelector(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"", "all", ""},
		{"all", "all", ""},
		{"site=par1,tag=prod", "site=par1,tag=prod", ""},
		{"model=SW-9000", "model=SW-9000", ""},
		{"color=blue", "", `selector "color=blue": unknown key "color" (keys: site, tag, model)`},
		{"site", "", `selector "site": "site" is not key=value (keys: site, tag, model)`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSelector(tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, s.String())
		})
	}
}

// expiringMailer succeeds, and the activity's context ends right after:
// its deadline passed or the worker is stopping.
type expiringMailer struct{ cancel context.CancelFunc }

func (m expiringMailer) Send(context.Context, email.Message, email.Rendered) error {
	m.cancel()
	return nil
}

// TestSendEmailRecordsAfterDeadline: the send succeeded just as the
// activity's context ended; the email must still be recorded, or the retry
// would send it a second time (issue 9, defect 7).
func TestSendEmailRecordsAfterDeadline(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	env.RegisterActivity(f.acts)
	f.acts.Mailer = expiringMailer{cancel: cancel}
	f.acts.Mail = MailOptions{From: "sanwatch@example.com", Domain: "example.com"}
	fp := "box-0001/controller_saturation/node/0"
	_, err := f.acts.Store.UpsertFinding(context.Background(), finding.Finding{
		Box: "box-0001", Rule: finding.RuleSaturation, Component: "node/0", Severity: finding.Critical,
		Title: "CPU 97% for 1 h", Problem: "busy", Remediation: []string{"rebalance"}, DetectedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	})
	require.NoError(t, err)
	in := SendEmailInput{WorkflowID: "remediate-" + fp, ThreadKey: "remediate-" + fp + "/run1", Fingerprint: fp, Kind: EmailNotify}
	_, _ = env.ExecuteActivity(f.acts.SendEmail, in)
	require.Error(t, ctx.Err(), "the activity's context ended during the send")
	sent, err := f.acts.Store.EmailSent(context.Background(), email.MessageID(in.ThreadKey, 0, email.KindNotify, "example.com"))
	require.NoError(t, err)
	require.True(t, sent, "an email that went out is recorded even when the activity's context ended during the send")
}
