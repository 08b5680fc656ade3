package backtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// column is one series held compactly: 16 bytes a point instead of a
// telemetry.Sample's 80, so a quarter of a fleet's history fits in memory.
type column struct {
	component, metric string
	t                 []int64 // unix nanoseconds, ascending, unique
	v                 []float64
	back              time.Duration // the largest step back in time seen while loading
	backs             int           // how many points arrived earlier than the one before
}

// Data is the telemetry a backtest replays, per box.
type Data struct {
	boxes map[string][]*column                     // sorted by component, metric
	index map[string]map[string]map[string]*column // box -> component -> metric
	// Notes are reported oddities: samples that arrived out of time order
	// (a clock that jumped back), files that were skipped.
	Notes []string
	// Samples counts what was loaded.
	Samples int64
}

// NewData returns an empty Data to Add samples to.
func NewData() *Data {
	return &Data{boxes: map[string][]*column{}, index: map[string]map[string]map[string]*column{}}
}

// Add adds samples, in any order.
func (d *Data) Add(samples []telemetry.Sample) {
	for _, s := range samples {
		byComp := d.index[s.Box]
		if byComp == nil {
			byComp = map[string]map[string]*column{}
			d.index[s.Box] = byComp
		}
		byMetric := byComp[s.Component]
		if byMetric == nil {
			byMetric = map[string]*column{}
			byComp[s.Component] = byMetric
		}
		c := byMetric[s.Metric]
		if c == nil {
			c = &column{component: s.Component, metric: s.Metric}
			byMetric[s.Metric] = c
			d.boxes[s.Box] = append(d.boxes[s.Box], c)
		}
		ts := s.Time.UnixNano()
		if n := len(c.t); n > 0 && ts < c.t[n-1] {
			c.backs++
			c.back = max(c.back, time.Duration(c.t[n-1]-ts))
		}
		c.t = append(c.t, ts)
		c.v = append(c.v, s.Value)
		d.Samples++
	}
}

// finish sorts every series by time (keeping the last value of a repeated
// time, as the store does) and notes clocks that went back.
func (d *Data) finish() {
	for _, box := range d.Boxes() {
		cols := d.boxes[box]
		sort.Slice(cols, func(i, j int) bool {
			if cols[i].component != cols[j].component {
				return cols[i].component < cols[j].component
			}
			return cols[i].metric < cols[j].metric
		})
		backs, back := 0, time.Duration(0)
		for _, c := range cols {
			if c.backs > 0 {
				backs += c.backs
				back = max(back, c.back)
				idx := make([]int, len(c.t))
				for i := range idx {
					idx[i] = i
				}
				sort.SliceStable(idx, func(a, b int) bool { return c.t[idx[a]] < c.t[idx[b]] })
				t, v := make([]int64, 0, len(idx)), make([]float64, 0, len(idx))
				for _, i := range idx {
					if n := len(t); n > 0 && t[n-1] == c.t[i] {
						v[n-1] = c.v[i] // the later arrival wins
						continue
					}
					t, v = append(t, c.t[i]), append(v, c.v[i])
				}
				c.t, c.v = t, v
				c.backs, c.back = 0, 0
			} else {
				// In order already; drop repeated times, keeping the last.
				w := 0
				for i := range c.t {
					if w > 0 && c.t[w-1] == c.t[i] {
						c.v[w-1] = c.v[i]
						continue
					}
					c.t[w], c.v[w] = c.t[i], c.v[i]
					w++
				}
				c.t, c.v = c.t[:w], c.v[:w]
			}
		}
		if backs > 0 {
			d.Notes = append(d.Notes, fmt.Sprintf("%s: its clock went back %d time(s), by up to %s; samples replayed in time order, a repeated time keeps the later one",
				box, backs, back))
		}
	}
}

// Boxes returns the box ids, sorted.
func (d *Data) Boxes() []string {
	out := make([]string, 0, len(d.boxes))
	for b := range d.boxes {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// has reports whether box has any series of component.
func (d *Data) has(box, component string) bool {
	for _, c := range d.boxes[box] {
		if c.component == component {
			return true
		}
	}
	return false
}

// LoadFiles parses telemetry batches (any format ingest takes). A file the
// parser rejects whole is noted and skipped; bad lines are counted in the
// notes.
func LoadFiles(paths []string, onFile func(path string)) (*Data, error) {
	d := NewData()
	for _, p := range paths {
		if onFile != nil {
			onFile(p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", p, err)
		}
		res, err := telemetry.Parse(f, telemetry.Options{Name: p, Now: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
			func(s []telemetry.Sample) error { d.Add(s); return nil })
		_ = f.Close()
		if err != nil {
			d.Notes = append(d.Notes, fmt.Sprintf("skipped %s: %v", p, err))
			continue
		}
		if res.Rejected > 0 {
			first := ""
			if len(res.Errors) > 0 {
				first = " (first: " + res.Errors[0].Error() + ")"
			}
			d.Notes = append(d.Notes, fmt.Sprintf("%s: %d bad lines skipped%s", p, res.Rejected, first))
		}
	}
	d.finish()
	return d, nil
}

// LoadStore reads the whole history of boxes from a store.
func LoadStore(ctx context.Context, st store.Store, boxes []string, from, to time.Time) (*Data, error) {
	d := NewData()
	for _, b := range boxes {
		s, err := st.Window(ctx, b, from, to)
		if err != nil {
			return nil, fmt.Errorf("load %s from the store: %w", b, err)
		}
		d.Add(s)
	}
	d.finish()
	return d, nil
}

// span returns the first and last sample times of the data.
func (d *Data) span() (first, last time.Time) {
	var lo, hi int64
	for _, cols := range d.boxes {
		for _, c := range cols {
			if len(c.t) == 0 {
				continue
			}
			if lo == 0 || c.t[0] < lo {
				lo = c.t[0]
			}
			if c.t[len(c.t)-1] > hi {
				hi = c.t[len(c.t)-1]
			}
		}
	}
	if lo == 0 && hi == 0 {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, lo).UTC(), time.Unix(0, hi).UTC()
}

// kindOf returns the kind of a component ("disk" of "disk/7").
func kindOf(component string) string {
	k, _, _ := strings.Cut(component, "/")
	return k
}
