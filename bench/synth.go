package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// step is the sample interval of every synthetic series.
const step = 5 * time.Minute

// shape says which series each synthetic box has and how many points each.
type shape struct {
	Pools, Volumes, Disks, Ports, Nodes, Batteries int
	Points                                         int
	// ReadLatencyOnly gives volumes only their read latency series
	// (otherwise also write latency and IOPS).
	ReadLatencyOnly bool
}

// fullShape is a realistic box: 41 series of 288 points (24 h at 5 minutes).
var fullShape = shape{Pools: 2, Volumes: 6, Disks: 6, Ports: 4, Nodes: 2, Batteries: 1, Points: 288}

// lightShape is the scale test's box: 2 series of 24 points.
var lightShape = shape{Volumes: 1, Ports: 1, Points: 24, ReadLatencyOnly: true}

// Series returns how many series a box of this shape has.
func (s shape) Series() int {
	perVolume := 3
	if s.ReadLatencyOnly {
		perVolume = 1
	}
	return s.Pools*2 + s.Volumes*perVolume + s.Disks*2 + s.Ports + s.Nodes + s.Batteries
}

// Fault kinds injected into some synthetic boxes.
const (
	faultNone     = ""
	faultLatency  = "latency"  // volume/vol00 read latency x8 at the end
	faultCapacity = "capacity" // pool/p0 filling up within about a day
	faultPort     = "port"     // port CRC errors growing every interval at the end
)

// faultOf picks a box's fault from its index: about 2% latency, 1.4%
// capacity and 1.1% port faults; the rest are healthy.
func faultOf(i int) string {
	switch {
	case i%50 == 7:
		return faultLatency
	case i%70 == 11:
		return faultCapacity
	case i%90 == 13:
		return faultPort
	}
	return faultNone
}

// seriesSpec is one synthetic series: its name and its value at point i.
type seriesSpec struct {
	component, metric string
	value             func(i int) float64
}

// synthBox generates one box's series deterministically from its id: every
// series of s, its last point one step before end, keeping the points with
// from <= time < to, ordered by component, metric, time as store.Window
// returns them. The samples are generated in that order (no sorting), so the
// generator stays cheap next to the analysis it feeds.
func synthBox(id string, fault string, s shape, end, from, to time.Time) []telemetry.Sample {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x5a17))
	n := s.Points
	start := end.Add(-time.Duration(n) * step)
	tail := max(6, n/24) // points a fault covers at the end of the window
	specs := make([]seriesSpec, 0, s.Series())
	add := func(component, metric string, v func(i int) float64) {
		specs = append(specs, seriesSpec{component, metric, v})
	}
	noise := func(base, rel float64) func(int) float64 {
		return func(int) float64 { return base * (1 + rel*(r.Float64()*2-1)) }
	}

	for p := range s.Nodes {
		add(fmt.Sprintf("node/%d", p), telemetry.NodeCPUBusyPct, noise(30+20*r.Float64(), 0.1))
	}
	for p := range s.Batteries {
		add(fmt.Sprintf("battery/%d", p), telemetry.BatteryChargePct, noise(97, 0.02))
	}
	for d := range s.Disks {
		comp := fmt.Sprintf("disk/%02d", d)
		realloc := float64(r.IntN(4))
		add(comp, telemetry.DiskReallocatedSectors, func(int) float64 { return realloc })
		add(comp, telemetry.DiskTemperatureC, noise(34, 0.03))
	}
	for p := range s.Pools {
		comp := fmt.Sprintf("pool/p%d", p)
		total := 100e12
		used := total * (0.3 + 0.3*r.Float64())
		if p == 0 && fault == faultCapacity {
			add(comp, telemetry.PoolUsedBytes, func(i int) float64 { return total * (0.80 + 0.15*float64(i)/float64(n)) })
		} else {
			add(comp, telemetry.PoolUsedBytes, noise(used, 0.0001))
		}
		add(comp, telemetry.PoolTotalBytes, func(int) float64 { return total })
	}
	for p := range s.Ports {
		comp := fmt.Sprintf("port/0:1:%d", p+1)
		base := float64(r.IntN(1000))
		add(comp, telemetry.PortCRCErrors, func(i int) float64 {
			if p == 0 && fault == faultPort && i >= n-tail {
				return base + 60*float64(i-(n-tail)+1)
			}
			return base
		})
	}
	for v := range s.Volumes {
		comp := fmt.Sprintf("volume/vol%02d", v)
		lat := 0.8 + 0.6*r.Float64()
		if !s.ReadLatencyOnly {
			add(comp, telemetry.VolumeIOPS, noise(2000+3000*r.Float64(), 0.1))
		}
		add(comp, telemetry.VolumeReadLatencyMs, func(i int) float64 {
			x := lat * (1 + 0.04*(r.Float64()*2-1))
			if v == 0 && fault == faultLatency && i >= n-tail {
				x *= 8
			}
			return x
		})
		if !s.ReadLatencyOnly {
			add(comp, telemetry.VolumeWriteLatencyMs, noise(lat*1.3, 0.04))
		}
	}
	sort.Slice(specs, func(i, j int) bool {
		if specs[i].component != specs[j].component {
			return specs[i].component < specs[j].component
		}
		return specs[i].metric < specs[j].metric
	})

	// The points inside [from, to): indexes lo <= i < hi.
	lo, hi := 0, n
	for lo < n && start.Add(time.Duration(lo)*step).Before(from) {
		lo++
	}
	for hi > lo && !start.Add(time.Duration(hi-1)*step).Before(to) {
		hi--
	}
	out := make([]telemetry.Sample, 0, len(specs)*(hi-lo))
	for _, sp := range specs {
		for i := lo; i < hi; i++ {
			out = append(out, telemetry.Sample{
				Time: start.Add(time.Duration(i) * step), Box: id, Component: sp.component, Metric: sp.metric, Value: sp.value(i),
			})
		}
	}
	return out
}

// synthStore is a store.Store over a synthetic fleet: Window generates each
// box's series on the fly (synthBox), so a 100,000-box scan needs no database;
// the other methods keep small in-memory maps. It is safe for concurrent use.
type synthStore struct {
	ids   []string // sorted
	index map[string]int
	shape shape
	end   time.Time // every box's newest sample is end - step

	mu       sync.Mutex
	appended int64
	batches  map[string]store.Batch
	findings map[string]finding.Finding
	reports  map[string]store.ScanReport
	emails   map[string]store.EmailRecord
}

var _ store.Store = (*synthStore)(nil)

// newSynthStore returns a store of n boxes named box-000000... whose windows
// end at end.
func newSynthStore(n int, s shape, end time.Time) *synthStore {
	st := &synthStore{
		ids: make([]string, n), index: make(map[string]int, n), shape: s, end: end,
		batches: map[string]store.Batch{}, findings: map[string]finding.Finding{},
		reports: map[string]store.ScanReport{}, emails: map[string]store.EmailRecord{},
	}
	for i := range n {
		st.ids[i] = fmt.Sprintf("box-%06d", i)
		st.index[st.ids[i]] = i
	}
	return st
}

// expectedFaults counts the boxes with an injected fault that their shape
// can show (a capacity fault needs a pool, and so on): one finding each.
func (s *synthStore) expectedFaults() int {
	n := 0
	for i := range s.ids {
		switch faultOf(i) {
		case faultLatency:
			n += min(1, s.shape.Volumes)
		case faultCapacity:
			n += min(1, s.shape.Pools)
		case faultPort:
			n += min(1, s.shape.Ports)
		}
	}
	return n
}

// AppendSamples counts the samples; Window generates data, so none are kept.
func (s *synthStore) AppendSamples(_ context.Context, samples []telemetry.Sample) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appended += int64(len(samples))
	return int64(len(samples)), nil
}

// Window generates box's series and returns those with from <= time < to.
func (s *synthStore) Window(_ context.Context, box string, from, to time.Time) ([]telemetry.Sample, error) {
	i, ok := s.index[box]
	if !ok {
		return nil, nil
	}
	return synthBox(box, faultOf(i), s.shape, s.end, from, to), nil
}

// WindowKind generates the window and keeps the components of one kind.
func (s *synthStore) WindowKind(ctx context.Context, box, kind string, from, to time.Time) ([]telemetry.Sample, error) {
	all, err := s.Window(ctx, box, from, to)
	out := all[:0]
	for _, x := range all {
		if strings.HasPrefix(x.Component, kind+"/") {
			out = append(out, x)
		}
	}
	return out, err
}

// LatestSample returns the time of the last generated point of a known box.
func (s *synthStore) LatestSample(_ context.Context, box string) (time.Time, error) {
	if _, ok := s.index[box]; !ok {
		return time.Time{}, store.ErrNotFound
	}
	return s.end.Add(-step), nil
}

// PutBatch records a batch.
func (s *synthStore) PutBatch(_ context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches[b.ID] = b
	return nil
}

// NewestSample returns the end of the synthetic data: every box reports to the end.
func (s *synthStore) NewestSample(context.Context) (time.Time, error) { return s.end.Add(-step), nil }

// Batch returns a recorded batch or store.ErrNotFound.
func (s *synthStore) Batch(_ context.Context, id string) (store.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return store.Batch{}, store.ErrNotFound
	}
	return b, nil
}

// AddBatchBoxes is a no-op: benches analyse the synthetic fleet, not batches.
func (s *synthStore) AddBatchBoxes(context.Context, string, []store.BatchBox) error { return nil }

// BatchBoxes returns no boxes: benches analyse the synthetic fleet, not batches.
func (s *synthStore) BatchBoxes(context.Context, store.BatchBoxQuery) ([]string, error) {
	return nil, nil
}

// CountBatchBoxes counts no boxes: benches analyse the synthetic fleet, not batches.
func (s *synthStore) CountBatchBoxes(context.Context, string) (int, int, error) { return 0, 0, nil }

// UpsertBoxes is a no-op: the synthetic fleet is fixed.
func (s *synthStore) UpsertBoxes(context.Context, []fleet.Box) error { return nil }

// TouchBoxes is a no-op: the synthetic fleet is fixed.
func (s *synthStore) TouchBoxes(context.Context, []string) error { return nil }

// Boxes returns a page of box ids after q.After (selectors are ignored: the
// synthetic boxes have no site, model or tags).
func (s *synthStore) Boxes(_ context.Context, q store.BoxQuery) ([]fleet.Box, error) {
	i := sort.SearchStrings(s.ids, q.After)
	if i < len(s.ids) && s.ids[i] == q.After {
		i++
	}
	j := len(s.ids)
	if q.Limit > 0 {
		j = min(j, i+q.Limit)
	}
	out := make([]fleet.Box, 0, j-i)
	for _, id := range s.ids[i:j] {
		out = append(out, fleet.Box{ID: id})
	}
	return out, nil
}

// CountBoxes returns the number of synthetic boxes.
func (s *synthStore) CountBoxes(context.Context, store.BoxQuery) (int, error) { return len(s.ids), nil }

// UpsertFinding stores f by fingerprint, keeping FirstSeen and status.
func (s *synthStore) UpsertFinding(_ context.Context, f finding.Finding) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fp := f.Fingerprint()
	prev, ok := s.findings[fp]
	if ok {
		f.FirstSeen, f.Status, f.Note = prev.FirstSeen, prev.Status, prev.Note
	} else {
		f.FirstSeen, f.Status = f.DetectedAt, finding.StatusOpen
	}
	f.LastSeen = f.DetectedAt
	s.findings[fp] = f
	return !ok, nil
}

// Finding returns the finding with fingerprint fp or store.ErrNotFound.
func (s *synthStore) Finding(_ context.Context, fp string) (finding.Finding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.findings[fp]
	if !ok {
		return finding.Finding{}, store.ErrNotFound
	}
	return f, nil
}

// Findings returns every stored finding by fingerprint (filters are ignored).
func (s *synthStore) Findings(context.Context, store.FindingQuery) ([]finding.Finding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]finding.Finding, 0, len(s.findings))
	for _, f := range s.findings {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint() < out[j].Fingerprint() })
	return out, nil
}

// SetFindingStatus sets a finding's status and note, or store.ErrNotFound.
func (s *synthStore) SetFindingStatus(_ context.Context, fp string, status finding.Status, note string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.findings[fp]
	if !ok {
		return store.ErrNotFound
	}
	f.Status, f.Note = status, note
	s.findings[fp] = f
	return nil
}

// PutScanReport records a scan report.
func (s *synthStore) PutScanReport(_ context.Context, r store.ScanReport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports[r.ID] = r
	return nil
}

// ScanReport returns a recorded report or store.ErrNotFound.
func (s *synthStore) ScanReport(_ context.Context, id string) (store.ScanReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reports[id]
	if !ok {
		return store.ScanReport{}, store.ErrNotFound
	}
	return r, nil
}

// ScanReports returns the reports, newest first, at most limit (0: all).
func (s *synthStore) ScanReports(_ context.Context, limit int) ([]store.ScanReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.ScanReport, 0, len(s.reports))
	for _, r := range s.reports {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RecordEmail records a sent email once per Message-ID.
func (s *synthStore) RecordEmail(_ context.Context, e store.EmailRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.emails[e.MessageID]; !ok {
		s.emails[e.MessageID] = e
	}
	return nil
}

// EmailSent reports whether a Message-ID was recorded.
func (s *synthStore) EmailSent(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.emails[id]
	return ok, nil
}

// Emails returns the emails of a fingerprint, oldest first.
func (s *synthStore) Emails(_ context.Context, fp string) ([]store.EmailRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.EmailRecord
	for _, e := range s.emails {
		if e.Fingerprint == fp {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SentAt.Before(out[j].SentAt) })
	return out, nil
}

// RecordAnalyzerRun does nothing: the bench runs no external analyzers.
func (s *synthStore) RecordAnalyzerRun(context.Context, store.AnalyzerRun) error { return nil }

// AnalyzerStatuses returns none: the bench runs no external analyzers.
func (s *synthStore) AnalyzerStatuses(context.Context) ([]store.AnalyzerStatus, error) {
	return nil, nil
}

// DeleteSamplesBefore deletes nothing: the samples are generated, not kept.
func (s *synthStore) DeleteSamplesBefore(context.Context, time.Time, int) (int, error) {
	return 0, nil
}

// Compact does nothing: nothing is kept on disk.
func (s *synthStore) Compact(context.Context) error { return nil }

// Stats counts what the store holds (samples: those appended, not generated).
func (s *synthStore) Stats(context.Context) (store.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return store.Stats{
		Boxes: len(s.ids), Samples: s.appended, Batches: len(s.batches),
		Findings: len(s.findings), Emails: len(s.emails),
	}, nil
}

// resetFindings forgets every finding, so a second scan sees them as new again.
func (s *synthStore) resetFindings() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.findings = map[string]finding.Finding{}
}

// findingCount returns how many findings are stored.
func (s *synthStore) findingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.findings)
}

// Close does nothing.
func (s *synthStore) Close() error { return nil }
