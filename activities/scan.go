package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/sanwatch/sanwatch/internal/fleet"
	"github.com/sanwatch/sanwatch/internal/store"
)

// Selector chooses the boxes of a scan; empty fields match all.
type Selector struct {
	Site  string `json:"site,omitempty"`
	Tag   string `json:"tag,omitempty"`
	Model string `json:"model,omitempty"`
}

// String describes the selector: "all" or "site=par1,tag=prod".
func (s Selector) String() string {
	var parts []string
	for _, kv := range [][2]string{{"site", s.Site}, {"tag", s.Tag}, {"model", s.Model}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, ",")
}

// ParseSelector parses "all" or comma-separated key=value pairs (site, tag, model).
func ParseSelector(v string) (Selector, error) {
	var s Selector
	v = strings.TrimSpace(v)
	if v == "" || v == "all" {
		return s, nil
	}
	for _, part := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || val == "" {
			return s, fmt.Errorf("selector %q: %q is not key=value (keys: site, tag, model)", v, part)
		}
		switch key {
		case "site":
			s.Site = val
		case "tag":
			s.Tag = val
		case "model":
			s.Model = val
		default:
			return s, fmt.Errorf("selector %q: unknown key %q (keys: site, tag, model)", v, key)
		}
	}
	return s, nil
}

func (s Selector) query() store.BoxQuery {
	return store.BoxQuery{Site: s.Site, Tag: s.Tag, Model: s.Model}
}

// ListBoxesInput asks for one page of box ids, ordered by id.
type ListBoxesInput struct {
	Selector Selector `json:"selector"`
	After    string   `json:"after,omitempty"`
	Limit    int      `json:"limit"`
	// Batch, when set, pages the boxes of that batch (by its id) instead
	// of the boxes matching Selector.
	Batch string `json:"batch,omitempty"`
}

// ListBoxes returns the ids of one page of boxes matching the selector, or
// of one page of a batch's boxes.
func (a *Activities) ListBoxes(ctx context.Context, in ListBoxesInput) ([]string, error) {
	if in.Batch != "" {
		ids, err := a.Store.BatchBoxes(ctx, store.BatchBoxQuery{Batch: in.Batch, After: in.After, Limit: in.Limit})
		if err != nil {
			return nil, fmt.Errorf("list boxes of batch %s: %w", in.Batch, err)
		}
		return ids, nil
	}
	q := in.Selector.query()
	q.After, q.Limit = in.After, in.Limit
	boxes, err := a.Store.Boxes(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list boxes: %w", err)
	}
	return boxIDs(boxes), nil
}

func boxIDs(boxes []fleet.Box) []string {
	ids := make([]string, len(boxes))
	for i, b := range boxes {
		ids[i] = b.ID
	}
	return ids
}

// CountBoxes returns how many boxes match the selector.
func (a *Activities) CountBoxes(ctx context.Context, sel Selector) (int, error) {
	n, err := a.Store.CountBoxes(ctx, sel.query())
	if err != nil {
		return 0, fmt.Errorf("count boxes: %w", err)
	}
	return n, nil
}

// SaveScanReport stores a finished scan's report.
func (a *Activities) SaveScanReport(ctx context.Context, r store.ScanReport) error {
	if err := a.Store.PutScanReport(ctx, r); err != nil {
		return fmt.Errorf("save scan report %s: %w", r.ID, err)
	}
	return nil
}
