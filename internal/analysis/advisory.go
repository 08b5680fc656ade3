package analysis

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sanwatch/sanwatch/internal/finding"
)

// Advisory is a known firmware issue: boxes of Model running a firmware
// version in [FirmwareMin, FirmwareMax] are affected; FixedIn cures it.
type Advisory struct {
	ID          string           `yaml:"id" json:"id"`
	Model       string           `yaml:"model" json:"model"`
	FirmwareMin string           `yaml:"firmware_min" json:"firmware_min"`
	FirmwareMax string           `yaml:"firmware_max" json:"firmware_max"`
	FixedIn     string           `yaml:"fixed_in" json:"fixed_in"`
	Severity    finding.Severity `yaml:"severity" json:"severity"`
	Title       string           `yaml:"title" json:"title"`
	Description string           `yaml:"description" json:"description"`
	Workaround  string           `yaml:"workaround" json:"workaround,omitempty"`
}

// Matches reports whether a box of model running firmware is affected.
func (a Advisory) Matches(model, firmware string) bool {
	if !strings.EqualFold(a.Model, model) || firmware == "" {
		return false
	}
	lo, err1 := CompareVersions(firmware, a.FirmwareMin)
	hi, err2 := CompareVersions(firmware, a.FirmwareMax)
	return err1 == nil && err2 == nil && lo >= 0 && hi <= 0
}

// CompareVersions compares dotted numeric versions ("7.2.10" > "7.2.9").
// Missing parts count as 0. It returns -1, 0 or 1.
func CompareVersions(a, b string) (int, error) {
	pa, err := versionParts(a)
	if err != nil {
		return 0, err
	}
	pb, err := versionParts(b)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
	}
	return 0, nil
}

func versionParts(v string) ([]int, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if v == "" {
		return nil, fmt.Errorf("parse version %q: empty", v)
	}
	fields := strings.Split(v, ".")
	out := make([]int, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("parse version %q: part %q is not a number", v, f)
		}
		out[i] = n
	}
	return out, nil
}

// advisoryFile is the YAML layout of an advisories list.
type advisoryFile struct {
	Advisories []Advisory `yaml:"advisories"`
}

// LoadAdvisories reads a YAML list of advisories and checks every entry.
func LoadAdvisories(path string) ([]Advisory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read advisories: %w", err)
	}
	return ParseAdvisories(path, data)
}

// ParseAdvisories parses the YAML of an advisories list; name is used in errors.
func ParseAdvisories(name string, data []byte) ([]Advisory, error) {
	var f advisoryFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse advisories %s: %w", name, err)
	}
	seen := map[string]bool{}
	for i, a := range f.Advisories {
		where := fmt.Sprintf("%s: advisories[%d]", name, i)
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("%s: duplicate id %q", where, a.ID)
		}
		seen[a.ID] = true
		f.Advisories[i] = a.normalized()
	}
	return f.Advisories, nil
}

// normalized returns a with its severity in lower case, warning when unset.
// a must have passed check.
func (a Advisory) normalized() Advisory {
	s, err := finding.ParseSeverity(string(a.Severity))
	if err != nil {
		s = finding.Warning
	}
	a.Severity = s
	return a
}

// check reports the first problem of a: a missing or malformed id, model or
// title, a version that is not dotted numbers, a range upside down or an
// unknown severity. Errors name the advisory id when there is one.
func (a Advisory) check() error {
	switch {
	case a.ID == "":
		return errors.New("advisory: missing id")
	case strings.Contains(a.ID, "/"):
		return fmt.Errorf("advisory %q: id must not contain '/'", a.ID)
	case a.Model == "":
		return fmt.Errorf("advisory %s: missing model", a.ID)
	case a.Title == "":
		return fmt.Errorf("advisory %s: missing title", a.ID)
	}
	for _, kv := range [][2]string{{"firmware_min", a.FirmwareMin}, {"firmware_max", a.FirmwareMax}, {"fixed_in", a.FixedIn}} {
		if _, err := versionParts(kv[1]); err != nil {
			return fmt.Errorf("advisory %s: %s: %w", a.ID, kv[0], err)
		}
	}
	if c, _ := CompareVersions(a.FirmwareMin, a.FirmwareMax); c > 0 {
		return fmt.Errorf("advisory %s: firmware_min %s is above firmware_max %s", a.ID, a.FirmwareMin, a.FirmwareMax)
	}
	if a.Severity != "" {
		if _, err := finding.ParseSeverity(string(a.Severity)); err != nil {
			return fmt.Errorf("advisory %s: %w", a.ID, err)
		}
	}
	return nil
}
