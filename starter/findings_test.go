package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/store"
)

func TestMarkUnknown(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	analyzers := []store.AnalyzerStatus{
		{Analyzer: "fans", Rules: []string{"fan_failed"}, FailedAt: t0.Add(time.Hour), OKAt: t0, LastError: "exit status 3"},
		{Analyzer: "psu", Rules: []string{"psu_failed"}, FailedAt: t0, OKAt: t0.Add(time.Hour)}, // recovered
	}
	cases := []struct {
		name string
		in   finding.Finding
		want finding.Status
	}{
		{"failing analyzer's open finding", finding.Finding{Rule: "fan_failed", Status: finding.StatusOpen}, finding.StatusUnknown},
		{"failing analyzer's acked finding", finding.Finding{Rule: "fan_failed", Status: finding.StatusAcknowledged}, finding.StatusUnknown},
		{"resolved stays resolved", finding.Finding{Rule: "fan_failed", Status: finding.StatusResolved}, finding.StatusResolved},
		{"recovered analyzer", finding.Finding{Rule: "psu_failed", Status: finding.StatusOpen}, finding.StatusOpen},
		{"built-in rule", finding.Finding{Rule: "capacity_forecast", Status: finding.StatusOpen}, finding.StatusOpen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := markUnknown([]finding.Finding{c.in}, analyzers)[0]
			require.Equal(t, c.want, got.Status)
			if c.want == finding.StatusUnknown {
				require.Equal(t, `external analyzer "fans" failed on its last run (2026-11-30T01:00:00Z): exit status 3`, got.Note)
			}
		})
	}
}
