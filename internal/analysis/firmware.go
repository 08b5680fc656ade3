package analysis

import (
	"fmt"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// firmwareRule raises one finding per advisory that matches the box's model
// and firmware, on component firmware/<advisory id>.
func firmwareRule(in *input, _ map[string]float64, advisories []Advisory) []finding.Finding {
	var out []finding.Finding
	for _, a := range advisories {
		if !a.Matches(in.box.Model, in.box.Firmware) {
			continue
		}
		problem := fmt.Sprintf("%s runs firmware %s on a %s, affected by advisory %s (firmware %s to %s): %s.",
			in.box.ID, in.box.Firmware, in.box.Model, a.ID, a.FirmwareMin, a.FirmwareMax, a.Title)
		if a.Description != "" {
			problem += " " + a.Description
		}
		rem := []string{
			fmt.Sprintf("Upgrade %s (%s) from firmware %s to %s or later, following the vendor's non-disruptive upgrade procedure, one controller at a time.", in.box.ID, in.box.Model, in.box.Firmware, a.FixedIn),
		}
		if a.Workaround != "" {
			rem = append(rem, "Until the upgrade: "+a.Workaround)
		}
		rem = append(rem, fmt.Sprintf("Read advisory %s for the details and check the other boxes of model %s.", a.ID, a.Model))
		out = append(out, finding.Finding{
			Component:   "firmware/" + a.ID,
			Severity:    a.Severity,
			Title:       fmt.Sprintf("firmware %s: %s (fixed in %s)", in.box.Firmware, a.Title, a.FixedIn),
			Problem:     problem,
			Evidence:    finding.Evidence{Metric: "box.firmware"},
			Remediation: rem,
		})
	}
	return out
}
