package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/client"
)

// notifyFailing finds remediations whose owners are not being told: still
// "notifying" (no email ever went out) for longer than
// remediation.notify_failing_after, or waiting on a SendEmail (a reminder,
// an escalation, an update) that has kept failing for that long. It returns
// how many and a line naming the first one's error, so a monitoring system
// learns that nobody is being told.
func (c *cli) notifyFailing(ctx context.Context, tc client.Client) (int, string, error) {
	after := c.cfg.Remediation.NotifyFailingAfter
	now := time.Now()
	f := remediationFilter{now: time.Now, searchAttributes: c.cfg.Temporal.SearchAttributes, failureMessage: c.failureMessage}
	rows, err := listRemediations(ctx, tc, f)
	if err != nil {
		return 0, "", err
	}
	var failing []remediationRow
	for _, r := range rows {
		if emailFailingFor(r, c.cfg.SMTP.RetryFor, now) > after {
			failing = append(failing, r)
		}
	}
	if len(failing) == 0 {
		return 0, "", nil
	}
	// The one with an error to show first, then by fingerprint.
	sort.SliceStable(failing, func(i, j int) bool {
		if (failing[i].LastFailure != "") != (failing[j].LastFailure != "") {
			return failing[i].LastFailure != ""
		}
		return failing[i].Fingerprint < failing[j].Fingerprint
	})
	first := failing[0]
	why := "no email sent yet"
	if first.LastFailure != "" {
		why = fmt.Sprintf("%s attempt %d: %s", first.Pending, first.Attempt, first.LastFailure)
	}
	return len(failing), fmt.Sprintf("%d remediations have had no email accepted for more than %s; %s: %s",
		len(failing), after, first.Fingerprint, why), nil
}

// emailFailingFor is how long a remediation's owners have not been told:
// since it started while it is still "notifying", or since its pending
// SendEmail began (its deadline minus smtp.retry_for) while that keeps
// failing; 0 otherwise.
func emailFailingFor(r remediationRow, retryFor time.Duration, now time.Time) time.Duration {
	var d time.Duration
	if r.Phase == "notifying" && !r.started.IsZero() {
		d = now.Sub(r.started)
	}
	if r.Pending == "SendEmail" && r.Attempt > 1 && r.LastFailure != "" && !r.PendingExpires.IsZero() && retryFor > 0 {
		d = max(d, now.Sub(r.PendingExpires.Add(-retryFor)))
	}
	return d
}
