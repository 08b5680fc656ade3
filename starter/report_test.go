package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/simulate"
)

func TestScoreFindings(t *testing.T) {
	onset := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	faults := []simulate.Fault{
		{Box: "box-0001", Kind: finding.RuleCapacity, Component: "pool/p0", Onset: onset},
		{Box: "box-0002", Kind: finding.RulePortErrors, Component: "port/0:1:1", Onset: onset},
	}
	found := func(box, rule, comp string) finding.Finding {
		return finding.Finding{Box: box, Rule: rule, Component: comp}
	}
	cases := []struct {
		name     string
		findings []finding.Finding
		want     demoScore
	}{
		{"all found, nothing else", []finding.Finding{found("box-0001", finding.RuleCapacity, "pool/p0"), found("box-0002", finding.RulePortErrors, "port/0:1:1")},
			demoScore{Detected: 2, Injected: 2}},
		{"one missed", []finding.Finding{found("box-0001", finding.RuleCapacity, "pool/p0")},
			demoScore{Detected: 1, Injected: 2, Missed: []string{"box-0002/port_errors/port/0:1:1"}}},
		{"right box, wrong component", []finding.Finding{found("box-0001", finding.RuleCapacity, "pool/p1"), found("box-0002", finding.RulePortErrors, "port/0:1:1")},
			demoScore{Detected: 1, Injected: 2, False: 1, Missed: []string{"box-0001/capacity_forecast/pool/p0"}, FalseFindings: []string{"box-0001/capacity_forecast/pool/p1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, scoreFindings(faults, tc.findings))
		})
	}
}

func TestIsCheck(t *testing.T) {
	require.True(t, isCheck([]string{"--config", "x.yaml", "check"}))
	require.False(t, isCheck([]string{"findings", "--box", "b"}))
}

func TestScoreFindingsBelowThreshold(t *testing.T) {
	onset := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	faults := []simulate.Fault{
		{Box: "box-0001", Kind: finding.RuleCapacity, Component: "pool/p0", Onset: onset},
		{Box: "box-0002", Kind: finding.RulePortErrors, Component: "port/0:1:1", Onset: onset, BelowThreshold: true},
		{Box: "box-0003", Kind: finding.RuleLatency, Component: "volume/v1", Onset: onset, BelowThreshold: true},
	}
	s := scoreFindings(faults, []finding.Finding{
		{Box: "box-0001", Rule: finding.RuleCapacity, Component: "pool/p0"},
		{Box: "box-0002", Rule: finding.RulePortErrors, Component: "port/0:1:1"}, // crying wolf
	})
	require.Equal(t, 1, s.Injected)
	require.Equal(t, 1, s.Detected)
	require.Equal(t, 2, s.Weak)
	require.Equal(t, 1, s.WeakFound)
	require.Equal(t, 1, s.False)
	require.Equal(t, []string{"box-0002/port_errors/port/0:1:1"}, s.FalseFindings)
}
