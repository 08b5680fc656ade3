// Package finding holds the Finding type: a problem that analysis found on one
// component of one box, with the numbers that prove it and the steps that fix it.
package finding

import (
	"fmt"
	"strings"
	"time"
)

// Severity ranks a finding.
type Severity string

// Severities, from least to most urgent.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Rank orders severities: info 1, warning 2, critical 3, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warning:
		return 2
	case Critical:
		return 3
	}
	return 0
}

// ParseSeverity returns the severity named by s, or an error naming what is allowed.
func ParseSeverity(s string) (Severity, error) {
	switch Severity(strings.ToLower(s)) {
	case Info, Warning, Critical:
		return Severity(strings.ToLower(s)), nil
	}
	return "", fmt.Errorf("unknown severity %q: allowed info, warning, critical", s)
}

// Status is where a finding is in its life.
type Status string

// Finding statuses.
const (
	StatusOpen          Status = "open"
	StatusAcknowledged  Status = "acknowledged"
	StatusResolved      Status = "resolved"
	StatusUndeliverable Status = "undeliverable"
	// StatusUnknown is shown, never stored: the external analyzer that
	// reports the finding failed on its last run, so nobody knows whether
	// the problem is still there (`starter findings`).
	StatusUnknown Status = "unknown"
)

// Number is one named figure of the evidence, such as a slope or a z-score.
type Number struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Point is one point of the series excerpt that backs a finding.
type Point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// Evidence is what proves a finding: the figures and an excerpt of the series.
type Evidence struct {
	Metric      string    `json:"metric"`
	Numbers     []Number  `json:"numbers"`
	Series      []Point   `json:"series,omitempty"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Chart hints, all optional: a limit line (the pool's capacity, the
	// baseline's limit, the RPO), a forecast line to the impact, and the span
	// of time that is wrong, shaded.
	Limit      *float64  `json:"limit,omitempty"`
	LimitLabel string    `json:"limit_label,omitempty"`
	Forecast   []Point   `json:"forecast,omitempty"`
	SpanFrom   time.Time `json:"span_from,omitzero"`
	SpanTo     time.Time `json:"span_to,omitzero"`
}

// Finding is one problem on one component of one box.
type Finding struct {
	Box          string        `json:"box"`
	Rule         string        `json:"rule"`
	Component    string        `json:"component"`
	Severity     Severity      `json:"severity"`
	Title        string        `json:"title"`
	Problem      string        `json:"problem"`
	Evidence     Evidence      `json:"evidence"`
	Remediation  []string      `json:"remediation"`
	TimeToImpact time.Duration `json:"time_to_impact,omitempty"`
	DetectedAt   time.Time     `json:"detected_at"`
	// Fields below are kept by the store, not set by analyzers.
	FirstSeen time.Time `json:"first_seen,omitempty"`
	LastSeen  time.Time `json:"last_seen,omitempty"`
	Status    Status    `json:"status,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// Fingerprint returns the identity of a finding used for dedupe and threading:
// box/rule/component.
func Fingerprint(box, rule, component string) string {
	return box + "/" + rule + "/" + component
}

// Fingerprint returns f's identity, box/rule/component.
func (f Finding) Fingerprint() string { return Fingerprint(f.Box, f.Rule, f.Component) }

// ParseFingerprint splits a fingerprint into box, rule and component. The
// component may itself contain slashes (pool/ssd_r6).
func ParseFingerprint(fp string) (box, rule, component string, err error) {
	parts := strings.SplitN(fp, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("parse fingerprint %q: want box/rule/component", fp)
	}
	return parts[0], parts[1], parts[2], nil
}

// Rule names of the built-in analyzers. The rule is the middle part of a fingerprint.
const (
	RuleCapacity         = "capacity_forecast"
	RuleLatency          = "latency_anomaly"
	RuleDiskFailure      = "disk_failure_risk"
	RuleSSDWear          = "ssd_wear"
	RulePortErrors       = "port_errors"
	RuleCacheBattery     = "cache_battery"
	RuleSaturation       = "controller_saturation"
	RuleReplicationLag   = "replication_lag"
	RuleFirmwareAdvisory = "firmware_advisory"
	RuleSilentBox        = "silent_box"
)

// Rules lists the built-in rule names in a fixed order.
var Rules = []string{
	RuleCapacity, RuleLatency, RuleDiskFailure, RuleSSDWear, RulePortErrors,
	RuleCacheBattery, RuleSaturation, RuleReplicationLag, RuleFirmwareAdvisory, RuleSilentBox,
}
