// Package storetest is the suite every store.Store implementation must pass,
// so that SQLite and PostgreSQL behave alike.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// t0 has nanoseconds so that any rounding on the way through a store shows.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Run runs the suite. open must return a new, empty store for the calling
// (sub)test and close it with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) { RunWith(t, open, SampleOptions{}) }

// RunWith is Run for a store whose samples live in a backend that keeps
// them as opt says (store.WithSamples over a time-series engine).
func RunWith(t *testing.T, open func(t *testing.T) store.Store, opt SampleOptions) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"TimesRoundTrip", testTimesRoundTripRecords},
		{"Batches", testBatches},
		{"BatchBoxes", testBatchBoxes},
		{"TouchThenUpsertBoxes", testTouchThenUpsert},
		{"BoxesPaging", testBoxesPaging},
		{"BoxesFilters", testBoxesFilters},
		{"UpsertFinding", testUpsertFinding},
		{"Findings", testFindings},
		{"SetFindingStatus", testSetFindingStatus},
		{"ScanReports", testScanReports},
		{"Emails", testEmails},
		{"AnalyzerRuns", testAnalyzerRuns},
		{"Stats", testStats},
		{"Tokens", testTokens},
		{"Intake", testIntake},
		{"IntakeConcurrentRecord", testIntakeConcurrentRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open(t)) })
	}
	RunSamples(t, open, opt)
}

func sample(box, component, metric string, at time.Time, v float64) telemetry.Sample {
	return telemetry.Sample{Time: at, Box: box, Component: component, Metric: metric, Value: v}
}

// grid returns one sample per box, component, metric and minute, valued by
// f, in a shuffled order.
func grid(boxes, components, metrics []string, minutes int, f func(i int) float64) []telemetry.Sample {
	return gridAt(t0, boxes, components, metrics, minutes, f)
}

// gridAt is grid with the first minute at start.
func gridAt(start time.Time, boxes, components, metrics []string, minutes int, f func(i int) float64) []telemetry.Sample {
	var out []telemetry.Sample
	for _, b := range boxes {
		for _, c := range components {
			for _, m := range metrics {
				for i := range minutes {
					out = append(out, sample(b, c, m, start.Add(time.Duration(i)*time.Minute), f(i)))
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func countAll(t *testing.T, s store.Store, boxes ...string) int {
	t.Helper()
	n := 0
	for _, b := range boxes {
		w, err := s.Window(t.Context(), b, time.Time{}, t0.AddDate(100, 0, 0))
		require.NoError(t, err)
		n += len(w)
	}
	return n
}

func testBatches(t *testing.T, s store.Store) {
	ctx := t.Context()
	newest, err := s.NewestSample(ctx)
	require.NoError(t, err)
	require.True(t, newest.IsZero(), "nothing stored yet")
	_, err = s.Batch(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualError(t, err, `get batch "nope": not found`)
	require.EqualError(t, s.PutBatch(ctx, store.Batch{}), "put batch: empty id")

	b := store.Batch{
		ID: "abc123", Path: "/in/batch.csv.gz", Format: "csv+gzip", Status: store.BatchStored,
		Accepted: 1000, Rejected: 2, Boxes: []string{"b1", "b2"}, UnknownBoxes: []string{"b2"},
		FirstSample: t0, LastSample: t0.Add(time.Hour),
		Errors:   []string{"batch.csv:7: bad value", "batch.csv:9: bad time"},
		StoredAt: t0.Add(2 * time.Hour),
	}
	require.NoError(t, s.PutBatch(ctx, b))
	got, err := s.Batch(ctx, "abc123")
	require.NoError(t, err)
	require.Equal(t, b, got)
	older := b
	older.ID, older.LastSample = "older", t0.Add(time.Minute)
	quarantined := b
	quarantined.ID, quarantined.Status, quarantined.LastSample = "bad", store.BatchQuarantined, t0.Add(48*time.Hour)
	require.NoError(t, s.PutBatch(ctx, older))
	require.NoError(t, s.PutBatch(ctx, quarantined))
	newest, err = s.NewestSample(ctx)
	require.NoError(t, err)
	require.True(t, t0.Add(time.Hour).Equal(newest), "the newest stored batch's last sample, not a quarantined one's: %s", newest)

	// Replaced, not duplicated; empty lists come back nil.
	b.Status, b.Accepted, b.UnknownBoxes, b.Errors = store.BatchQuarantined, 0, nil, []string{}
	require.NoError(t, s.PutBatch(ctx, b))
	got, err = s.Batch(ctx, "abc123")
	require.NoError(t, err)
	b.Errors = nil
	require.Equal(t, b, got)
}

func testBatchBoxes(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.EqualError(t, s.AddBatchBoxes(ctx, "", []store.BatchBox{{ID: "b1"}}), "add batch boxes: empty batch id")
	require.EqualError(t, s.AddBatchBoxes(ctx, "x", []store.BatchBox{{ID: "b1"}, {ID: ""}}), `add batch boxes of "x": box 1: empty id`)
	n, unknown, err := s.CountBatchBoxes(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 0}, [2]int{n, unknown}, "a failed add adds nothing")

	// Added in chunks, out of order, with repeats: one row per box, the
	// last add's flag wins.
	var all []store.BatchBox
	for i := range 250 {
		all = append(all, store.BatchBox{ID: fmt.Sprintf("box-%04d", (i*37)%250), Unknown: i%10 == 0})
	}
	require.NoError(t, s.AddBatchBoxes(ctx, "x", all[:120]))
	require.NoError(t, s.AddBatchBoxes(ctx, "x", all[100:]))
	require.NoError(t, s.AddBatchBoxes(ctx, "x", []store.BatchBox{{ID: "box-0001", Unknown: true}, {ID: "box-0001"}}))
	require.NoError(t, s.AddBatchBoxes(ctx, "y", []store.BatchBox{{ID: "box-0001"}, {ID: "other"}}))
	require.NoError(t, s.AddBatchBoxes(ctx, "y", nil))

	wantUnknown := map[string]bool{}
	for _, b := range all {
		wantUnknown[b.ID] = b.Unknown
	}
	wantUnknown["box-0001"] = false
	var want, wantU []string
	for i := range 250 {
		id := fmt.Sprintf("box-%04d", i)
		want = append(want, id)
		if wantUnknown[id] {
			wantU = append(wantU, id)
		}
	}
	n, unknown, err = s.CountBatchBoxes(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, [2]int{250, len(wantU)}, [2]int{n, unknown})

	for _, tc := range []struct {
		name string
		q    store.BatchBoxQuery
		want []string
	}{
		{"all boxes by id", store.BatchBoxQuery{Batch: "x", Limit: 30}, want},
		{"unknown only", store.BatchBoxQuery{Batch: "x", UnknownOnly: true, Limit: 7}, wantU},
		{"another batch", store.BatchBoxQuery{Batch: "y", Limit: 1}, []string{"box-0001", "other"}},
		{"no such batch", store.BatchBoxQuery{Batch: "z", Limit: 5}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			q := tc.q
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100, "paging does not end")
				page, err := s.BatchBoxes(ctx, q)
				require.NoError(t, err)
				require.LessOrEqual(t, len(page), q.Limit)
				got = append(got, page...)
				if len(page) < q.Limit {
					break
				}
				q.After = page[len(page)-1]
			}
			require.Equal(t, tc.want, got)
		})
	}
	got, err := s.BatchBoxes(ctx, store.BatchBoxQuery{Batch: "x", After: "box-0247"})
	require.NoError(t, err)
	require.Equal(t, []string{"box-0248", "box-0249"}, got, "no limit: the rest")
}

func testTouchThenUpsert(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.TouchBoxes(ctx, []string{"b2", "b1", "b1"}))
	require.NoError(t, s.TouchBoxes(ctx, nil))
	got, err := s.Boxes(ctx, store.BoxQuery{})
	require.NoError(t, err)
	require.Equal(t, []fleet.Box{{ID: "b1"}, {ID: "b2"}}, got, "unknown boxes are added with only an id")

	b1 := fleet.Box{ID: "b1", Model: "FA-X70", Firmware: "6.1.0", Site: "par1",
		Owners: []string{"ops@example.com"}, Escalation: []string{"oncall@example.com"}, Tags: []string{"prod", "db"}}
	require.NoError(t, s.UpsertBoxes(ctx, []fleet.Box{b1}))
	require.NoError(t, s.TouchBoxes(ctx, []string{"b1", "b3"})) // keeps what the inventory said
	got, err = s.Boxes(ctx, store.BoxQuery{})
	require.NoError(t, err)
	require.Equal(t, []fleet.Box{b1, {ID: "b2"}, {ID: "b3"}}, got)

	// A later upsert replaces the inventory fields; the last of equal ids wins.
	b1.Firmware, b1.Tags, b1.Escalation = "6.2.1", []string{"prod"}, nil
	require.NoError(t, s.UpsertBoxes(ctx, []fleet.Box{{ID: "b1", Model: "old"}, b1}))
	got, err = s.Boxes(ctx, store.BoxQuery{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []fleet.Box{b1}, got)

	require.EqualError(t, s.UpsertBoxes(ctx, []fleet.Box{b1, {Model: "x"}}), "upsert boxes: box 1: empty id")
	require.EqualError(t, s.TouchBoxes(ctx, []string{"b1", ""}), "touch boxes: id 1: empty")
}

func testBoxesPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	var all []fleet.Box
	for i := range 25 {
		all = append(all, fleet.Box{ID: fmt.Sprintf("box%03d", i), Model: "m", Site: "s"})
	}
	shuffled := append([]fleet.Box(nil), all...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	require.NoError(t, s.UpsertBoxes(ctx, shuffled))

	var pages [][]fleet.Box
	q := store.BoxQuery{Limit: 10}
	for {
		page, err := s.Boxes(ctx, q)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		q.After = page[len(page)-1].ID
	}
	require.Len(t, pages, 3)
	require.Equal(t, all[:10], pages[0])
	require.Equal(t, all[10:20], pages[1])
	require.Equal(t, all[20:], pages[2])

	got, err := s.Boxes(ctx, store.BoxQuery{After: "box020"})
	require.NoError(t, err)
	require.Equal(t, all[21:], got, "no limit")
	n, err := s.CountBoxes(ctx, store.BoxQuery{After: "box020", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, 25, n, "count ignores After and Limit")
}

func testBoxesFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	boxes := []fleet.Box{
		{ID: "a1", Model: "FA-X70", Site: "par1", Tags: []string{"prod", "db"}},
		{ID: "a2", Model: "FA-X70", Site: "lon1", Tags: []string{"production"}},
		{ID: "a3", Model: "VSP-5500", Site: "par1", Tags: []string{"prod"}},
		{ID: "a4", Model: "VSP-5500", Site: "par1"},
		{ID: "a5", Model: "FA-X70", Site: "par1", Tags: []string{"dev", "prod"}},
	}
	require.NoError(t, s.UpsertBoxes(ctx, boxes))
	require.NoError(t, s.TouchBoxes(ctx, []string{"a0"})) // no site, model or tags

	tests := []struct {
		name  string
		q     store.BoxQuery
		want  []string
		count int // CountBoxes of q, which ignores After and Limit
	}{
		{"all", store.BoxQuery{}, []string{"a0", "a1", "a2", "a3", "a4", "a5"}, 6},
		{"site", store.BoxQuery{Site: "par1"}, []string{"a1", "a3", "a4", "a5"}, 4},
		{"model", store.BoxQuery{Model: "FA-X70"}, []string{"a1", "a2", "a5"}, 3},
		{"tag matches whole tags only", store.BoxQuery{Tag: "prod"}, []string{"a1", "a3", "a5"}, 3},
		{"tag", store.BoxQuery{Tag: "production"}, []string{"a2"}, 1},
		{"site model and tag", store.BoxQuery{Site: "par1", Model: "FA-X70", Tag: "prod"}, []string{"a1", "a5"}, 2},
		{"no match", store.BoxQuery{Tag: "nope"}, nil, 0},
		{"filter with paging", store.BoxQuery{Site: "par1", After: "a1", Limit: 2}, []string{"a3", "a4"}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Boxes(ctx, tc.q)
			require.NoError(t, err)
			var ids []string
			for _, b := range got {
				ids = append(ids, b.ID)
			}
			require.Equal(t, tc.want, ids)
			n, err := s.CountBoxes(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.count, n)
		})
	}
}

func newFinding(box, rule, component string, sev finding.Severity, at time.Time) finding.Finding {
	return finding.Finding{
		Box: box, Rule: rule, Component: component, Severity: sev,
		Title: rule + " on " + component, Problem: "something is wrong",
		Evidence: finding.Evidence{
			Metric:      telemetry.PoolUsedBytes,
			Numbers:     []finding.Number{{Name: "slope", Value: 1.5, Unit: "GB/day"}},
			Series:      []finding.Point{{Time: at.Add(-time.Hour), Value: 1}, {Time: at, Value: 2}},
			WindowStart: at.Add(-time.Hour), WindowEnd: at,
		},
		Remediation:  []string{"step one", "step two"},
		TimeToImpact: 6 * 24 * time.Hour,
		DetectedAt:   at,
	}
}

func testUpsertFinding(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := newFinding("b1", finding.RuleCapacity, "pool/ssd_r6", finding.Warning, t0)
	f.Status, f.Note = finding.StatusResolved, "ignored on create" // the store decides these
	created, err := s.UpsertFinding(ctx, f)
	require.NoError(t, err)
	require.True(t, created)
	got, err := s.Finding(ctx, "b1/capacity_forecast/pool/ssd_r6")
	require.NoError(t, err)
	want := f
	want.FirstSeen, want.LastSeen, want.Status, want.Note = t0, t0, finding.StatusOpen, ""
	require.Equal(t, want, got)

	require.NoError(t, s.SetFindingStatus(ctx, f.Fingerprint(), finding.StatusAcknowledged, "on it"))

	// A repeat detection: content and LastSeen replaced, FirstSeen and status kept.
	later := t0.Add(6 * time.Hour)
	g := newFinding("b1", finding.RuleCapacity, "pool/ssd_r6", finding.Critical, later)
	g.Title, g.Problem, g.TimeToImpact = "pool fills in 2 days", "faster now", 48*time.Hour
	g.Evidence.Numbers = []finding.Number{{Name: "days_left", Value: 2}}
	g.Remediation = []string{"expand the pool"}
	created, err = s.UpsertFinding(ctx, g)
	require.NoError(t, err)
	require.False(t, created)
	got, err = s.Finding(ctx, f.Fingerprint())
	require.NoError(t, err)
	want = g
	want.FirstSeen, want.LastSeen, want.Status, want.Note = t0, later, finding.StatusAcknowledged, "on it"
	require.Equal(t, want, got)

	_, err = s.Finding(ctx, "b1/capacity_forecast/pool/other")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualError(t, err, `get finding "b1/capacity_forecast/pool/other": not found`)

	tests := []struct {
		name string
		edit func(f *finding.Finding)
		want string
	}{
		{"unknown severity", func(f *finding.Finding) { f.Severity = "fatal" },
			`upsert finding "b1/capacity_forecast/pool/ssd_r6": unknown severity "fatal": allowed info, warning, critical`},
		{"empty rule", func(f *finding.Finding) { f.Rule = "" },
			`upsert finding "b1//pool/ssd_r6": empty box, rule or component`},
		{"zero detection time", func(f *finding.Finding) { f.DetectedAt = time.Time{} },
			`upsert finding "b1/capacity_forecast/pool/ssd_r6": zero detected_at`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := f
			tc.edit(&bad)
			_, err := s.UpsertFinding(ctx, bad)
			require.EqualError(t, err, tc.want)
		})
	}
}

func testFindings(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := []finding.Finding{
		newFinding("b1", finding.RuleCapacity, "pool/p0", finding.Warning, t0),
		newFinding("b1", finding.RuleDiskFailure, "disk/3", finding.Critical, t0),
		newFinding("b2", finding.RuleCapacity, "pool/p1", finding.Critical, t0),
		newFinding("b2", finding.RuleFirmwareAdvisory, "node/0", finding.Info, t0),
		newFinding("b3", finding.RulePortErrors, "port/0:1:1", finding.Warning, t0),
	}
	for _, f := range in {
		_, err := s.UpsertFinding(ctx, f)
		require.NoError(t, err)
	}
	require.NoError(t, s.SetFindingStatus(ctx, in[2].Fingerprint(), finding.StatusAcknowledged, ""))
	require.NoError(t, s.SetFindingStatus(ctx, in[4].Fingerprint(), finding.StatusResolved, "fixed"))

	tests := []struct {
		name string
		q    store.FindingQuery
		want []string
	}{
		{"all, most severe first then by fingerprint", store.FindingQuery{}, []string{
			"b1/disk_failure_risk/disk/3", "b2/capacity_forecast/pool/p1",
			"b1/capacity_forecast/pool/p0", "b3/port_errors/port/0:1:1",
			"b2/firmware_advisory/node/0"}},
		{"box", store.FindingQuery{Box: "b2"}, []string{"b2/capacity_forecast/pool/p1", "b2/firmware_advisory/node/0"}},
		{"rule", store.FindingQuery{Rule: finding.RuleCapacity}, []string{"b2/capacity_forecast/pool/p1", "b1/capacity_forecast/pool/p0"}},
		{"min severity warning", store.FindingQuery{MinSeverity: finding.Warning}, []string{
			"b1/disk_failure_risk/disk/3", "b2/capacity_forecast/pool/p1",
			"b1/capacity_forecast/pool/p0", "b3/port_errors/port/0:1:1"}},
		{"min severity critical", store.FindingQuery{MinSeverity: finding.Critical}, []string{
			"b1/disk_failure_risk/disk/3", "b2/capacity_forecast/pool/p1"}},
		{"status", store.FindingQuery{Status: finding.StatusOpen}, []string{
			"b1/disk_failure_risk/disk/3", "b1/capacity_forecast/pool/p0", "b2/firmware_advisory/node/0"}},
		{"status and box", store.FindingQuery{Status: finding.StatusAcknowledged, Box: "b2"}, []string{"b2/capacity_forecast/pool/p1"}},
		{"limit", store.FindingQuery{Limit: 2}, []string{"b1/disk_failure_risk/disk/3", "b2/capacity_forecast/pool/p1"}},
		{"no match", store.FindingQuery{Box: "b9"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Findings(ctx, tc.q)
			require.NoError(t, err)
			var fps []string
			for _, f := range got {
				fps = append(fps, f.Fingerprint())
			}
			require.Equal(t, tc.want, fps)
		})
	}
	_, err := s.Findings(ctx, store.FindingQuery{MinSeverity: "urgent"})
	require.EqualError(t, err, `query findings: unknown severity "urgent": allowed info, warning, critical`)
}

func testSetFindingStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := newFinding("b1", finding.RuleLatency, "volume/db01", finding.Warning, t0)
	_, err := s.UpsertFinding(ctx, f)
	require.NoError(t, err)

	tests := []struct {
		name   string
		fp     string
		status finding.Status
		note   string
		want   string // error; empty for success
	}{
		{"acknowledge", f.Fingerprint(), finding.StatusAcknowledged, "looking", ""},
		{"resolve", f.Fingerprint(), finding.StatusResolved, "replaced the cable", ""},
		{"undeliverable", f.Fingerprint(), finding.StatusUndeliverable, "550 no such user", ""},
		{"unknown status", f.Fingerprint(), "closed", "",
			`set finding status "b1/latency_anomaly/volume/db01": unknown status "closed": allowed open, acknowledged, resolved, undeliverable`},
		{"unknown finding", "b1/latency_anomaly/volume/zz", finding.StatusResolved, "",
			`set finding status "b1/latency_anomaly/volume/zz": not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetFindingStatus(ctx, tc.fp, tc.status, tc.note)
			if tc.want != "" {
				require.EqualError(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			got, err := s.Finding(ctx, tc.fp)
			require.NoError(t, err)
			require.Equal(t, tc.status, got.Status)
			require.Equal(t, tc.note, got.Note)
			require.Equal(t, f.Evidence, got.Evidence, "status changes leave the content alone")
		})
	}
	err = s.SetFindingStatus(ctx, "nope/x/y", finding.StatusResolved, "")
	require.True(t, errors.Is(err, store.ErrNotFound))
}

func testScanReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ScanReports(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = s.ScanReport(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualError(t, err, `get scan report "nope": not found`)
	require.EqualError(t, s.PutScanReport(ctx, store.ScanReport{}), "put scan report: empty id")

	reports := []store.ScanReport{
		{ID: "scan-b", Selector: "site=par1", StartedAt: t0.Add(time.Hour), FinishedAt: t0.Add(2 * time.Hour),
			Boxes: 100, Analysed: 99, Findings: 3, BySeverity: map[string]int{"critical": 1, "warning": 2},
			FailedShards: []string{"b050..b059: timeout"}, Runs: 2,
			Remediations: 3, DispatchErrors: []string{"signal-with-start remediate-x: unavailable"},
			MoreFailedShards: 41, MoreDispatchErrors: 7},
		{ID: "scan-a", Selector: "all", StartedAt: t0, FinishedAt: t0.Add(time.Minute), Boxes: 5, Analysed: 5, Runs: 1},
		{ID: "scan-c", Selector: "tag=prod", StartedAt: t0.Add(3 * time.Hour), Runs: 1},
	}
	for _, r := range reports {
		require.NoError(t, s.PutScanReport(ctx, r))
	}
	got, err = s.ScanReports(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, []store.ScanReport{reports[2], reports[0], reports[1]}, got)
	got, err = s.ScanReports(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []store.ScanReport{reports[2], reports[0]}, got)

	// Replaced when the scan finishes.
	done := reports[2]
	done.FinishedAt, done.Boxes, done.Findings, done.BySeverity = t0.Add(4*time.Hour), 7, 1, map[string]int{"info": 1}
	require.NoError(t, s.PutScanReport(ctx, done))
	one, err := s.ScanReport(ctx, "scan-c")
	require.NoError(t, err)
	require.Equal(t, done, one)
	got, err = s.ScanReports(ctx, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
}

// BenchAppendSamples measures AppendSamples on s with batches of 5,000 new
// samples (10 boxes, 10 components, 5 metrics, 10 times) and reports samples/s.
func testEmails(t *testing.T, s store.Store) {
	ctx := context.Background()
	t1 := time.Date(2026, 11, 1, 10, 0, 0, 123, time.UTC)
	e1 := store.EmailRecord{MessageID: "<a.0.notify@x>", Fingerprint: "b/r/c", Kind: "notify", To: []string{"o@x", "p@x"}, Subject: "s1", SentAt: t1}
	e2 := store.EmailRecord{MessageID: "<a.1.reminder@x>", Fingerprint: "b/r/c", Kind: "reminder", To: []string{"o@x"}, Subject: "s2", SentAt: t1.Add(time.Hour)}
	other := store.EmailRecord{MessageID: "<z.0.notify@x>", Fingerprint: "b/r/d", Kind: "notify", Subject: "s3", SentAt: t1}

	sent, err := s.EmailSent(ctx, e1.MessageID)
	require.NoError(t, err)
	require.False(t, sent)
	for _, e := range []store.EmailRecord{e2, e1, other, e1} { // e1 twice: a no-op
		require.NoError(t, s.RecordEmail(ctx, e))
	}
	sent, err = s.EmailSent(ctx, e1.MessageID)
	require.NoError(t, err)
	require.True(t, sent)
	got, err := s.Emails(ctx, "b/r/c")
	require.NoError(t, err)
	require.Equal(t, []store.EmailRecord{e1, e2}, got)
	got, err = s.Emails(ctx, "b/r/d")
	require.NoError(t, err)
	require.Equal(t, []string{}, got[0].To)
	got, err = s.Emails(ctx, "nope")
	require.NoError(t, err)
	require.Empty(t, got)
	require.EqualError(t, s.RecordEmail(ctx, store.EmailRecord{Fingerprint: "b/r/c"}), "record email: message id and fingerprint are required")
}

func testAnalyzerRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.AnalyzerStatuses(ctx)
	require.NoError(t, err)
	require.Empty(t, got)
	t1 := time.Date(2026, 11, 1, 10, 0, 0, 123, time.UTC)
	long := strings.Repeat("e", 5000)
	for _, r := range []store.AnalyzerRun{
		{Analyzer: "fans", Box: "b1", At: t1, Rules: []string{"fan_stopped", "fan_slow"}},
		{Analyzer: "fans", Box: "b2", At: t1.Add(time.Minute), Err: `run external analyzer "fans": exit status 3`},
		{Analyzer: "fans", Box: "b3", At: t1.Add(-time.Minute), Err: "an older failure, recorded late"},
		{Analyzer: "fans", Box: "b1", At: t1.Add(-time.Hour), Rules: []string{"fan_stopped", "fan_noise"}}, // an older success adds its rules
		{Analyzer: "smart", Box: "b1", At: t1, Err: long},
		{Analyzer: "quiet", Box: "b1", At: t1},
	} {
		require.NoError(t, s.RecordAnalyzerRun(ctx, r))
	}
	got, err = s.AnalyzerStatuses(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.AnalyzerStatus{
		{Analyzer: "fans", LastError: `run external analyzer "fans": exit status 3`, LastBox: "b2", FailedAt: t1.Add(time.Minute),
			OKAt: t1, Rules: []string{"fan_noise", "fan_slow", "fan_stopped"}},
		{Analyzer: "quiet", OKAt: t1},
		{Analyzer: "smart", LastError: long[:1024], LastBox: "b1", FailedAt: t1},
	}, got)
	require.EqualError(t, s.RecordAnalyzerRun(ctx, store.AnalyzerRun{At: t1}), "record analyzer run: missing analyzer")
}

func testStats(t *testing.T, s store.Store) {
	ctx := context.Background()
	st, err := s.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, store.Stats{}, st)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	_, err = s.AppendSamples(ctx, grid([]string{"b1", "b2"}, []string{"pool/p0"}, []string{"pool.used_bytes"}, 5, func(i int) float64 { return float64(i) }))
	require.NoError(t, err)
	require.NoError(t, s.TouchBoxes(ctx, []string{"b1", "b2"}))
	require.NoError(t, s.PutBatch(ctx, store.Batch{ID: "x", Path: "/p", Format: "csv", Status: store.BatchStored, Accepted: 10, Rejected: 3, StoredAt: at}))
	require.NoError(t, s.PutBatch(ctx, store.Batch{ID: "y", Path: "/q", Format: "csv", Status: store.BatchQuarantined, Rejected: 4, StoredAt: at}))
	_, err = s.UpsertFinding(ctx, newFinding("b1", "capacity_forecast", "pool/p0", finding.Warning, at))
	require.NoError(t, err)
	require.NoError(t, s.RecordEmail(ctx, store.EmailRecord{MessageID: "<m>", Fingerprint: "b1/capacity_forecast/pool/p0", SentAt: at}))
	st, err = s.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, store.Stats{Boxes: 2, Samples: 10, Batches: 2, Rejected: 7, Findings: 1, Emails: 1}, st)
}

func BenchAppendSamples(b *testing.B, s store.Store) {
	ctx := context.Background()
	const boxes, comps, metrics, times = 10, 10, 5, 10
	batch := make([]telemetry.Sample, 0, boxes*comps*metrics*times)
	for bx := range boxes {
		for c := range comps {
			for m := range metrics {
				for i := range times {
					batch = append(batch, sample(fmt.Sprintf("bench%02d", bx), fmt.Sprintf("disk/%d", c),
						telemetry.Catalogue[m], t0.Add(time.Duration(i)*time.Second), float64(i)))
				}
			}
		}
	}
	total := 0
	for iter := 0; b.Loop(); iter++ {
		shift := time.Duration(iter*times) * time.Second // new keys every iteration
		for i := range batch {
			batch[i].Time = t0.Add(shift + time.Duration(i%times)*time.Second)
		}
		n, err := s.AppendSamples(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if n != int64(len(batch)) {
			b.Fatalf("appended %d rows, want %d", n, len(batch))
		}
		total += len(batch)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "samples/s")
}

func testTimesRoundTripRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	times := []time.Time{
		t0,
		time.Date(2025, 12, 31, 23, 59, 59, 999999999, zone),
		time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), // before the epoch
		time.Unix(0, 0).UTC(),
		time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC),
		time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	// Batch, finding and scan report times too; the zero time stays zero.
	b := store.Batch{ID: "h", FirstSample: times[1], LastSample: times[2], StoredAt: times[0]}
	require.NoError(t, s.PutBatch(ctx, b))
	gotB, err := s.Batch(ctx, "h")
	require.NoError(t, err)
	require.Equal(t, times[1].UTC(), gotB.FirstSample)
	require.Equal(t, times[2].UTC(), gotB.LastSample)
	require.Equal(t, times[0], gotB.StoredAt)

	f := newFinding("b1", finding.RuleCapacity, "pool/p0", finding.Warning, times[1])
	f.Evidence.Series = []finding.Point{{Time: times[1], Value: 1}, {Time: times[2], Value: 2}}
	f.Evidence.WindowStart = times[2]
	_, err = s.UpsertFinding(ctx, f)
	require.NoError(t, err)
	gotF, err := s.Finding(ctx, f.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, times[1].UTC(), gotF.DetectedAt)
	require.Equal(t, times[1].UTC(), gotF.FirstSeen)
	require.Equal(t, times[1].UTC(), gotF.Evidence.Series[0].Time)
	require.Equal(t, times[2], gotF.Evidence.WindowStart)
	require.Equal(t, times[1].UTC(), gotF.Evidence.WindowEnd)

	require.NoError(t, s.PutScanReport(ctx, store.ScanReport{ID: "scan", StartedAt: times[1]}))
	gotR, err := s.ScanReport(ctx, "scan")
	require.NoError(t, err)
	require.Equal(t, times[1].UTC(), gotR.StartedAt)
	require.True(t, gotR.FinishedAt.IsZero())
}
