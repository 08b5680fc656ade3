// Package backtest replays recorded telemetry through the analyzers as they
// would have run at each step, and scores what they found against a truth
// file of real incidents: recall, lead time, how many healthy components they
// flagged, precision. It answers "what would sanwatch have told us last
// quarter", which is how a team tunes thresholds on its own fleet.
package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Incident is one row of a truth file: a component of a box failed or had
// an incident at Time; Rule, when set, is the rule expected to foresee it.
type Incident struct {
	Box       string    `json:"box"`
	Component string    `json:"component"`
	Time      time.Time `json:"time"`
	Rule      string    `json:"rule,omitempty"`
	Line      int       `json:"line"`
}

// ErrBadTruth is wrapped by LoadTruth's errors.
var ErrBadTruth = errors.New("bad truth file")

// LoadTruth reads a truth file: CSV with a header naming box, component and
// time (RFC 3339, a date, or unix seconds), and optionally rule, in any
// order. A bad row is an error naming file:line and the reason: a truth
// file is small and written by people, so it is fixed rather than skipped.
func LoadTruth(path string) ([]Incident, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load truth: %w", err)
	}
	defer f.Close()
	return ReadTruth(f, path)
}

// ReadTruth reads a truth file from r; name is used in errors.
func ReadTruth(r io.Reader, name string) ([]Incident, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty: want a header box,component,time[,rule]: %w", name, ErrBadTruth)
	}
	if err != nil {
		return nil, fmt.Errorf("%s:1: %v: %w", name, err, ErrBadTruth)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, need := range []string{"box", "component", "time"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:1: missing column %q (want box,component,time[,rule]): %w", name, need, ErrBadTruth)
		}
	}
	var out []Incident
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v: %w", name, line, err, ErrBadTruth)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		in := Incident{Box: get("box"), Component: get("component"), Rule: get("rule"), Line: line}
		if in.Box == "" || in.Component == "" {
			return nil, fmt.Errorf("%s:%d: empty box or component: %w", name, line, ErrBadTruth)
		}
		t, ok := parseTime(get("time"))
		if !ok {
			return nil, fmt.Errorf("%s:%d: time %q: want RFC 3339, YYYY-MM-DD or unix seconds: %w", name, line, get("time"), ErrBadTruth)
		}
		in.Time = t
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no incidents after the header: %w", name, ErrBadTruth)
	}
	return out, nil
}

// parseTime accepts RFC 3339, a date or unix seconds.
func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err == nil && fmt.Sprint(sec) == s {
		return time.Unix(sec, 0).UTC(), true
	}
	return time.Time{}, false
}
