package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEmailFailingFor(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	retryFor := time.Hour
	cases := []struct {
		name string
		row  remediationRow
		want time.Duration
	}{
		{"never told, started 2h ago", remediationRow{Phase: "notifying", started: now.Add(-2 * time.Hour)}, 2 * time.Hour},
		{"told, nothing pending", remediationRow{Phase: "waiting", started: now.Add(-48 * time.Hour)}, 0},
		{"reminder failing for 40m", remediationRow{Phase: "waiting", started: now.Add(-48 * time.Hour), Pending: "SendEmail", Attempt: 6,
			LastFailure: "451 try again later", PendingExpires: now.Add(20 * time.Minute)}, 40 * time.Minute},
		{"reminder on its first attempt", remediationRow{Phase: "waiting", Pending: "SendEmail", Attempt: 1, PendingExpires: now.Add(59 * time.Minute)}, 0},
		{"verification pending, not email", remediationRow{Phase: "acknowledged", Pending: "VerifyFinding", Attempt: 3, LastFailure: "x", PendingExpires: now}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, emailFailingFor(c.row, retryFor, now))
		})
	}
}
