package smart

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Truth file layout: the incidents a backtest scores findings against.
const (
	// TruthFile is the file name Import writes the truth to.
	TruthFile = "truth.csv"
	// TruthHeader is the header of a truth file; rule may be empty.
	TruthHeader = "box,component,time,rule"
	// DiskRule is the rule a drive failure is expected from.
	DiskRule = "disk_failure_risk"
)

// ImportOptions say what Import converts and where to.
type ImportOptions struct {
	Files []string  // drive-stats files, in any order (sorted by name when read)
	Out   string    // output directory: batches/, truth.csv, fleet.yaml
	Boxes BoxMapper // how drives map to boxes
	// PodSize, when set and Boxes names no column, box or pod count, sets
	// the pod count so that pods hold about PodSize drives each, counted in
	// the first file.
	PodSize int
	Site    string // the site of the boxes in fleet.yaml ("lab" when empty)
	// Log receives one line per file (may be nil).
	Log io.Writer
}

// ImportResult summarises an import.
type ImportResult struct {
	Files     int                   `json:"files"`
	Rows      int64                 `json:"rows"`
	Rejected  int64                 `json:"rejected"`
	Samples   int64                 `json:"samples"`
	Drives    int                   `json:"drives"`
	Boxes     int                   `json:"boxes"`
	Failures  int                   `json:"failures"`
	Errors    []telemetry.LineError `json:"errors,omitempty"`
	BatchDir  string                `json:"batch_dir"`
	TruthPath string                `json:"truth_path"`
	Inventory string                `json:"inventory"`
}

// maxImportErrors is how many rejected rows an import reports in all.
const maxImportErrors = 50

// Import converts Backblaze drive-stats files into sanwatch telemetry
// batches (one gzipped CSV per input file, in Out/batches), a truth file of
// the drives that failed (Out/truth.csv, one row per drive at its failure
// date, rule disk_failure_risk) and an inventory of the boxes (Out/fleet.yaml).
// A file rejected whole stops the import with its error; rejected rows are
// counted and the first ones reported, and the good rows are kept.
func Import(o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if len(o.Files) == 0 {
		return res, errors.New("import: no input files")
	}
	if o.Out == "" {
		return res, errors.New("import: no output directory")
	}
	files := append([]string(nil), o.Files...)
	sort.Strings(files) // Backblaze names files by date
	if o.Boxes.Column == "" && o.Boxes.Box == "" && o.Boxes.Pods == 0 && o.PodSize > 0 {
		n, err := countDrives(files[0])
		if err != nil {
			return res, err
		}
		o.Boxes.Pods = max(1, (n+o.PodSize-1)/o.PodSize)
	}
	if err := o.Boxes.Validate(); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	res.BatchDir = filepath.Join(o.Out, "batches")
	if err := os.MkdirAll(res.BatchDir, 0o755); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	drives := map[string]Drive{} // by box/component
	failures := map[string]Failure{}
	for _, path := range files {
		fr, err := importFile(path, res.BatchDir, o.Boxes, drives, failures)
		res.Files++
		res.Rows += fr.Rows
		res.Rejected += fr.Rejected
		res.Samples += fr.Samples
		for _, e := range fr.Errors {
			if len(res.Errors) < maxImportErrors {
				res.Errors = append(res.Errors, e)
			}
		}
		if err != nil {
			return res, err
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "import: %s rows=%d rejected=%d samples=%d attributes=%v\n",
				filepath.Base(path), fr.Rows, fr.Rejected, fr.Samples, fr.Columns)
		}
	}
	res.Drives = len(drives)
	res.Failures = len(failures)
	res.TruthPath = filepath.Join(o.Out, TruthFile)
	if err := writeTruth(res.TruthPath, failures); err != nil {
		return res, err
	}
	res.Inventory = filepath.Join(o.Out, "fleet.yaml")
	n, err := writeInventory(res.Inventory, o.Site, drives)
	res.Boxes = n
	return res, err
}

// importFile converts one drive-stats file into one batch.
func importFile(path, dir string, boxes BoxMapper, drives map[string]Drive, failures map[string]Failure) (DriveStatsResult, error) {
	in, err := os.Open(path)
	if err != nil {
		return DriveStatsResult{}, fmt.Errorf("import: %w", err)
	}
	defer in.Close()
	base := filepath.Base(path)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".csv")
	outPath := filepath.Join(dir, base+".csv.gz")
	out, err := os.Create(outPath)
	if err != nil {
		return DriveStatsResult{}, fmt.Errorf("import: %w", err)
	}
	w := telemetry.NewWriter(out, telemetry.Format{Kind: telemetry.KindCSV, Gzip: true})
	res, err := ReadDriveStats(in, DriveStatsOptions{
		Name:  path,
		Boxes: boxes,
		OnDrive: func(d Drive) {
			drives[d.Box+"/"+d.Component] = d
		},
		OnFailure: func(f Failure) {
			// A drive that fails, is replaced under the same serial and fails
			// again keeps its first failure: the one a backtest can lead up to.
			if _, ok := failures[f.Box+"/"+f.Component]; !ok {
				failures[f.Box+"/"+f.Component] = f
			}
		},
	}, func(s []telemetry.Sample) error {
		for _, x := range s {
			if err := w.Write(x); err != nil {
				return err
			}
		}
		return nil
	})
	cerr := w.Close()
	ferr := out.Close()
	if err == nil {
		err = errors.Join(cerr, ferr)
	}
	if err == nil && res.Accepted == 0 {
		err = fmt.Errorf("%s: no row accepted (%d rejected)", path, res.Rejected)
	}
	if err != nil {
		_ = os.Remove(outPath)
		return res, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

// countDrives counts the rows with a serial number in one drive-stats file.
func countDrives(path string) (int, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	defer in.Close()
	seen := map[string]bool{}
	_, err = ReadDriveStats(in, DriveStatsOptions{
		Name: path, Boxes: BoxMapper{Box: "count"},
		OnDrive: func(d Drive) { seen[d.Component] = true },
	}, func([]telemetry.Sample) error { return nil })
	if err != nil {
		return 0, fmt.Errorf("import: count drives: %w", err)
	}
	return len(seen), nil
}

// writeTruth writes the failures as a truth file, sorted by time then box.
func writeTruth(path string, failures map[string]Failure) error {
	list := make([]Failure, 0, len(failures))
	for _, f := range failures {
		list = append(list, f)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Time.Equal(list[j].Time) {
			return list[i].Time.Before(list[j].Time)
		}
		if list[i].Box != list[j].Box {
			return list[i].Box < list[j].Box
		}
		return list[i].Component < list[j].Component
	})
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	cw := csv.NewWriter(f)
	_ = cw.Write(strings.Split(TruthHeader, ","))
	for _, x := range list {
		_ = cw.Write([]string{x.Box, x.Component, x.Time.UTC().Format(time.RFC3339), DiskRule})
	}
	cw.Flush()
	return errors.Join(cw.Error(), f.Close())
}

// writeInventory writes a fleet.yaml with one box per pod (or named box),
// tagged with the drive models it holds, and returns how many boxes.
func writeInventory(path, site string, drives map[string]Drive) (int, error) {
	if site == "" {
		site = "lab"
	}
	models := map[string]map[string]bool{}
	for _, d := range drives {
		if models[d.Box] == nil {
			models[d.Box] = map[string]bool{}
		}
		if d.Model != "" {
			models[d.Box][d.Model] = true
		}
	}
	ids := make([]string, 0, len(models))
	for id := range models {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	boxes := make([]fleet.Box, 0, len(ids))
	for _, id := range ids {
		model := "drive-pod"
		if len(models[id]) == 1 {
			for m := range models[id] {
				model = m
			}
		}
		boxes = append(boxes, fleet.Box{ID: id, Model: model, Firmware: "n/a", Site: site, Tags: []string{"imported"}})
	}
	inv, err := fleet.New(path, nil, boxes)
	if err != nil {
		return 0, fmt.Errorf("write inventory: %w", err)
	}
	return len(boxes), fleet.Write(path, inv)
}
