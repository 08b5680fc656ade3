package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/client"
)

// notifyFailing finds remediations that have told no owner for longer than
// remediation.notify_failing_after: still "notifying" with their email
// failing. It returns how many and a line naming the first one's error, so
// a monitoring system learns that nobody is being told.
func (c *cli) notifyFailing(ctx context.Context, tc client.Client) (int, string, error) {
	after := c.cfg.Remediation.NotifyFailingAfter
	f := remediationFilter{olderThan: after, now: time.Now, searchAttributes: c.cfg.Temporal.SearchAttributes, failureMessage: c.failureMessage}
	if f.searchAttributes {
		f.phase = "notifying"
	}
	rows, err := listRemediations(ctx, tc, f)
	if err != nil {
		return 0, "", err
	}
	var failing []remediationRow
	for _, r := range rows {
		if r.Phase == "notifying" {
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
	return len(failing), fmt.Sprintf("%d remediations have told no owner for more than %s; %s: %s",
		len(failing), after, first.Fingerprint, why), nil
}
