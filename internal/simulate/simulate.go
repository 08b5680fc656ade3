// Package simulate builds a deterministic synthetic fleet of storage arrays
// with injected faults: an inventory (fleet.yaml), telemetry batches for every
// box and the ground truth of the faults (faults.json), so that the whole
// pipeline can be demonstrated and tested end to end. The same options and
// seed always give the same bytes.
package simulate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sanwatch/sanwatch/internal/analysis"
	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Minute
	DefaultWindow   = 48 * time.Hour
)

// DefaultEnd is the time of the newest simulated sample when Options.End is
// zero: a fixed instant, so that the same seed gives the same files.
var DefaultEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// MinFaultPoints is the fewest samples per series a run with faults needs in
// its fault placement span (the shorter of Hours and Window): faults start in
// its last 35% to 15% and must leave enough points for the analyzers'
// sustain counts.
const MinFaultPoints = 120

// MaxPoints is the most samples per series a run may have.
const MaxPoints = 1_000_000

// File names Run writes under Options.Out.
const (
	InventoryFile = "fleet.yaml"
	FaultsFile    = "faults.json"
	BatchDir      = "batches"
)

// Formats is the rotation of batch formats over boxes: box i is written in
// Formats[i%len(Formats)], so every format is exercised.
var Formats = []telemetry.Format{
	{Kind: telemetry.KindCSV},
	{Kind: telemetry.KindJSONL},
	{Kind: telemetry.KindCSV, Gzip: true},
	{Kind: telemetry.KindJSONL, Gzip: true},
}

// Options says what fleet to simulate.
type Options struct {
	Boxes    int           // boxes in the fleet, at least 1
	Hours    int           // hours of telemetry per box, at least 1
	Interval time.Duration // time between samples (0: DefaultInterval)
	Faults   int           // faults to inject, each on its own box (0..Boxes)
	Seed     int64         // everything random derives from it
	// End is the time of the newest sample (zero: DefaultEnd).
	End time.Time
	// BatchHours splits each box's telemetry into files of this many hours
	// (0: one file per box covering all hours).
	BatchHours int
	// Out is the directory to write into; it is created if needed.
	Out string
	// Advisories are the firmware advisories the analyzers use: the
	// firmware_advisory fault picks a model and firmware inside one of them,
	// every other box gets firmware outside all of them.
	Advisories []analysis.Advisory
	// Window is the analysis window the faults are placed for (0:
	// DefaultWindow). Onsets fall between 65% and 85% of the shorter of the
	// simulated span and Window, counted back from End, so the first half of
	// a window ending at the newest sample is always a clean baseline.
	Window time.Duration
	// Benign adds the patterns of healthy real fleets that a rule shaped to
	// a clean simulator would mistake for faults: daily and weekly cycles,
	// nightly backups, bursts, gaps in reporting, counter resets,
	// thin-provisioned growth with deletes, noisy sensors (see benign.go).
	Benign bool
	// Weak is the share of faults injected below the rules' thresholds on
	// purpose (Fault.BelowThreshold): those must not be found.
	Weak float64
}

// Fault is one injected fault: the ground truth a scan must find. Kind is
// the rule name (finding.Rule*) and Component the component the finding
// must carry. Onset is the first sample of the faulty behaviour. For the
// trend kinds (capacity_forecast, ssd_wear) the series follows one straight
// trend over the whole span, so it is already outside the healthy envelope
// before Onset; Onset then marks where the trend reaches its stated level.
type Fault struct {
	Box       string    `json:"box"`
	Kind      string    `json:"kind"`
	Component string    `json:"component"`
	Onset     time.Time `json:"onset"`
	// BelowThreshold marks a fault injected too weak to act on (a pool
	// filling in two months, latency up 30%, a few errors): finding it would
	// be crying wolf.
	BelowThreshold bool `json:"below_threshold,omitempty"`
}

// Result says what Run wrote.
type Result struct {
	Boxes         int     `json:"boxes"`
	Files         int     `json:"files"`
	Samples       int64   `json:"samples"`
	Faults        []Fault `json:"faults"`
	InventoryPath string  `json:"inventory_path"`
	FaultsPath    string  `json:"faults_path"`
	BatchDir      string  `json:"batch_dir"`
}

// Run simulates the fleet described by o and writes Out/fleet.yaml,
// Out/faults.json (sorted by box) and Out/batches/<box>-<n><ext>, where n
// counts a box's batches from 001 and ext is the format's extension. Batch
// files a previous run left in Out/batches are removed first; other files
// are left alone.
func Run(o Options) (Result, error) {
	o, err := o.normalize()
	if err != nil {
		return Result{}, err
	}
	p, err := plan(o)
	if err != nil {
		return Result{}, err
	}

	batchDir := filepath.Join(o.Out, BatchDir)
	if err := os.MkdirAll(batchDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create batch directory: %w", err)
	}
	if err := removeOldBatches(batchDir); err != nil {
		return Result{}, err
	}

	inv, err := fleet.New(InventoryFile, p.sites, p.inventoryBoxes())
	if err != nil {
		return Result{}, fmt.Errorf("build inventory: %w", err)
	}
	res := Result{
		Boxes:         len(p.boxes),
		Faults:        p.faults,
		InventoryPath: filepath.Join(o.Out, InventoryFile),
		FaultsPath:    filepath.Join(o.Out, FaultsFile),
		BatchDir:      batchDir,
	}
	if err := fleet.Write(res.InventoryPath, inv); err != nil {
		return Result{}, err
	}

	files, samples, err := writeBatches(o, p, batchDir)
	if err != nil {
		return Result{}, err
	}
	res.Files, res.Samples = files, samples

	data, err := json.MarshalIndent(p.faults, "", "  ")
	if err != nil {
		return Result{}, fmt.Errorf("encode faults: %w", err)
	}
	if err := os.WriteFile(res.FaultsPath, append(data, '\n'), 0o644); err != nil {
		return Result{}, fmt.Errorf("write faults: %w", err)
	}
	return res, nil
}

// LoadFaults reads a faults.json written by Run.
func LoadFaults(path string) ([]Fault, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read faults: %w", err)
	}
	var faults []Fault
	if err := json.Unmarshal(data, &faults); err != nil {
		return nil, fmt.Errorf("parse faults %s: %w", path, err)
	}
	for i, f := range faults {
		where := fmt.Sprintf("%s: faults[%d]", path, i)
		switch {
		case f.Box == "":
			return nil, fmt.Errorf("%s: missing box", where)
		case !slices.Contains(finding.Rules, f.Kind):
			return nil, fmt.Errorf("%s (%s): unknown kind %q", where, f.Box, f.Kind)
		case f.Component == "":
			return nil, fmt.Errorf("%s (%s): missing component", where, f.Box)
		case f.Onset.IsZero():
			return nil, fmt.Errorf("%s (%s): missing onset", where, f.Box)
		}
	}
	return faults, nil
}

// normalize applies the defaults and checks o.
func (o Options) normalize() (Options, error) {
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.End.IsZero() {
		o.End = DefaultEnd
	}
	o.End = o.End.UTC()
	switch {
	case o.Boxes < 1:
		return o, fmt.Errorf("check options: boxes %d: want at least 1", o.Boxes)
	case o.Boxes > 999_999:
		return o, fmt.Errorf("check options: boxes %d: want at most 999999", o.Boxes)
	case o.Hours < 1:
		return o, fmt.Errorf("check options: hours %d: want at least 1", o.Hours)
	case o.Hours > 100_000:
		return o, fmt.Errorf("check options: hours %d: want at most 100000", o.Hours)
	case o.Interval < time.Second:
		return o, fmt.Errorf("check options: interval %s: want at least 1s", o.Interval)
	case o.Interval > time.Duration(o.Hours)*time.Hour:
		return o, fmt.Errorf("check options: interval %s: want at most hours (%dh)", o.Interval, o.Hours)
	case o.Faults < 0:
		return o, fmt.Errorf("check options: faults %d: want 0 or more", o.Faults)
	case o.Faults > o.Boxes:
		return o, fmt.Errorf("check options: faults %d: want at most boxes (%d), one fault per box", o.Faults, o.Boxes)
	case o.BatchHours < 0:
		return o, fmt.Errorf("check options: batch hours %d: want 0 or more", o.BatchHours)
	case o.Window < 0:
		return o, fmt.Errorf("check options: window %s: want 0 or more", o.Window)
	case o.Out == "":
		return o, errors.New("check options: out: missing output directory")
	}
	if pts := o.points(); pts > MaxPoints {
		return o, fmt.Errorf("check options: hours %d at interval %s give %d samples per series: want at most %d", o.Hours, o.Interval, pts, MaxPoints)
	}
	if o.Faults > 0 {
		if pts := int(min(o.span(), o.Window) / o.Interval); pts < MinFaultPoints {
			return o, fmt.Errorf("check options: hours %d, window %s at interval %s give %d samples to place faults in: want at least %d",
				o.Hours, o.Window, o.Interval, pts, MinFaultPoints)
		}
	}
	return o, nil
}

func (o Options) span() time.Duration { return time.Duration(o.Hours) * time.Hour }

// points returns the number of samples per series.
func (o Options) points() int { return int(o.span() / o.Interval) }

// timeAt returns the time of sample i; the last sample is at End.
func (o Options) timeAt(i int) time.Time {
	return o.End.Add(-time.Duration(o.points()-1-i) * o.Interval)
}

// onsetRange returns the first and last sample index a fault may start at.
func (o Options) onsetRange() (lo, hi int) {
	n := o.points()
	w := min(o.span(), o.Window)
	from := o.End.Add(-time.Duration(0.35 * float64(w)))
	to := o.End.Add(-time.Duration(0.15 * float64(w)))
	lo, hi = n, -1
	for i := 0; i < n; i++ {
		t := o.timeAt(i)
		if lo == n && !t.Before(from) {
			lo = i
		}
		if !t.After(to) {
			hi = i
		}
	}
	return lo, hi
}

// Component names of a simulated box.
var (
	poolNames    = []string{"pool/ssd_r6", "pool/nl_r6"}
	volumeNames  = []string{"volume/db01", "volume/vm01", "volume/bak01"}
	diskCount    = 4
	ssdCount     = 2 // disks 0..ssdCount-1 are SSDs
	portNames    = []string{"port/0:1:1", "port/1:1:1"}
	nodeCount    = 2
	batteryCount = 2
)

var (
	siteNames = []string{"par1", "fra1", "lon1", "nyc1"}
	models    = []string{"SW-5000", "SW-7000", "SW-9000"}
	// firmwares are the versions healthy boxes run, before removing those
	// inside an advisory range.
	firmwares = map[string][]string{
		"SW-5000": {"2.9.4", "3.1.0", "3.1.2", "3.2.1"},
		"SW-7000": {"4.1.6", "4.2.8", "4.2.9", "4.3.1"},
		"SW-9000": {"6.0.9", "6.1.4", "6.2.0", "6.2.3"},
	}
)

// boxPlan is one box to simulate.
type boxPlan struct {
	index  int
	box    fleet.Box
	format telemetry.Format
	group  string // replication group, "" when not replicated
	fault  *Fault
	onset  int    // sample index of the fault onset
	metric string // for latency faults: the metric that degrades
	gaps   []bool // sample indexes the box did not report (benign gaps), or nil
}

// fleetPlan is the whole simulated fleet before any telemetry is generated.
type fleetPlan struct {
	sites  map[string]fleet.Site
	boxes  []boxPlan
	faults []Fault // sorted by box
}

func (p *fleetPlan) inventoryBoxes() []fleet.Box {
	out := make([]fleet.Box, len(p.boxes))
	for i, b := range p.boxes {
		out[i] = b.box
	}
	return out
}

// plan draws the inventory and the faults from the seed.
func plan(o Options) (*fleetPlan, error) {
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x5a17a7c4))
	p := &fleetPlan{sites: map[string]fleet.Site{}}

	sites := siteNames[:3+r.IntN(2)]
	for _, s := range sites {
		code := s[:3]
		p.sites[s] = fleet.Site{
			Owners:     []string{"storage-" + code + "@example.com"},
			Escalation: []string{"oncall-" + code + "@example.com"},
		}
	}

	healthyFW, err := safeFirmwares(o.Advisories)
	if err != nil {
		return nil, err
	}
	healthyModels := make([]string, 0, len(models))
	for _, m := range models {
		if len(healthyFW[m]) > 0 {
			healthyModels = append(healthyModels, m)
		}
	}

	replicated := make([]bool, o.Boxes)
	p.boxes = make([]boxPlan, o.Boxes)
	for i := range p.boxes {
		model := healthyModels[r.IntN(len(healthyModels))]
		fws := healthyFW[model]
		env := "prod"
		if r.Float64() < 0.3 {
			env = "dev"
		}
		p.boxes[i] = boxPlan{
			index: i,
			box: fleet.Box{
				ID:       fmt.Sprintf("box-%04d", i+1),
				Model:    model,
				Firmware: fws[r.IntN(len(fws))],
				Site:     sites[r.IntN(len(sites))],
				Tags:     []string{env},
			},
			format: Formats[i%len(Formats)],
		}
		replicated[i] = r.Float64() < 0.35
	}

	lo, hi := o.onsetRange()
	faultBoxes := r.Perm(o.Boxes)[:o.Faults]
	for j, bi := range faultBoxes {
		b := &p.boxes[bi]
		b.fault = &Fault{Box: b.box.ID, Kind: finding.Rules[j%len(finding.Rules)]}
		b.fault.BelowThreshold = b.fault.Kind != finding.RuleFirmwareAdvisory && r.Float64() < o.Weak
		b.onset = lo + r.IntN(hi-lo+1)
		if b.fault.Kind == finding.RuleSilentBox && b.fault.BelowThreshold {
			b.onset = o.points() - 2 // quiet for two intervals: late, not silent
		}
		b.fault.Onset = o.timeAt(b.onset)
		switch b.fault.Kind {
		case finding.RuleReplicationLag:
			replicated[bi] = true
		case finding.RuleFirmwareAdvisory:
			model, fw, id, err := affectedFirmware(r, o.Advisories)
			if err != nil {
				return nil, err
			}
			b.box.Model, b.box.Firmware = model, fw
			b.fault.Component = "firmware/" + id
		}
	}

	// Replicated boxes are paired in id order; each pair shares a group.
	k := 0
	for i := range p.boxes {
		if replicated[i] {
			p.boxes[i].group = fmt.Sprintf("rg%03d", k/2+1)
			p.boxes[i].box.Tags = append(p.boxes[i].box.Tags, "replicated")
			k++
		}
	}

	for _, bi := range faultBoxes {
		b := &p.boxes[bi]
		f := b.fault
		switch f.Kind {
		case finding.RuleCapacity:
			f.Component = poolNames[r.IntN(len(poolNames))]
		case finding.RuleLatency:
			f.Component = volumeNames[r.IntN(len(volumeNames))]
			b.metric = telemetry.VolumeReadLatencyMs
			if r.IntN(2) == 1 {
				b.metric = telemetry.VolumeWriteLatencyMs
			}
		case finding.RuleDiskFailure:
			f.Component = fmt.Sprintf("disk/%d", r.IntN(diskCount))
		case finding.RuleSSDWear:
			f.Component = fmt.Sprintf("disk/%d", r.IntN(ssdCount))
		case finding.RulePortErrors:
			f.Component = portNames[r.IntN(len(portNames))]
		case finding.RuleCacheBattery:
			f.Component = fmt.Sprintf("battery/%d", r.IntN(batteryCount))
		case finding.RuleSaturation:
			f.Component = fmt.Sprintf("node/%d", r.IntN(nodeCount))
		case finding.RuleReplicationLag:
			f.Component = "replication/" + b.group
		case finding.RuleSilentBox:
			f.Component = analysis.SilentComponent // the box stops reporting at onset
		}
		p.faults = append(p.faults, *f)
	}
	slices.SortFunc(p.faults, func(a, b Fault) int { return strings.Compare(a.Box, b.Box) })
	return p, nil
}

// safeFirmwares returns, per model, the simulated firmwares no advisory matches.
func safeFirmwares(advs []analysis.Advisory) (map[string][]string, error) {
	out := map[string][]string{}
	found := false
	for _, m := range models {
		for _, fw := range firmwares[m] {
			if matching(advs, m, fw) == 0 {
				out[m] = append(out[m], fw)
				found = true
			}
		}
	}
	if !found {
		return nil, errors.New("plan fleet: every simulated model and firmware is inside an advisory range")
	}
	return out, nil
}

func matching(advs []analysis.Advisory, model, fw string) int {
	n := 0
	for _, a := range advs {
		if a.Matches(model, fw) {
			n++
		}
	}
	return n
}

// affectedFirmware picks an advisory and a model and firmware that match it
// and no other advisory, so the fault raises exactly one finding.
func affectedFirmware(r *rand.Rand, advs []analysis.Advisory) (model, fw, id string, err error) {
	for _, ai := range r.Perm(len(advs)) {
		a := advs[ai]
		cands := []string{a.FirmwareMin, a.FirmwareMax}
		if r.IntN(2) == 1 {
			cands[0], cands[1] = cands[1], cands[0]
		}
		for _, c := range cands {
			if a.Matches(a.Model, c) && matching(advs, a.Model, c) == 1 {
				return a.Model, c, a.ID, nil
			}
		}
	}
	return "", "", "", fmt.Errorf("plan fleet: firmware_advisory fault: none of the %d advisories gives a model and firmware that matches it alone", len(advs))
}

var batchName = regexp.MustCompile(`^box-[0-9]+-[0-9]+\.(csv|jsonl)(\.gz)?$`)

// removeOldBatches deletes the batch files a previous run left in dir.
func removeOldBatches(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list batch directory: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && batchName.MatchString(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove old batch: %w", err)
			}
		}
	}
	return nil
}

// writeBatches generates and writes every box's telemetry, boxes in parallel.
// Each box draws from its own generator seeded by (Seed, box index), so the
// output does not depend on scheduling.
func writeBatches(o Options, p *fleetPlan, dir string) (files int, samples int64, err error) {
	type out struct {
		files   int
		samples int64
		err     error
	}
	results := make([]out, len(p.boxes))
	next := make(chan int)
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(p.boxes))
	for range workers {
		wg.Go(func() {
			for i := range next {
				f, s, err := writeBox(o, &p.boxes[i], dir)
				results[i] = out{f, s, err}
			}
		})
	}
	for i := range p.boxes {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			return 0, 0, r.err
		}
		files += r.files
		samples += r.samples
	}
	return files, samples, nil
}

// writeBox writes one box's batches, samples in time order.
func writeBox(o Options, b *boxPlan, dir string) (files int, samples int64, err error) {
	series := generate(o, b)
	n := o.points()
	batchLen := n
	if o.BatchHours > 0 {
		batchLen = max(1, int(time.Duration(o.BatchHours)*time.Hour/o.Interval))
	}
	if b.fault != nil && b.fault.Kind == finding.RuleSilentBox {
		n = b.onset // a silent box sends nothing from its onset on
	}
	if o.Benign {
		b.gaps = gapsOf(o, b)
	}
	for start := 0; start < n; start += batchLen {
		files++
		name := filepath.Join(dir, fmt.Sprintf("%s-%03d%s", b.box.ID, files, b.format.Ext()))
		c, err := writeFile(name, b, series, o, start, min(start+batchLen, n))
		samples += c
		if err != nil {
			return files, samples, err
		}
	}
	return files, samples, nil
}

func writeFile(name string, b *boxPlan, series []series, o Options, from, to int) (n int64, err error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, fmt.Errorf("create batch: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close batch %s: %w", name, cerr)
		}
	}()
	w := telemetry.NewWriter(f, b.format)
	for i := from; i < to; i++ {
		if b.gaps != nil && b.gaps[i] {
			continue // a benign gap: the box did not report
		}
		t := o.timeAt(i)
		for _, s := range series {
			if err := w.Write(telemetry.Sample{Time: t, Box: b.box.ID, Component: s.component, Metric: s.metric, Value: s.values[i]}); err != nil {
				return n, fmt.Errorf("write batch %s: %w", name, err)
			}
			n++
		}
	}
	if err := w.Close(); err != nil {
		return n, fmt.Errorf("write batch %s: %w", name, err)
	}
	return n, nil
}

// roundTo rounds v to d decimals.
func roundTo(v float64, d int) float64 {
	p := math.Pow10(d)
	return math.Round(v*p) / p
}
