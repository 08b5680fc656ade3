package email

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
)

func TestRenderSubject(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Message)
		want   string
	}{
		{name: "notify", change: func(*Message) {}, want: "[sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "reminder", change: func(m *Message) { m.Kind = KindReminder }, want: "Reminder: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "escalation", change: func(m *Message) { m.Kind = KindEscalation }, want: "ESCALATION: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "resolved", change: func(m *Message) { m.Kind = KindResolved }, want: "Resolved: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "update", change: func(m *Message) { m.Kind = KindUpdate }, want: "Update: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "warning severity", change: func(m *Message) { m.Finding.Severity = finding.Warning }, want: "[sanwatch][WARNING] box-0042 pool/ssd_r6: full in 5 days"},
		{name: "newlines in title are flattened", change: func(m *Message) { m.Finding.Title = "full\r\nBcc: evil@example.com" },
			want: "[sanwatch][CRITICAL] box-0042 pool/ssd_r6: full Bcc: evil@example.com"},
		{name: "long title is cut", change: func(m *Message) { m.Finding.Title = strings.Repeat("x", 1000) },
			want: "[sanwatch][CRITICAL] box-0042 pool/ssd_r6: " + strings.Repeat("x", 200-43-1) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testMessage()
			tc.change(&m)
			r, err := Render(m)
			require.NoError(t, err)
			require.Equal(t, tc.want, r.Subject)
		})
	}
}

func TestRenderText(t *testing.T) {
	m := testMessage()
	r, err := Render(m)
	require.NoError(t, err)
	for _, want := range []string{
		"[CRITICAL] box-0042 pool/ssd_r6: full in 5 days",
		"Pool ssd_r6 grows 120 GB a day and will be full on 2026-03-06.",
		"EVIDENCE (pool.used_bytes, 2026-02-27T13:00:00Z to 2026-03-01T12:00:00Z)",
		"  slope: 112 GiB/day",
		"  days_to_full: 5.25 days",
		"  Series: 48 points, min 931 GiB, max 1.1 TiB, last 1.1 TiB at 2026-03-01T12:00:00Z; attached as evidence.csv",
		"  Model:       FS9000, firmware 8.1.2, site ams1",
		"  1. Delete expired snapshots on pool ssd_r6.\n  2. Add a shelf of SSDs to the pool.",
		"Time to impact: 5 days 6 hours (around 2026-03-06T18:00:00Z)",
		"Detected at:    2026-03-01T12:00:00Z",
		"  starter ack box-0042/capacity_forecast/pool/ssd_r6",
		"  or: temporal workflow signal --workflow-id remediate/box-0042/capacity_forecast/pool/ssd_r6 --name ack --input '{\"by\": \"your name\"}'",
	} {
		require.Contains(t, r.Text, want)
	}

	t.Run("resolved has no ack or steps", func(t *testing.T) {
		m := testMessage()
		m.Kind = KindResolved
		r, err := Render(m)
		require.NoError(t, err)
		require.Contains(t, r.Text, "Fresh data shows the problem on box-0042 is gone.")
		require.NotContains(t, r.Text, "HOW TO ACKNOWLEDGE")
		require.NotContains(t, r.Text, "WHAT TO DO")
	})
	t.Run("escalation names the owners and the note", func(t *testing.T) {
		m := testMessage()
		m.Kind = KindEscalation
		m.Note = "no ack after 48h"
		r, err := Render(m)
		require.NoError(t, err)
		require.Contains(t, r.Text, "not been acknowledged by the box owners (storage@example.com) and is escalated to you.")
		require.Contains(t, r.Text, "Note: no ack after 48h")
	})
	t.Run("odd fingerprint is shell quoted", func(t *testing.T) {
		m := testMessage()
		m.Finding.Component = "volume/it's mine"
		m.WorkflowID = ""
		r, err := Render(m)
		require.NoError(t, err)
		require.Contains(t, r.Text, `starter ack 'box-0042/capacity_forecast/volume/it'\''s mine'`)
		require.NotContains(t, r.Text, "temporal workflow signal")
	})
}

func TestRenderHTML(t *testing.T) {
	m := testMessage()
	m.Finding.Title = `<script>alert("x")</script>`
	m.Finding.Problem = `pool <b>ssd</b> & more`
	m.Finding.Remediation = []string{`run <img src=x onerror=alert(1)>`, "step two"}
	r, err := Render(m)
	require.NoError(t, err)
	require.NotContains(t, r.HTML, "<script>")
	require.NotContains(t, r.HTML, "<b>ssd</b>")
	require.NotContains(t, r.HTML, "<img src=x")
	require.Contains(t, r.HTML, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	require.Contains(t, r.HTML, "pool &lt;b&gt;ssd&lt;/b&gt; &amp; more")
	require.Contains(t, r.HTML, "<ol>\n<li>run &lt;img src=x onerror=alert(1)&gt;</li>\n<li>step two</li>\n</ol>")
	require.Contains(t, r.HTML, "<tr><td>slope</td><td align=\"right\">112 GiB/day</td></tr>")
	require.Contains(t, r.HTML, `<img src="cid:evidence.png"`)

	t.Run("no series means no chart", func(t *testing.T) {
		m := testMessage()
		m.Finding.Evidence.Series = nil
		r, err := Render(m)
		require.NoError(t, err)
		require.NotContains(t, r.HTML, "cid:")
		require.Nil(t, r.PNG)
		require.Nil(t, r.CSV)
	})
}

func TestRenderAttachments(t *testing.T) {
	m := testMessage()
	r, err := Render(m)
	require.NoError(t, err)

	img, err := png.Decode(bytes.NewReader(r.PNG))
	require.NoError(t, err)
	require.Equal(t, chartWidth, img.Bounds().Dx())
	require.Equal(t, chartHeight, img.Bounds().Dy())

	rows, err := csv.NewReader(bytes.NewReader(r.CSV)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 49)
	require.Equal(t, []string{"time", "value"}, rows[0])
	require.Equal(t, []string{"2026-02-27T13:00:00Z", "1e+12"}, rows[1])
	require.Equal(t, []string{"2026-03-01T12:00:00Z", "1.235e+12"}, rows[48])
}

func TestRenderHugeEvidence(t *testing.T) {
	m := testMessage()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	series := make([]finding.Point, 100_000) // about 3 MB as CSV
	for i := range series {
		series[i] = finding.Point{Time: start.Add(time.Duration(i) * time.Second), Value: 123456.789 + float64(i)}
	}
	m.Finding.Evidence.Series = series
	m.Finding.Problem = strings.Repeat("problem text ", 100_000)
	m.Finding.Remediation = make([]string, 1000)
	for i := range m.Finding.Remediation {
		m.Finding.Remediation[i] = strings.Repeat("do this ", 500)
	}
	m.Finding.Evidence.Numbers = make([]finding.Number, 1000)
	for i := range m.Finding.Evidence.Numbers {
		m.Finding.Evidence.Numbers[i] = finding.Number{Name: "n", Value: float64(i)}
	}

	r, err := Render(m)
	require.NoError(t, err)
	rows, err := csv.NewReader(bytes.NewReader(r.CSV)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, MaxPoints+1)
	require.Equal(t, "2026-01-02T03:46:39Z", rows[MaxPoints][0], "last point kept")
	require.Contains(t, r.Text, "Series: 100000 points (500 shown, evenly sampled)")
	require.Contains(t, r.Text, "(970 more steps left out)")
	require.Contains(t, r.Text, "(960 more figures left out)")
	total := len(r.Text) + len(r.HTML) + len(r.CSV) + len(r.PNG)
	require.Less(t, total, 150_000)
}

func TestRenderRejectsBadMessage(t *testing.T) {
	m := testMessage()
	m.To = []string{"a@example.com\r\nBcc: evil@example.com"}
	_, err := Render(m)
	require.EqualError(t, err, `render email: validate message: to: address "a@example.com\r\nBcc: evil@example.com" contains a control character`)
}

func TestFormatNumber(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "integer", in: 42, want: "42"},
		{name: "big integer", in: 1.2e11, want: "120000000000"},
		{name: "fraction", in: 5.25, want: "5.25"},
		{name: "long fraction", in: 2.0 / 3, want: "0.6667"},
		{name: "tiny", in: 0.00001234, want: "1.234e-05"},
		{name: "negative", in: -3.5, want: "-3.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, formatNumber(tc.in))
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "days and hours", in: 5*24*time.Hour + 6*time.Hour, want: "5 days 6 hours"},
		{name: "one day", in: 24 * time.Hour, want: "1 day"},
		{name: "hours and minutes", in: 7*time.Hour + 12*time.Minute, want: "7 hours 12 minutes"},
		{name: "one hour", in: time.Hour, want: "1 hour"},
		{name: "minutes", in: 45 * time.Minute, want: "45 minutes"},
		{name: "seconds", in: 30 * time.Second, want: "less than a minute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, formatDuration(tc.in))
		})
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    float64
		unit string
		want string
	}{
		{151798407609687, "bytes", "138 TiB"},
		{-2.5e9, "bytes/day", "-2.3 GiB/day"},
		{1793893501, "unix_s", "2026-11-05 15:45 UTC"},
		{47, "min", "47 min"},
		{180, "min", "3.0 hours"},
		{0.42, "ms", "0.42 ms"},
		{86, "%", "86%"},
		{12, "", "12"},
		{3, "sectors", "3 sectors"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			require.Equal(t, tc.want, formatValue(tc.v, tc.unit))
		})
	}
}
