package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// ErrNoSMARTData is wrapped by the error for a smartctl document that holds
// no SMART values: a USB bridge smartctl cannot see through, a virtual disk,
// a device that refused. It is a skip to report, not a broken file.
var ErrNoSMARTData = errors.New("no SMART data")

// MaxSmartctlBytes bounds one smartctl input (all its documents).
const MaxSmartctlBytes = 64 << 20

// smartctlDoc is the part of `smartctl --json -a` output (smartmontools 7+)
// that is read.
type smartctlDoc struct {
	Smartctl struct {
		Version    []int `json:"version"`
		ExitStatus int   `json:"exit_status"`
		Messages   []struct {
			String   string `json:"string"`
			Severity string `json:"severity"`
		} `json:"messages"`
	} `json:"smartctl"`
	Device struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
	} `json:"device"`
	ModelName    string `json:"model_name"`
	SerialNumber string `json:"serial_number"`
	LocalTime    struct {
		TimeT *int64 `json:"time_t"`
	} `json:"local_time"`
	SmartStatus *struct {
		Passed bool `json:"passed"`
	} `json:"smart_status"`
	Temperature *struct {
		Current *float64 `json:"current"`
	} `json:"temperature"`
	PowerOnTime *struct {
		Hours *float64 `json:"hours"`
	} `json:"power_on_time"`
	ATA *struct {
		Table []struct {
			ID  int `json:"id"`
			Raw struct {
				Value *float64 `json:"value"`
			} `json:"raw"`
		} `json:"table"`
	} `json:"ata_smart_attributes"`
	NVMe map[string]json.RawMessage `json:"nvme_smart_health_information_log"`
}

// nvmeMetrics maps NVMe health-log fields to catalogue metrics; other
// numeric fields become disk.nvme_<field>.
var nvmeMetrics = map[string]string{
	"media_errors":    telemetry.DiskMediaErrors,
	"percentage_used": telemetry.DiskWearPct,
	"available_spare": telemetry.DiskAvailableSparePct,
	"temperature":     telemetry.DiskTemperatureC,
	"power_on_hours":  telemetry.DiskPowerOnHours,
}

// SmartctlOptions tune ReadSmartctl.
type SmartctlOptions struct {
	Name string    // file name used in errors
	Box  string    // the box the drives belong to (required)
	Now  time.Time // the time of documents without local_time (zero: rejected)
}

// SmartctlResult summarises one smartctl input.
type SmartctlResult struct {
	Documents int                   `json:"documents"`
	Drives    []Drive               `json:"drives"`
	Samples   int64                 `json:"samples"`
	Skipped   []telemetry.LineError `json:"skipped,omitempty"` // documents with no SMART data, and why
}

// ReadSmartctl reads the output of `smartctl --json -a` for one or more
// drives (concatenated documents or JSON Lines; gzip detected) and returns
// their SMART values as samples of box o.Box, component disk/<serial>. ATA
// attributes map by id (see ATAMetrics; power-on hours and temperature come
// from smartctl's decoded fields, since their raw values pack other bytes on
// some drives), NVMe health-log fields by name. A document with no SMART
// data is reported in Skipped, with smartctl's own message; a document that
// is not smartctl output fails the whole input, naming its line.
func ReadSmartctl(r io.Reader, o SmartctlOptions) ([]telemetry.Sample, SmartctlResult, error) {
	var res SmartctlResult
	name := o.Name
	if name == "" {
		name = "input"
	}
	if !plainName(o.Box) {
		return nil, res, fmt.Errorf("%s: box %q: want 1 to %d of A-Z a-z 0-9 . _ : -", name, truncate(o.Box), telemetry.MaxNameBytes)
	}
	in, err := maybeGunzip(r)
	if err != nil {
		return nil, res, fmt.Errorf("%s: %w", name, err)
	}
	data, err := io.ReadAll(io.LimitReader(in, MaxSmartctlBytes+1))
	if err != nil {
		return nil, res, fmt.Errorf("%s: read: %w", name, err)
	}
	if len(data) > MaxSmartctlBytes {
		return nil, res, fmt.Errorf("%s: larger than %d MiB", name, MaxSmartctlBytes>>20)
	}
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []telemetry.Sample
	for {
		start := dec.InputOffset()
		var doc smartctlDoc
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		line := lineAt(start + int64(len(data[start:])-len(bytes.TrimLeft(data[start:], " \t\r\n"))))
		if err != nil {
			return nil, res, fmt.Errorf("%s:%d: not smartctl JSON: %v", name, line, err)
		}
		res.Documents++
		if len(doc.Smartctl.Version) == 0 {
			return nil, res, fmt.Errorf("%s:%d: not smartctl JSON: no \"smartctl\" version (run smartctl 7+ with --json -a)", name, line)
		}
		samples, skip := doc.samples(o)
		if skip != "" {
			res.Skipped = append(res.Skipped, telemetry.LineError{File: name, Line: line, Reason: skip})
			continue
		}
		res.Drives = append(res.Drives, Drive{Box: o.Box, Component: samples[0].Component, Model: doc.ModelName})
		res.Samples += int64(len(samples))
		out = append(out, samples...)
	}
	if res.Documents == 0 {
		return nil, res, fmt.Errorf("%s: empty: no smartctl document", name)
	}
	if len(out) == 0 {
		return nil, res, &noSMARTError{msg: res.Skipped[0].Error()}
	}
	return out, res, nil
}

// noSMARTError is "file:line: no SMART data for ... (why)", wrapping ErrNoSMARTData.
type noSMARTError struct{ msg string }

func (e *noSMARTError) Error() string { return e.msg }
func (e *noSMARTError) Unwrap() error { return ErrNoSMARTData }

// samples turns one document into samples, or says why it has none.
func (d *smartctlDoc) samples(o SmartctlOptions) ([]telemetry.Sample, string) {
	dev := d.Device.Name
	if dev == "" {
		dev = "the device"
	}
	if d.ATA == nil && d.NVMe == nil {
		why := fmt.Sprintf("smartctl exit status %d", d.Smartctl.ExitStatus)
		for i, m := range d.Smartctl.Messages {
			if m.Severity == "error" || i == len(d.Smartctl.Messages)-1 {
				why = "smartctl: " + truncateN(strings.TrimSpace(m.String), 160)
				break
			}
		}
		return nil, fmt.Sprintf("no SMART data for %s (%s)", dev, why)
	}
	serial := strings.TrimSpace(d.SerialNumber)
	if serial == "" || !plainName(serial) || len(serial) > telemetry.MaxNameBytes-len("disk/") {
		return nil, fmt.Sprintf("%s: serial_number %q: want 1 to %d of A-Z a-z 0-9 . _ : -", dev, truncate(serial), telemetry.MaxNameBytes-len("disk/"))
	}
	at := o.Now
	if d.LocalTime.TimeT != nil {
		at = time.Unix(*d.LocalTime.TimeT, 0).UTC()
	}
	if at.IsZero() {
		return nil, fmt.Sprintf("%s: no local_time in the document and no time given", dev)
	}
	comp := DiskComponent(serial)
	var out []telemetry.Sample
	add := func(metric string, v float64) {
		out = append(out, telemetry.Sample{Time: at, Box: o.Box, Component: comp, Metric: metric, Value: v})
	}
	if d.ATA != nil {
		for _, a := range d.ATA.Table {
			if a.Raw.Value == nil || a.ID == 9 || a.ID == 194 {
				continue // 9 and 194 from the decoded fields below
			}
			add(ATAMetric(a.ID), *a.Raw.Value)
		}
		if d.PowerOnTime != nil && d.PowerOnTime.Hours != nil {
			add(telemetry.DiskPowerOnHours, *d.PowerOnTime.Hours)
		}
		if d.Temperature != nil && d.Temperature.Current != nil {
			add(telemetry.DiskTemperatureC, *d.Temperature.Current)
		}
	}
	keys := make([]string, 0, len(d.NVMe))
	for k := range d.NVMe {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a fixed order of samples
	for _, k := range keys {
		var v float64
		if json.Unmarshal(d.NVMe[k], &v) != nil || !plainName(k) {
			continue // arrays (temperature_sensors) and objects are not single values
		}
		metric, ok := nvmeMetrics[k]
		if !ok {
			metric = "disk.nvme_" + strings.ToLower(k)
		}
		add(metric, v)
	}
	if d.SmartStatus != nil {
		v := 0.0
		if !d.SmartStatus.Passed {
			v = 1
		}
		add("disk.smart_failing", v)
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("no SMART data for %s (the attribute table is empty)", dev)
	}
	return out, ""
}
