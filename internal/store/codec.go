package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// This file holds what both stores share: how values become columns and back,
// and the checks every write makes before it touches a database, so that the
// two stores reject the same input with the same message.

// Times are stored as BIGINT unix nanoseconds, which hold the years 1678 to 2262.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// nanos returns t as unix nanoseconds, or an error when t cannot be held.
func nanos(t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("time %s outside %d..%d", t.UTC().Format(time.RFC3339Nano), minTime.Year(), maxTime.Year())
	}
	return t.UnixNano(), nil
}

// optNanos is nanos for optional times: the zero time becomes NULL.
func optNanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	n, err := nanos(t)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// clampNanos is nanos for query bounds: times beyond the range are clamped.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromNanos turns stored nanoseconds back into a UTC time.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// fromOptNanos is fromNanos for optional times: NULL becomes the zero time.
func fromOptNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}

// encodeList stores a string list as a JSON array; nil and empty are "[]".
func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

// decodeList reads a JSON array of strings; an empty array comes back nil.
func decodeList(s, column string) ([]string, error) {
	if s == "" || s == "null" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode %s: %w", column, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// prepareSamples checks samples and returns them sorted by key with
// duplicates removed (the last of equal keys wins, as if applied in order).
// Sorting gives every writer the same lock order, so concurrent appends on
// PostgreSQL do not deadlock, and SQLite inserts in index order.
func prepareSamples(samples []telemetry.Sample) ([]telemetry.Sample, []int64, error) {
	type keyed struct {
		s   telemetry.Sample
		ts  int64
		pos int
	}
	ks := make([]keyed, len(samples))
	for i, s := range samples {
		if s.Box == "" || s.Component == "" || s.Metric == "" {
			return nil, nil, fmt.Errorf("append samples: sample %d: empty box, component or metric", i)
		}
		if s.Time.IsZero() {
			return nil, nil, fmt.Errorf("append samples: sample %d of %s: zero time", i, s.Box)
		}
		ts, err := nanos(s.Time)
		if err != nil {
			return nil, nil, fmt.Errorf("append samples: sample %d of %s: %w", i, s.Box, err)
		}
		ks[i] = keyed{s: s, ts: ts, pos: i}
	}
	byKey := func(a, b keyed) int {
		return cmp.Or(
			strings.Compare(a.s.Box, b.s.Box),
			strings.Compare(a.s.Component, b.s.Component),
			strings.Compare(a.s.Metric, b.s.Metric),
			cmp.Compare(a.ts, b.ts),
			cmp.Compare(a.pos, b.pos),
		)
	}
	// Batches usually list each series in time order, one after another:
	// checking is one pass, sorting moves every 100-byte sample around.
	if !slices.IsSortedFunc(ks, byKey) {
		slices.SortFunc(ks, byKey)
	}
	out := make([]telemetry.Sample, 0, len(ks))
	ts := make([]int64, 0, len(ks))
	for i, k := range ks {
		if i+1 < len(ks) {
			n := ks[i+1]
			if n.ts == k.ts && n.s.Box == k.s.Box && n.s.Component == k.s.Component && n.s.Metric == k.s.Metric {
				continue // a later sample with the same key wins
			}
		}
		out = append(out, k.s)
		ts = append(ts, k.ts)
	}
	return out, ts, nil
}

// boxRow is a box as stored: lists as JSON text.
type boxRow struct {
	ID, Model, Firmware, Site string
	Owners, Escalation, Tags  string
}

// prepareBoxes checks boxes and returns their rows sorted by id, the last of
// equal ids winning.
func prepareBoxes(boxes []fleet.Box) ([]boxRow, error) {
	byID := make(map[string]fleet.Box, len(boxes))
	for i, b := range boxes {
		if b.ID == "" {
			return nil, fmt.Errorf("upsert boxes: box %d: empty id", i)
		}
		byID[b.ID] = b
	}
	rows := make([]boxRow, 0, len(byID))
	for _, b := range byID {
		rows = append(rows, boxRow{
			ID: b.ID, Model: b.Model, Firmware: b.Firmware, Site: b.Site,
			Owners: encodeList(b.Owners), Escalation: encodeList(b.Escalation), Tags: encodeList(b.Tags),
		})
	}
	slices.SortFunc(rows, func(a, b boxRow) int { return strings.Compare(a.ID, b.ID) })
	return rows, nil
}

// prepareIDs checks box ids and returns them sorted without duplicates.
func prepareIDs(ids []string) ([]string, error) {
	out := slices.Clone(ids)
	for i, id := range out {
		if id == "" {
			return nil, fmt.Errorf("touch boxes: id %d: empty", i)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// box turns a stored row back into a fleet.Box.
func (r boxRow) box() (fleet.Box, error) {
	b := fleet.Box{ID: r.ID, Model: r.Model, Firmware: r.Firmware, Site: r.Site}
	var err error
	if b.Owners, err = decodeList(r.Owners, "owners of box "+r.ID); err != nil {
		return fleet.Box{}, err
	}
	if b.Escalation, err = decodeList(r.Escalation, "escalation of box "+r.ID); err != nil {
		return fleet.Box{}, err
	}
	if b.Tags, err = decodeList(r.Tags, "tags of box "+r.ID); err != nil {
		return fleet.Box{}, err
	}
	return b, nil
}

// findingRow is a finding as stored.
type findingRow struct {
	Fingerprint, Box, Rule, Component string
	Severity                          string
	Rank                              int
	Title, Problem                    string
	Evidence, Remediation             string // JSON
	TimeToImpact                      int64  // nanoseconds
	DetectedAt, FirstSeen, LastSeen   *int64
	Status, Note                      string
}

// utcEvidence returns e with its times in UTC, so that they come back from
// JSON exactly as they went in.
func utcEvidence(e finding.Evidence) finding.Evidence {
	e.WindowStart = utcOrZero(e.WindowStart)
	e.WindowEnd = utcOrZero(e.WindowEnd)
	if e.Series != nil {
		s := make([]finding.Point, len(e.Series))
		for i, p := range e.Series {
			s[i] = finding.Point{Time: utcOrZero(p.Time), Value: p.Value}
		}
		e.Series = s
	}
	return e
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// prepareFinding checks f and returns its row for an upsert: first and last
// seen are its detection time, its status open.
func prepareFinding(f finding.Finding) (findingRow, error) {
	fp := f.Fingerprint()
	if f.Box == "" || f.Rule == "" || f.Component == "" {
		return findingRow{}, fmt.Errorf("upsert finding %q: empty box, rule or component", fp)
	}
	if f.Severity.Rank() == 0 {
		return findingRow{}, fmt.Errorf("upsert finding %q: unknown severity %q: allowed info, warning, critical", fp, f.Severity)
	}
	if f.DetectedAt.IsZero() {
		return findingRow{}, fmt.Errorf("upsert finding %q: zero detected_at", fp)
	}
	detected, err := nanos(f.DetectedAt)
	if err != nil {
		return findingRow{}, fmt.Errorf("upsert finding %q: detected_at: %w", fp, err)
	}
	ev, err := json.Marshal(utcEvidence(f.Evidence))
	if err != nil {
		return findingRow{}, fmt.Errorf("upsert finding %q: encode evidence: %w", fp, err)
	}
	return findingRow{
		Fingerprint: fp, Box: f.Box, Rule: f.Rule, Component: f.Component,
		Severity: string(f.Severity), Rank: f.Severity.Rank(),
		Title: f.Title, Problem: f.Problem,
		Evidence: string(ev), Remediation: encodeList(f.Remediation),
		TimeToImpact: int64(f.TimeToImpact),
		DetectedAt:   &detected, FirstSeen: &detected, LastSeen: &detected,
		Status: string(finding.StatusOpen),
	}, nil
}

// finding turns a stored row back into a finding.Finding.
func (r findingRow) finding() (finding.Finding, error) {
	f := finding.Finding{
		Box: r.Box, Rule: r.Rule, Component: r.Component,
		Severity: finding.Severity(r.Severity), Title: r.Title, Problem: r.Problem,
		TimeToImpact: time.Duration(r.TimeToImpact),
		DetectedAt:   fromOptNanos(r.DetectedAt),
		FirstSeen:    fromOptNanos(r.FirstSeen),
		LastSeen:     fromOptNanos(r.LastSeen),
		Status:       finding.Status(r.Status), Note: r.Note,
	}
	if err := json.Unmarshal([]byte(r.Evidence), &f.Evidence); err != nil {
		return finding.Finding{}, fmt.Errorf("decode evidence of %s: %w", r.Fingerprint, err)
	}
	var err error
	if f.Remediation, err = decodeList(r.Remediation, "remediation of "+r.Fingerprint); err != nil {
		return finding.Finding{}, err
	}
	return f, nil
}

// checkStatus rejects a status sanwatch does not know.
func checkStatus(fp string, s finding.Status) error {
	switch s {
	case finding.StatusOpen, finding.StatusAcknowledged, finding.StatusResolved, finding.StatusUndeliverable:
		return nil
	}
	return fmt.Errorf("set finding status %q: unknown status %q: allowed open, acknowledged, resolved, undeliverable", fp, s)
}

// minRank returns the lowest severity rank q admits (0: all).
func minRank(q FindingQuery) (int, error) {
	if q.MinSeverity == "" {
		return 0, nil
	}
	if q.MinSeverity.Rank() == 0 {
		return 0, fmt.Errorf("query findings: unknown severity %q: allowed info, warning, critical", q.MinSeverity)
	}
	return q.MinSeverity.Rank(), nil
}

// batchRow is a batch as stored: lists as JSON text.
type batchRow struct {
	ID, Path, Format, Status    string
	Accepted, Rejected          int64
	Boxes, UnknownBoxes, Errors string
	FirstSample, LastSample     *int64
	StoredAt                    *int64
}

func prepareBatch(b Batch) (batchRow, error) {
	if b.ID == "" {
		return batchRow{}, errors.New("put batch: empty id")
	}
	r := batchRow{
		ID: b.ID, Path: b.Path, Format: b.Format, Status: b.Status,
		Accepted: b.Accepted, Rejected: b.Rejected,
		Boxes: encodeList(b.Boxes), UnknownBoxes: encodeList(b.UnknownBoxes), Errors: encodeList(b.Errors),
	}
	var err error
	for _, t := range []struct {
		name string
		in   time.Time
		out  **int64
	}{
		{"first_sample", b.FirstSample, &r.FirstSample},
		{"last_sample", b.LastSample, &r.LastSample},
		{"stored_at", b.StoredAt, &r.StoredAt},
	} {
		if *t.out, err = optNanos(t.in); err != nil {
			return batchRow{}, fmt.Errorf("put batch %q: %s: %w", b.ID, t.name, err)
		}
	}
	return r, nil
}

func (r batchRow) batch() (Batch, error) {
	b := Batch{
		ID: r.ID, Path: r.Path, Format: r.Format, Status: r.Status,
		Accepted: r.Accepted, Rejected: r.Rejected,
		FirstSample: fromOptNanos(r.FirstSample), LastSample: fromOptNanos(r.LastSample),
		StoredAt: fromOptNanos(r.StoredAt),
	}
	var err error
	if b.Boxes, err = decodeList(r.Boxes, "boxes of batch "+r.ID); err != nil {
		return Batch{}, err
	}
	if b.UnknownBoxes, err = decodeList(r.UnknownBoxes, "unknown boxes of batch "+r.ID); err != nil {
		return Batch{}, err
	}
	if b.Errors, err = decodeList(r.Errors, "errors of batch "+r.ID); err != nil {
		return Batch{}, err
	}
	return b, nil
}

// scanRow is a scan report as stored.
type scanRow struct {
	ID, Selector                    string
	StartedAt, FinishedAt           *int64
	Boxes, Analysed, Findings, Runs int64
	BySeverity, FailedShards        string // JSON
	Remediations                    int64
	DispatchErrors                  string // JSON
	MoreFailedShards                int64
	MoreDispatchErrors              int64
}

func prepareScan(r ScanReport) (scanRow, error) {
	if r.ID == "" {
		return scanRow{}, errors.New("put scan report: empty id")
	}
	row := scanRow{
		ID: r.ID, Selector: r.Selector,
		Boxes: int64(r.Boxes), Analysed: int64(r.Analysed), Findings: int64(r.Findings), Runs: int64(r.Runs),
		BySeverity: "{}", FailedShards: encodeList(r.FailedShards),
		Remediations: int64(r.Remediations), DispatchErrors: encodeList(r.DispatchErrors),
		MoreFailedShards: int64(r.MoreFailedShards), MoreDispatchErrors: int64(r.MoreDispatchErrors),
	}
	if len(r.BySeverity) > 0 {
		b, _ := json.Marshal(r.BySeverity) // a map[string]int always marshals
		row.BySeverity = string(b)
	}
	var err error
	if row.StartedAt, err = optNanos(r.StartedAt); err != nil {
		return scanRow{}, fmt.Errorf("put scan report %q: started_at: %w", r.ID, err)
	}
	if row.FinishedAt, err = optNanos(r.FinishedAt); err != nil {
		return scanRow{}, fmt.Errorf("put scan report %q: finished_at: %w", r.ID, err)
	}
	return row, nil
}

func (row scanRow) report() (ScanReport, error) {
	r := ScanReport{
		ID: row.ID, Selector: row.Selector,
		StartedAt: fromOptNanos(row.StartedAt), FinishedAt: fromOptNanos(row.FinishedAt),
		Boxes: int(row.Boxes), Analysed: int(row.Analysed), Findings: int(row.Findings), Runs: int(row.Runs),
		Remediations:     int(row.Remediations),
		MoreFailedShards: int(row.MoreFailedShards), MoreDispatchErrors: int(row.MoreDispatchErrors),
	}
	if row.BySeverity != "" && row.BySeverity != "{}" && row.BySeverity != "null" {
		if err := json.Unmarshal([]byte(row.BySeverity), &r.BySeverity); err != nil {
			return ScanReport{}, fmt.Errorf("decode by_severity of scan %s: %w", row.ID, err)
		}
	}
	var err error
	if r.FailedShards, err = decodeList(row.FailedShards, "failed shards of scan "+row.ID); err != nil {
		return ScanReport{}, err
	}
	if r.DispatchErrors, err = decodeList(row.DispatchErrors, "dispatch errors of scan "+row.ID); err != nil {
		return ScanReport{}, err
	}
	return r, nil
}

// boxFilter builds the WHERE clause of a box query. ph returns the n-th
// placeholder of the dialect, tag the condition that a box has the tag held
// by a placeholder.
func boxFilter(q BoxQuery, paging bool, ph func(n int) string, tag func(p string) string) (string, []any) {
	var conds []string
	var args []any
	add := func(cond func(p string) string, v any) {
		args = append(args, v)
		conds = append(conds, cond(ph(len(args))))
	}
	if q.Site != "" {
		add(func(p string) string { return "site = " + p }, q.Site)
	}
	if q.Model != "" {
		add(func(p string) string { return "model = " + p }, q.Model)
	}
	if q.Tag != "" {
		add(tag, q.Tag)
	}
	if paging && q.After != "" {
		add(func(p string) string { return "id > " + p }, q.After)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	if paging {
		where += " ORDER BY id"
		if q.Limit > 0 {
			where += fmt.Sprintf(" LIMIT %d", q.Limit)
		}
	}
	return where, args
}

// findingFilter builds the WHERE clause, order and limit of a finding query.
func findingFilter(q FindingQuery, ph func(n int) string) (string, []any, error) {
	rank, err := minRank(q)
	if err != nil {
		return "", nil, err
	}
	var conds []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		conds = append(conds, col+ph(len(args)))
	}
	if q.Box != "" {
		add("box = ", q.Box)
	}
	if q.Rule != "" {
		add("rule = ", q.Rule)
	}
	if rank > 0 {
		add("severity_rank >= ", rank)
	}
	if q.Status != "" {
		add("status = ", string(q.Status))
	}
	s := ""
	if len(conds) > 0 {
		s = " WHERE " + strings.Join(conds, " AND ")
	}
	s += " ORDER BY severity_rank DESC, fingerprint"
	if q.Limit > 0 {
		s += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return s, args, nil
}

// findingCols are the columns a findingRow is scanned from, in order.
const findingCols = `fingerprint, box, rule, component, severity, severity_rank, title, problem,
	evidence, remediation, time_to_impact, detected_at, first_seen, last_seen, status, note`

// dest returns the scan destinations of findingCols.
func (r *findingRow) dest() []any {
	return []any{&r.Fingerprint, &r.Box, &r.Rule, &r.Component, &r.Severity, &r.Rank, &r.Title,
		&r.Problem, &r.Evidence, &r.Remediation, &r.TimeToImpact, &r.DetectedAt, &r.FirstSeen,
		&r.LastSeen, &r.Status, &r.Note}
}

// scanCols are the columns a scanRow is scanned from, in order.
const scanCols = `id, selector, started_at, finished_at, boxes, analysed, findings, runs, by_severity, failed_shards,
	remediations, dispatch_errors, more_failed_shards, more_dispatch_errors`

// dest returns the scan destinations of scanCols.
func (r *scanRow) dest() []any {
	return []any{&r.ID, &r.Selector, &r.StartedAt, &r.FinishedAt, &r.Boxes, &r.Analysed,
		&r.Findings, &r.Runs, &r.BySeverity, &r.FailedShards, &r.Remediations, &r.DispatchErrors,
		&r.MoreFailedShards, &r.MoreDispatchErrors}
}
