// Package smart turns drive-health data in other people's formats into
// sanwatch samples: Backblaze's daily drive-stats CSV files (any year's set
// of SMART columns) and smartctl's JSON output (ATA and NVMe). A drive
// becomes the component disk/<serial> of a box; how drives map to boxes is
// the caller's choice (a column, a fixed box, or hashing into pods).
package smart

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// ErrNotDriveStats is wrapped by the error ReadDriveStats returns when the
// whole file is rejected: its header lacks a required column, or it is not
// CSV at all.
var ErrNotDriveStats = errors.New("not a drive-stats file")

// ATAMetrics maps ATA SMART attribute ids to catalogue metrics; the raw value
// is used. Attributes not listed become disk.smart_<id>_raw, stored and
// available to external analyzers.
var ATAMetrics = map[int]string{
	5:   telemetry.DiskReallocatedSectors,
	9:   telemetry.DiskPowerOnHours,
	187: telemetry.DiskReportedUncorrectable,
	188: telemetry.DiskCommandTimeouts,
	194: telemetry.DiskTemperatureC,
	197: telemetry.DiskPendingSectors,
	198: telemetry.DiskOfflineUncorrectable,
	199: telemetry.DiskUDMACRCErrors,
}

// ATAMetric returns the metric name of ATA attribute id.
func ATAMetric(id int) string {
	if m, ok := ATAMetrics[id]; ok {
		return m
	}
	return "disk.smart_" + strconv.Itoa(id) + "_raw"
}

// DiskComponent returns the component name of the drive with serial.
func DiskComponent(serial string) string { return "disk/" + serial }

// BoxMapper says which box a drive belongs to.
type BoxMapper struct {
	// Column, when set, names the drive-stats column holding the box id.
	Column string
	// Box, when set (and Column is not), puts every drive in this box.
	Box string
	// Pods, when neither is set, hashes each serial into one of Pods boxes
	// named <Prefix>-NNNN: public data has no boxes, and a stable hash keeps
	// a drive in the same pod in every file.
	Pods   int
	Prefix string // "pod" when empty
}

// Validate says what is wrong with m.
func (m BoxMapper) Validate() error {
	if m.Column == "" && m.Box == "" && m.Pods < 1 {
		return errors.New("drives to boxes: give a box column, a box, or a pod count of at least 1")
	}
	return nil
}

// boxOf returns the box of serial when no column names it.
func (m BoxMapper) boxOf(serial string) string {
	if m.Box != "" {
		return m.Box
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(serial))
	prefix := m.Prefix
	if prefix == "" {
		prefix = "pod"
	}
	return fmt.Sprintf("%s-%04d", prefix, h.Sum32()%uint32(m.Pods))
}

// Failure is a drive that failed: the truth a backtest scores against.
type Failure struct {
	Box       string    `json:"box"`
	Component string    `json:"component"`
	Model     string    `json:"model,omitempty"`
	Time      time.Time `json:"time"`
}

// Drive is one drive seen in a file, for the inventory.
type Drive struct {
	Box, Component, Model string
}

// DriveStatsResult summarises one file.
type DriveStatsResult struct {
	Rows     int64                 `json:"rows"`
	Accepted int64                 `json:"accepted"` // rows turned into samples
	Rejected int64                 `json:"rejected"`
	Samples  int64                 `json:"samples"`
	Errors   []telemetry.LineError `json:"errors,omitempty"` // the first MaxErrors rejections
	Columns  []int                 `json:"columns"`          // ATA attribute ids with a raw column
	First    time.Time             `json:"first"`
	Last     time.Time             `json:"last"`
}

// DriveStatsOptions tune ReadDriveStats.
type DriveStatsOptions struct {
	Name      string    // file name used in errors
	Boxes     BoxMapper // how drives map to boxes
	MaxErrors int       // LineErrors kept (0: 20)
	ChunkSize int       // samples per emit (0: 5000)
	// OnFailure is called for each row whose failure column is 1.
	OnFailure func(Failure)
	// OnDrive is called for each row (so the caller can build an inventory).
	OnDrive func(Drive)
}

// smartRawColumn matches drive-stats raw SMART columns.
var smartRawColumn = regexp.MustCompile(`^smart_(\d+)_raw$`)

// ReadDriveStats reads one Backblaze drive-stats file (gzip detected by its
// magic bytes) and emits its raw SMART values as samples at the row's date
// (00:00 UTC). Any set of smart_N_raw columns is taken; normalized columns
// are ignored. A bad row is rejected with file:line: reason and the others
// are kept; a file whose header lacks date or serial_number is rejected
// whole with an error wrapping ErrNotDriveStats.
func ReadDriveStats(r io.Reader, o DriveStatsOptions, emit func([]telemetry.Sample) error) (DriveStatsResult, error) {
	var res DriveStatsResult
	if err := o.Boxes.Validate(); err != nil {
		return res, err
	}
	name := o.Name
	if name == "" {
		name = "input"
	}
	maxErrors, chunk := o.MaxErrors, o.ChunkSize
	if maxErrors <= 0 {
		maxErrors = 20
	}
	if chunk <= 0 {
		chunk = 5000
	}
	in, err := maybeGunzip(r)
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	cr := csv.NewReader(in)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1 // checked here, with a clearer message
	header, err := cr.Read()
	if err == io.EOF {
		return res, fmt.Errorf("%s: empty file: %w", name, ErrNotDriveStats)
	}
	if err != nil {
		return res, fmt.Errorf("%s:1: header is not CSV: %w", name, ErrNotDriveStats)
	}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, need := range []string{"date", "serial_number"} {
		if _, ok := cols[need]; !ok {
			return res, fmt.Errorf("%s:1: missing column %q (a drive-stats header has date, serial_number, model, failure, smart_N_raw ...): %w",
				name, need, ErrNotDriveStats)
		}
	}
	if o.Boxes.Column != "" {
		if _, ok := cols[o.Boxes.Column]; !ok {
			return res, fmt.Errorf("%s:1: missing box column %q: %w", name, o.Boxes.Column, ErrNotDriveStats)
		}
	}
	type rawCol struct {
		idx    int
		id     int
		metric string
	}
	var raws []rawCol
	for i, h := range header {
		if m := smartRawColumn.FindStringSubmatch(strings.TrimSpace(h)); m != nil {
			id, _ := strconv.Atoi(m[1])
			raws = append(raws, rawCol{idx: i, id: id, metric: ATAMetric(id)})
			res.Columns = append(res.Columns, id)
		}
	}
	col := func(rec []string, name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var buf []telemetry.Sample
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := emit(buf)
		buf = buf[:0]
		return err
	}
	reject := func(line int, reason string) {
		res.Rejected++
		if len(res.Errors) < maxErrors {
			res.Errors = append(res.Errors, telemetry.LineError{File: name, Line: line, Reason: reason})
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				res.Rows++
				reject(pe.Line, "not CSV: "+pe.Err.Error())
				continue
			}
			return res, fmt.Errorf("%s: read: %w", name, err)
		}
		res.Rows++
		if len(rec) != len(header) {
			reject(line, fmt.Sprintf("%d fields, header has %d", len(rec), len(header)))
			continue
		}
		date := col(rec, "date")
		at, err := time.Parse("2006-01-02", date)
		if err != nil {
			reject(line, fmt.Sprintf("date %q: want YYYY-MM-DD", date))
			continue
		}
		serial := col(rec, "serial_number")
		if serial == "" {
			reject(line, "empty serial_number")
			continue
		}
		component := DiskComponent(serial)
		if len(component) > telemetry.MaxNameBytes || !plainName(serial) {
			reject(line, fmt.Sprintf("serial_number %q: want 1 to %d of A-Z a-z 0-9 . _ : -", truncate(serial), telemetry.MaxNameBytes-len("disk/")))
			continue
		}
		box := o.Boxes.boxOf(serial)
		if o.Boxes.Column != "" {
			box = col(rec, o.Boxes.Column)
			if box == "" || len(box) > telemetry.MaxNameBytes || !plainName(box) {
				reject(line, fmt.Sprintf("box column %q = %q: want 1 to %d of A-Z a-z 0-9 . _ : -", o.Boxes.Column, truncate(box), telemetry.MaxNameBytes))
				continue
			}
		}
		failed := false
		switch f := col(rec, "failure"); f {
		case "", "0":
		case "1":
			failed = true
		default:
			reject(line, fmt.Sprintf("failure %q: want 0 or 1", truncate(f)))
			continue
		}
		start := len(buf)
		bad := ""
		for _, rc := range raws {
			v := strings.TrimSpace(rec[rc.idx])
			if v == "" {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f != f || f < 0 {
				bad = fmt.Sprintf("smart_%d_raw %q: want a number >= 0", rc.id, truncate(v))
				break
			}
			buf = append(buf, telemetry.Sample{Time: at, Box: box, Component: component, Metric: rc.metric, Value: f})
		}
		if bad != "" {
			buf = buf[:start]
			reject(line, bad)
			continue
		}
		res.Accepted++
		res.Samples += int64(len(buf) - start)
		if res.First.IsZero() || at.Before(res.First) {
			res.First = at
		}
		if at.After(res.Last) {
			res.Last = at
		}
		model := col(rec, "model")
		if o.OnDrive != nil {
			o.OnDrive(Drive{Box: box, Component: component, Model: model})
		}
		if failed && o.OnFailure != nil {
			o.OnFailure(Failure{Box: box, Component: component, Model: model, Time: at})
		}
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	return res, flush()
}

// plainName reports whether s is made of the characters a box id allows.
func plainName(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return s != ""
}

// truncate shortens s for an error message, so a hostile file cannot fill
// logs through it.
func truncate(s string) string { return truncateN(s, 40) }

// truncateN shortens s to n bytes and an ellipsis.
func truncateN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// maybeGunzip returns r, decompressed when it starts with the gzip magic.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read: %w", err)
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}
