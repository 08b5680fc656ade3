package tsdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Mapping reads metrics that exporters already keep in the engine as
// sanwatch's catalogue: each entry maps the series of one selector to one
// catalogue metric, the box from a label, the component from a template
// over the labels.
type Mapping struct {
	// BoxLabel is the label whose value is the box id (e.g. "instance"),
	// for entries that do not name their own.
	BoxLabel string  `yaml:"box_label"`
	Entries  []Entry `yaml:"entries"`
}

// Entry maps one series selector to one catalogue metric.
type Entry struct {
	Metric string `yaml:"metric"` // catalogue metric, e.g. disk.reallocated_sectors
	// Selector is a series selector: a metric name and/or label matchers,
	// e.g. smartctl_device_attribute{attribute_id="5",attribute_value_type="raw"}.
	Selector string `yaml:"selector"`
	// Component is a text/template over the series labels giving the
	// component, e.g. "disk/{{.device}}"; a label it names must exist.
	Component string `yaml:"component"`
	// Scale multiplies every value (e.g. 0.001: microseconds to ms); 0 is 1.
	Scale    float64 `yaml:"scale"`
	BoxLabel string  `yaml:"box_label"` // overrides Mapping.BoxLabel

	file string // the mapping file's base name
	n    int    // the entry's number in its file, from 1
	tmpl *template.Template
}

// selectorRE accepts a metric name, label matchers in braces, or both.
var selectorRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{.*\})?\s*$`)

// labelRE is a valid label name.
var labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// LoadMapping reads and checks mapping files; their entries are read in
// the order given. An error names the file and the entry.
func LoadMapping(paths ...string) (*Mapping, error) {
	out := &Mapping{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load mapping: %w", err)
		}
		var m Mapping
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("load mapping %s: %w", p, err)
		}
		if len(m.Entries) == 0 {
			return nil, fmt.Errorf("load mapping %s: no entries", p)
		}
		for i := range m.Entries {
			e := &m.Entries[i]
			e.file, e.n = filepath.Base(p), i+1
			if e.BoxLabel == "" {
				e.BoxLabel = m.BoxLabel
			}
			if err := e.check(); err != nil {
				return nil, fmt.Errorf("load mapping %s: entry %d (%s): %w", p, i+1, e.Metric, err)
			}
		}
		out.Entries = append(out.Entries, m.Entries...)
	}
	if len(out.Entries) == 0 {
		return nil, errors.New("load mapping: no mapping files")
	}
	return out, nil
}

func (e *Entry) check() error {
	if !slices.Contains(telemetry.Catalogue, e.Metric) {
		return fmt.Errorf("metric %q is not in the catalogue (%s)", e.Metric, strings.Join(telemetry.Catalogue, ", "))
	}
	m := selectorRE.FindStringSubmatch(e.Selector)
	if m == nil || (m[1] == "" && m[2] == "") {
		return fmt.Errorf("selector %q: want a series selector: name{label=\"value\",...}", e.Selector)
	}
	if !labelRE.MatchString(e.BoxLabel) {
		return fmt.Errorf("box_label %q: want a label name", e.BoxLabel)
	}
	if e.Component == "" {
		return errors.New("component: empty: want a template such as disk/{{.device}}")
	}
	t, err := template.New(e.Metric).Option("missingkey=error").Parse(e.Component)
	if err != nil {
		return fmt.Errorf("component %q: %w", e.Component, err)
	}
	e.tmpl = t
	if e.Scale < 0 {
		return fmt.Errorf("scale %v: must not be negative", e.Scale)
	}
	return nil
}

// where names the entry in messages.
func (e *Entry) where() string {
	return fmt.Sprintf("mapping %s entry %d (%s <- %s)", e.file, e.n, e.Metric, e.Selector)
}

func (e *Entry) scale() float64 {
	if e.Scale == 0 {
		return 1
	}
	return e.Scale
}

// boxSelector is the entry's selector with the box label matcher added.
func (e *Entry) boxSelector(label, box string) string {
	matcher := label + "=" + quote(box)
	sel := strings.TrimSpace(e.Selector)
	if inner, ok := strings.CutSuffix(sel, "}"); ok {
		i := strings.IndexByte(inner, '{')
		if strings.TrimSpace(inner[i+1:]) == "" {
			return inner[:i+1] + matcher + "}"
		}
		return inner + "," + matcher + "}"
	}
	return sel + "{" + matcher + "}"
}

// componentOf renders the component of a series from its labels.
func (e *Entry) componentOf(labels map[string]string) (string, error) {
	var sb strings.Builder
	if err := e.tmpl.Execute(&sb, labels); err != nil {
		return "", fmt.Errorf("component %q of series %v: %w", e.Component, labels, err)
	}
	if sb.Len() == 0 {
		return "", fmt.Errorf("component %q of series %v: empty", e.Component, labels)
	}
	return sb.String(), nil
}

// Discovery is what Discover found.
type Discovery struct {
	Boxes []string // sorted, distinct
	// Empty names the mapping entries that matched no series with a box
	// label in the window.
	Empty []string
}

// ErrNothingMatched is returned by Discover when no entry matched anything.
var ErrNothingMatched = errors.New("no series matched")

// Discover lists the boxes that have series in [from, to): the values of
// the box label of each mapping entry's series, or of sanwatch's own series
// without a mapping. When nothing matches, the error names every entry.
func (b *Backend) Discover(ctx context.Context, from, to time.Time) (Discovery, error) {
	lo, hi, ok := msRange(from, to)
	if !ok {
		return Discovery{}, fmt.Errorf("discover boxes: empty window %s to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	type query struct{ where, label, selector string }
	var qs []query
	if b.o.Mapping != nil {
		for _, e := range b.o.Mapping.Entries {
			qs = append(qs, query{e.where(), e.BoxLabel, e.Selector})
		}
	} else {
		qs = []query{{"sanwatch's own series", LabelBox, `{__name__=~"` + NamePrefix + `.+"}`}}
	}
	seen := map[string]bool{}
	var d Discovery
	for _, q := range qs {
		vals, err := b.labelValues(ctx, q.label, q.selector, lo, hi)
		if err != nil {
			return Discovery{}, fmt.Errorf("discover boxes: %s: %w", q.where, err)
		}
		if len(vals) == 0 {
			d.Empty = append(d.Empty, fmt.Sprintf("%s: no series with label %s from %s to %s", q.where, q.label,
				from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)))
		}
		for _, v := range vals {
			if v != "" && !seen[v] {
				seen[v] = true
				d.Boxes = append(d.Boxes, v)
			}
		}
	}
	slices.Sort(d.Boxes)
	if len(d.Boxes) == 0 {
		return d, fmt.Errorf("discover boxes: %w: %s", ErrNothingMatched, strings.Join(d.Empty, "; "))
	}
	return d, nil
}

// labelValues returns the values of label on the series of selector.
func (b *Backend) labelValues(ctx context.Context, label, selector string, lo, hi int64) ([]string, error) {
	q := url.Values{"match[]": {selector}, "start": {formatSeconds(lo)}, "end": {formatSeconds(hi)}}
	resp, err := b.request(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("label values: decode: %w", err)
	}
	return r.Data, nil
}
