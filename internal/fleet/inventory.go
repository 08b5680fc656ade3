package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Site holds the defaults of one site. A box of the site that leaves Owners,
// Escalation or Tags empty gets the site's list instead.
type Site struct {
	Owners     []string `yaml:"owners,omitempty" json:"owners,omitempty"`
	Escalation []string `yaml:"escalation,omitempty" json:"escalation,omitempty"`
	Tags       []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// file is the YAML layout of fleet.yaml.
type file struct {
	Sites map[string]Site `yaml:"sites,omitempty"`
	Boxes []Box           `yaml:"boxes"`
}

// Inventory is a checked fleet.yaml: the site defaults and the boxes, with the
// defaults applied. It is read-only once built and safe for concurrent use.
type Inventory struct {
	sites    map[string]Site
	raw      []Box // as written in the file, in file order
	boxes    []Box // defaults applied, sorted by id
	byID     map[string]int
	warnings []string
}

// idPattern is what a box id may look like.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidateAddress checks that addr is one email address that net/mail can
// parse ("a@example.com" or "Name <a@example.com>") and that it holds no
// control character (CR and LF included) and no comma, so that it cannot
// inject a header or a second recipient when written into an email header.
func ValidateAddress(addr string) error {
	if strings.TrimSpace(addr) == "" {
		return errors.New("empty address")
	}
	for _, r := range addr {
		if unicode.IsControl(r) {
			return fmt.Errorf("address %q contains a control character", addr)
		}
	}
	if strings.Contains(addr, ",") {
		return fmt.Errorf("address %q contains a comma", addr)
	}
	if _, err := mail.ParseAddress(addr); err != nil {
		return fmt.Errorf("parse address %q: %w", addr, err)
	}
	return nil
}

// Load reads and checks the inventory file at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and checks the YAML of an inventory; name (usually the file
// path) prefixes every error and warning. Unknown fields are errors. An empty
// document is an empty inventory.
func Parse(name string, data []byte) (*Inventory, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse inventory %s: %w", name, err)
	}
	return build(name, f.Sites, f.Boxes)
}

// New builds an inventory from site defaults and boxes, with the same checks
// as Parse; name prefixes errors and warnings. The simulator builds its
// inventory this way before writing it with Write.
func New(name string, sites map[string]Site, boxes []Box) (*Inventory, error) {
	return build(name, sites, boxes)
}

func build(name string, sites map[string]Site, boxes []Box) (*Inventory, error) {
	inv := &Inventory{
		sites: make(map[string]Site, len(sites)),
		raw:   make([]Box, 0, len(boxes)),
		boxes: make([]Box, 0, len(boxes)),
		byID:  make(map[string]int, len(boxes)),
	}
	siteNames := make([]string, 0, len(sites))
	for s := range sites {
		siteNames = append(siteNames, s)
	}
	slices.Sort(siteNames)
	for _, s := range siteNames {
		site := sites[s]
		where := fmt.Sprintf("%s: sites.%s", name, s)
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("%s: sites: empty site name", name)
		}
		if err := checkAddresses(where, "owners", site.Owners); err != nil {
			return nil, err
		}
		if err := checkAddresses(where, "escalation", site.Escalation); err != nil {
			return nil, err
		}
		if err := checkTags(where, site.Tags); err != nil {
			return nil, err
		}
		inv.sites[s] = cloneSite(site)
	}

	first := make(map[string]int, len(boxes))
	for i, b := range boxes {
		where := fmt.Sprintf("%s: boxes[%d]", name, i)
		if b.ID == "" {
			return nil, fmt.Errorf("%s: missing id", where)
		}
		if !idPattern.MatchString(b.ID) {
			return nil, fmt.Errorf("%s: id %q must match [A-Za-z0-9._:-]{1,128}", where, b.ID)
		}
		where = fmt.Sprintf("%s (%s)", where, b.ID)
		if j, dup := first[b.ID]; dup {
			return nil, fmt.Errorf("%s: duplicate id, first at boxes[%d]", where, j)
		}
		first[b.ID] = i
		switch {
		case strings.TrimSpace(b.Model) == "":
			return nil, fmt.Errorf("%s: missing model", where)
		case strings.TrimSpace(b.Site) == "":
			return nil, fmt.Errorf("%s: missing site", where)
		}
		if err := checkAddresses(where, "owners", b.Owners); err != nil {
			return nil, err
		}
		if err := checkAddresses(where, "escalation", b.Escalation); err != nil {
			return nil, err
		}
		if err := checkTags(where, b.Tags); err != nil {
			return nil, err
		}
		inv.raw = append(inv.raw, cloneBox(b))

		r := cloneBox(b)
		site, known := inv.sites[b.Site]
		if !known && len(inv.sites) > 0 {
			inv.warnings = append(inv.warnings, fmt.Sprintf("%s: box %s has site %q, which has no entry under sites", name, b.ID, b.Site))
		}
		if len(r.Owners) == 0 {
			r.Owners = slices.Clone(site.Owners)
		}
		if len(r.Escalation) == 0 {
			r.Escalation = slices.Clone(site.Escalation)
		}
		if len(r.Tags) == 0 {
			r.Tags = slices.Clone(site.Tags)
		}
		if len(r.Owners) == 0 {
			inv.warnings = append(inv.warnings, fmt.Sprintf("%s: box %s has no owner", name, b.ID))
		}
		inv.boxes = append(inv.boxes, r)
	}
	slices.SortFunc(inv.boxes, func(a, b Box) int { return strings.Compare(a.ID, b.ID) })
	for i, b := range inv.boxes {
		inv.byID[b.ID] = i
	}
	return inv, nil
}

func checkAddresses(where, field string, addrs []string) error {
	for i, a := range addrs {
		if err := ValidateAddress(a); err != nil {
			return fmt.Errorf("%s: %s[%d]: %w", where, field, i, err)
		}
	}
	return nil
}

func checkTags(where string, tags []string) error {
	for i, t := range tags {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s: tags[%d]: empty tag", where, i)
		}
		if strings.ContainsFunc(t, unicode.IsControl) {
			return fmt.Errorf("%s: tags[%d]: tag %q contains a control character", where, i, t)
		}
	}
	return nil
}

func cloneBox(b Box) Box {
	b.Owners = slices.Clone(b.Owners)
	b.Escalation = slices.Clone(b.Escalation)
	b.Tags = slices.Clone(b.Tags)
	return b
}

func cloneSite(s Site) Site {
	return Site{Owners: slices.Clone(s.Owners), Escalation: slices.Clone(s.Escalation), Tags: slices.Clone(s.Tags)}
}

// Box returns the box with the given id, site defaults applied.
func (inv *Inventory) Box(id string) (Box, bool) {
	i, ok := inv.byID[id]
	if !ok {
		return Box{}, false
	}
	return cloneBox(inv.boxes[i]), true
}

// Boxes returns every box, site defaults applied, sorted by id.
func (inv *Inventory) Boxes() []Box {
	out := make([]Box, len(inv.boxes))
	for i, b := range inv.boxes {
		out[i] = cloneBox(b)
	}
	return out
}

// Len returns the number of boxes.
func (inv *Inventory) Len() int { return len(inv.boxes) }

// Sites returns the site defaults by site name.
func (inv *Inventory) Sites() map[string]Site {
	out := make(map[string]Site, len(inv.sites))
	for k, s := range inv.sites {
		out[k] = cloneSite(s)
	}
	return out
}

// Warnings returns what is accepted but probably wrong, such as a box with no
// owner after site defaults, in file order.
func (inv *Inventory) Warnings() []string { return slices.Clone(inv.warnings) }

// Marshal returns the YAML of inv as a fleet.yaml file: the site defaults
// and the boxes as they were given (defaults not expanded), so that Parse of
// the result gives the same inventory.
func Marshal(inv *Inventory) ([]byte, error) {
	f := file{Boxes: inv.raw}
	if len(inv.sites) > 0 {
		f.Sites = inv.sites
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode inventory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode inventory: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes inv to path as YAML (see Marshal), replacing the file.
func Write(path string, inv *Inventory) error {
	data, err := Marshal(inv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}
