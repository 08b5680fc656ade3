package email

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
)

// testMessage returns a valid notify message about a filling pool.
func testMessage() Message {
	detected := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	series := make([]finding.Point, 48)
	for i := range series {
		series[i] = finding.Point{Time: detected.Add(time.Duration(i-47) * time.Hour), Value: 1e12 + float64(i)*5e9}
	}
	f := finding.Finding{
		Box:       "box-0042",
		Rule:      finding.RuleCapacity,
		Component: "pool/ssd_r6",
		Severity:  finding.Critical,
		Title:     "full in 5 days",
		Problem:   "Pool ssd_r6 grows 120 GB a day and will be full on 2026-03-06.",
		Evidence: finding.Evidence{
			Metric: "pool.used_bytes",
			Numbers: []finding.Number{
				{Name: "slope", Value: 1.2e11, Unit: "bytes/day"},
				{Name: "days_to_full", Value: 5.25, Unit: "days"},
			},
			Series:      series,
			WindowStart: series[0].Time,
			WindowEnd:   series[len(series)-1].Time,
		},
		Remediation:  []string{"Delete expired snapshots on pool ssd_r6.", "Add a shelf of SSDs to the pool."},
		TimeToImpact: 5*24*time.Hour + 6*time.Hour,
		DetectedAt:   detected,
	}
	wf := "remediate/" + f.Fingerprint()
	return Message{
		Kind:       KindNotify,
		Finding:    f,
		Box:        fleet.Box{ID: "box-0042", Model: "FS9000", Firmware: "8.1.2", Site: "ams1", Owners: []string{"storage@example.com"}},
		To:         []string{"storage@example.com"},
		Cc:         []string{"Ops Team <ops@example.com>"},
		From:       "sanwatch@example.com",
		WorkflowID: wf,
		MessageID:  MessageID(wf, 1, KindNotify, "example.com"),
		Step:       1,
	}
}

func TestMessageID(t *testing.T) {
	first := MessageID("remediate/box-0042/capacity_forecast/pool/ssd_r6", 1, KindNotify, "example.com")
	require.Regexp(t, `^<[0-9a-f]{24}\.1\.notify@example\.com>$`, first)
	require.NoError(t, validateMsgID(first))

	tests := []struct {
		name     string
		wf       string
		step     int
		kind     Kind
		domain   string
		wantSame bool
		want     string // regexp, when set
	}{
		{name: "retry reuses the id", wf: "remediate/box-0042/capacity_forecast/pool/ssd_r6", step: 1, kind: KindNotify, domain: "example.com", wantSame: true},
		{name: "next step differs", wf: "remediate/box-0042/capacity_forecast/pool/ssd_r6", step: 2, kind: KindNotify, domain: "example.com"},
		{name: "other workflow differs", wf: "remediate/box-0043/capacity_forecast/pool/ssd_r6", step: 1, kind: KindNotify, domain: "example.com"},
		{name: "empty domain", wf: "w", step: 3, kind: KindReminder, domain: "", want: `^<[0-9a-f]{24}\.3\.reminder@sanwatch>$`},
		{name: "domain with injection", wf: "w", step: 3, kind: KindReminder, domain: "x.com>\r\nBcc: evil@x.com", want: `^<[0-9a-f]{24}\.3\.reminder@sanwatch>$`},
		{name: "kind is sanitised", wf: "w", step: 0, kind: Kind("a b\r\n"), domain: "d.org", want: `^<[0-9a-f]{24}\.0\.ab@d\.org>$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MessageID(tc.wf, tc.step, tc.kind, tc.domain)
			require.NoError(t, validateMsgID(got))
			if tc.want != "" {
				require.Regexp(t, tc.want, got)
				return
			}
			if tc.wantSame {
				require.Equal(t, first, got)
			} else {
				require.NotEqual(t, first, got)
			}
		})
	}
}

func TestMessageValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Message)
		wantErr string
	}{
		{name: "valid", change: func(*Message) {}},
		{name: "display name allowed", change: func(m *Message) { m.To = []string{"Storage Team <st@example.com>"} }},
		{name: "unknown kind", change: func(m *Message) { m.Kind = "shout" },
			wantErr: `validate message: unknown kind "shout": allowed notify, reminder, update, escalation, resolved, undeliverable`},
		{name: "no recipients", change: func(m *Message) { m.To = nil }, wantErr: "validate message: no recipients"},
		{name: "no from", change: func(m *Message) { m.From = "" }, wantErr: "validate message: no from address"},
		{name: "crlf in to", change: func(m *Message) { m.To = []string{"a@example.com\r\nBcc: evil@example.com"} },
			wantErr: `validate message: to: address "a@example.com\r\nBcc: evil@example.com" contains a control character`},
		{name: "lf in cc", change: func(m *Message) { m.Cc = []string{"b@example.com\nX: y"} },
			wantErr: `validate message: cc: address "b@example.com\nX: y" contains a control character`},
		{name: "nul in from", change: func(m *Message) { m.From = "s@example.com\x00" },
			wantErr: `validate message: from: address "s@example.com\x00" contains a control character`},
		{name: "unparseable", change: func(m *Message) { m.To = []string{"not an address"} },
			wantErr: `validate message: to: parse address "not an address": mail: no angle-addr`},
		{name: "comma adds a recipient", change: func(m *Message) { m.To = []string{"a@example.com, evil@example.com"} },
			wantErr: `validate message: to: address "a@example.com, evil@example.com" contains a comma`},
		{name: "blank address", change: func(m *Message) { m.Cc = []string{"  "} }, wantErr: "validate message: cc: empty address"},
		{name: "bad message id", change: func(m *Message) { m.MessageID = "abc" },
			wantErr: `validate message: message id: "abc" is not of the form <left@right>`},
		{name: "injected in-reply-to", change: func(m *Message) { m.InReplyTo = "<a@b>\r\nBcc: x@y" },
			wantErr: `validate message: in-reply-to: "<a@b>\r\nBcc: x@y" is not of the form <left@right>`},
		{name: "space in reference", change: func(m *Message) { m.References = []string{"<a b@c>"} },
			wantErr: `validate message: references: "<a b@c>" contains a character not allowed in a message id`},
		{name: "control in fingerprint", change: func(m *Message) { m.Finding.Box = "box\r\nX: y" },
			wantErr: `validate message: fingerprint "box\r\nX: y/capacity_forecast/pool/ssd_r6" contains a control character`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testMessage()
			tc.change(&m)
			err := m.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}
