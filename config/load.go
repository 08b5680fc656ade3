package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// FileName is the configuration file searched for when none is given.
const FileName = "sanwatch.yaml"

// SearchPaths are the directories searched, in order, for FileName.
var SearchPaths = []string{".", "/etc/sanwatch"}

// Flag names AddFlags defines.
const (
	FlagConfig          = "config"
	FlagSet             = "set"
	FlagTemporalAddress = "temporal-address"
	FlagNamespace       = "namespace"
	FlagStoreDriver     = "store-driver"
	FlagDataDir         = "data-dir"
	FlagInventory       = "inventory"
	FlagLogLevel        = "log-level"
)

// shortcuts maps the shortcut flags to their keys.
var shortcuts = []struct{ flag, key string }{
	{FlagTemporalAddress, "temporal.address"},
	{FlagNamespace, "temporal.namespace"},
	{FlagStoreDriver, "store.driver"},
	{FlagDataDir, "data_dir"},
	{FlagInventory, "inventory"},
	{FlagLogLevel, "log.level"},
}

// LoadOptions says where Load reads from besides the defaults.
type LoadOptions struct {
	// File is the configuration file. Empty: FileName in SearchPaths, and
	// no file at all is fine. The --config flag, when given, wins.
	File string
	// Flags holds the flags AddFlags defined, parsed; nil for none. Only
	// flags the user set count.
	Flags *pflag.FlagSet
	// Env looks up an environment variable; nil means os.LookupEnv. Empty
	// values count as unset.
	Env func(string) (string, bool)
}

// AddFlags defines the configuration flags on fs: --config FILE, --set
// key=value (repeatable, any key) and shortcuts for the most used keys.
func AddFlags(fs *pflag.FlagSet) {
	fs.String(FlagConfig, "", "configuration file (default: "+FileName+" in "+strings.Join(SearchPaths, " or ")+")")
	fs.StringArray(FlagSet, nil, "set any configuration key, key=value (repeatable; lists comma-separated), e.g. --set smtp.port=2525")
	for _, s := range shortcuts {
		def, _ := lookupKey(s.key)
		fs.String(s.flag, fmt.Sprint(def), "sets "+s.key)
	}
}

// UnknownKeyError is a key that sanwatch does not know, in the file or in --set.
type UnknownKeyError struct {
	Key    string // the key, lower case, as in "stroe.driver"
	Source string // the file path or "--set"
}

// Error returns `config: unknown key "stroe.driver" in sanwatch.yaml`.
func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("config: unknown key %q in %s", e.Key, e.Source)
}

// ValidationError is a value that is not allowed: the key, the value (a
// secret's is "<redacted>") and what is allowed.
type ValidationError struct {
	Key     string
	Value   any
	Allowed string // what is allowed, as a phrase: "must be 1-65535"
}

// Error returns `config: smtp.port = 70000: must be 1-65535`.
func (e *ValidationError) Error() string {
	v := e.Value
	if secretKeys[e.Key] {
		v = redactAny(v)
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("config: %s = %q: %s", e.Key, s, e.Allowed)
	}
	return fmt.Sprintf("config: %s = %v: %s", e.Key, v, e.Allowed)
}

// invalid returns a ValidationError, with the value of a secret key redacted.
func invalid(key string, value any, allowed string) *ValidationError {
	if secretKeys[key] {
		value = redactAny(value)
	}
	return &ValidationError{Key: key, Value: value, Allowed: allowed}
}

func redactAny(v any) any {
	if s, ok := v.(string); ok && s == "" || v == nil {
		return ""
	}
	return Redacted
}

// Load returns the configuration from the defaults, the file, the
// environment and the flags, in increasing precedence, validated.
func Load(o LoadOptions) (*Config, error) {
	lookup := o.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	file := o.File
	if o.Flags != nil {
		if f := o.Flags.Lookup(FlagConfig); f != nil && f.Changed {
			file = f.Value.String()
		}
	}

	v := viper.New()
	v.SetConfigType("yaml")
	for _, k := range allKeys() {
		v.SetDefault(k.name, k.def)
	}

	// The file.
	var raw map[string]any
	path, data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("config: parse %s: %w", path, err)
		}
		raw = lowerKeys(raw)
		if err := checkFile(raw, path); err != nil {
			return nil, err
		}
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}

	// The environment. viper's AutomaticEnv reads os.Getenv directly; to
	// honour LoadOptions.Env, each known key's variable is looked up here
	// with the same naming (prefix SANWATCH, "." -> "_").
	for _, k := range allKeys() {
		if val, ok := lookup(envName(k.name)); ok && val != "" {
			v.Set(k.name, val)
		}
	}

	// The flags: --set, then the shortcuts.
	setOverrides := map[string]map[string]map[string]string{}
	if o.Flags != nil {
		if f := o.Flags.Lookup(FlagSet); f != nil && f.Changed {
			sets, err := o.Flags.GetStringArray(FlagSet)
			if err != nil {
				return nil, fmt.Errorf("config: read --%s: %w", FlagSet, err)
			}
			for _, s := range sets {
				if err := applySet(v, setOverrides, s); err != nil {
					return nil, err
				}
			}
		}
		for _, s := range shortcuts {
			if f := o.Flags.Lookup(s.flag); f != nil && f.Changed {
				v.Set(s.key, f.Value.String())
			}
		}
	}

	d := &decoder{v: v}
	c := d.decode(raw, setOverrides)
	d.readSecretFiles(c, lookup)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	if err := validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Default returns the configuration made of the defaults alone.
func Default() *Config {
	c, err := Load(LoadOptions{File: os.DevNull, Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		panic("config: the defaults do not validate: " + err.Error())
	}
	return c
}

// readFile returns the path and content of the configuration file: file if
// given (it must exist), else the first FileName in SearchPaths, else none.
func readFile(file string) (string, []byte, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", nil, fmt.Errorf("config: read config file: %w", err)
		}
		return file, data, nil
	}
	for _, dir := range SearchPaths {
		p := filepath.Join(dir, FileName)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("config: read config file: %w", err)
		}
		return p, data, nil
	}
	return "", nil, nil
}

// lowerKeys lower-cases the keys of m and of the mappings under it, as
// viper does, so that the checks and viper agree.
func lowerKeys(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = lowerValue(v)
	}
	return out
}

func lowerValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return lowerKeys(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = lowerValue(e)
		}
		return out
	}
	return v
}

// checkFile rejects unknown keys, values in the place of mappings and an
// smtp password in the file. Errors are in key order.
func checkFile(raw map[string]any, path string) error {
	var errs []error
	walk(raw, "", path, &errs)
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func walk(m map[string]any, prefix, path string, errs *[]error) {
	for _, k := range sortedKeys(m) {
		val := m[k]
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		switch {
		case secretKeys[name]:
			if s, _ := lookupSecret(name); !s.inFile && val != nil && val != "" {
				*errs = append(*errs, fmt.Errorf("config: %s: %s, not in the config file", name, s.sources()))
			}
		case name == sectionOverrides:
			checkOverrides(val, path, errs)
		case name == sectionExternal:
			checkExternal(val, path, errs)
		default:
			if _, ok := lookupKey(name); ok {
				continue // the value is checked when decoded
			}
			if !isSection(name) {
				unknown(name, val, path, errs)
				continue
			}
			switch sub := val.(type) {
			case nil: // an empty section
			case map[string]any:
				walk(sub, name, path, errs)
			default:
				*errs = append(*errs, invalid(name, val, "must be a mapping of keys"))
			}
		}
	}
}

// unknown reports name as unknown, or, when its value is a mapping, each
// key under it ("stroe.driver" rather than "stroe").
func unknown(name string, val any, path string, errs *[]error) {
	m, ok := val.(map[string]any)
	if !ok || len(m) == 0 {
		*errs = append(*errs, &UnknownKeyError{Key: name, Source: path})
		return
	}
	for _, k := range sortedKeys(m) {
		unknown(name+"."+k, m[k], path, errs)
	}
}

func checkOverrides(val any, path string, errs *[]error) {
	boxes, ok := val.(map[string]any)
	if !ok {
		if val != nil {
			*errs = append(*errs, invalid(sectionOverrides, val, "must be a mapping of box ids"))
		}
		return
	}
	for _, box := range sortedKeys(boxes) {
		name := sectionOverrides + "." + box
		rules, ok := boxes[box].(map[string]any)
		if !ok {
			if boxes[box] != nil {
				*errs = append(*errs, invalid(name, boxes[box], "must be a mapping of rules"))
			}
			continue
		}
		for _, rule := range sortedKeys(rules) {
			if !isSection(sectionRules + "." + rule) {
				unknown(name+"."+rule, rules[rule], path, errs)
				continue
			}
			ks, ok := rules[rule].(map[string]any)
			if !ok {
				if rules[rule] != nil {
					*errs = append(*errs, invalid(name+"."+rule, rules[rule], "must be a mapping of thresholds"))
				}
				continue
			}
			for _, k := range sortedKeys(ks) {
				if _, ok := lookupKey(sectionRules + "." + rule + "." + k); !ok {
					*errs = append(*errs, &UnknownKeyError{Key: name + "." + rule + "." + k, Source: path})
				}
			}
		}
	}
}

func checkExternal(val any, path string, errs *[]error) {
	list, ok := val.([]any)
	if !ok {
		if val != nil {
			*errs = append(*errs, invalid(sectionExternal, val, "must be a list of analyzers"))
		}
		return
	}
	for i, e := range list {
		name := fmt.Sprintf("%s[%d]", sectionExternal, i)
		m, ok := e.(map[string]any)
		if !ok {
			*errs = append(*errs, invalid(name, e, "must be a mapping with name and command"))
			continue
		}
		for _, k := range sortedKeys(m) {
			known := false
			for _, f := range externalFields {
				known = known || f == k
			}
			if !known {
				*errs = append(*errs, &UnknownKeyError{Key: name + "." + k, Source: path})
			}
		}
	}
}

// applySet applies one --set key=value. Overrides go to setOverrides (box
// ids may hold dots, which viper would split).
func applySet(v *viper.Viper, setOverrides map[string]map[string]map[string]string, kv string) error {
	k, val, ok := strings.Cut(kv, "=")
	k = strings.ToLower(strings.TrimSpace(k))
	if !ok || k == "" {
		if _, known := lookupKey(k); known {
			return fmt.Errorf("config: --%s %q: must be key=value", FlagSet, kv)
		}
		// Not echoed: a mistyped argument may hold a secret.
		return fmt.Errorf("config: --%s: an argument is not key=value", FlagSet)
	}
	switch {
	case secretKeys[k]:
		// Not echoed, and refused: argv is visible to every user of the
		// machine (ps, /proc/PID/cmdline) and kept in shell history.
		s, _ := lookupSecret(k)
		return fmt.Errorf("config: %s: %s, not with --%s", k, s.sources(), FlagSet)
	case k == sectionExternal || strings.HasPrefix(k, sectionExternal+".") || strings.HasPrefix(k, sectionExternal+"["):
		return fmt.Errorf("config: --%s %s: external analyzers are set in the config file only", FlagSet, k)
	case strings.HasPrefix(k, sectionOverrides+"."):
		rest := strings.TrimPrefix(k, sectionOverrides+".")
		parts := strings.Split(rest, ".")
		if len(parts) < 3 {
			return &UnknownKeyError{Key: k, Source: "--" + FlagSet}
		}
		box := strings.Join(parts[:len(parts)-2], ".")
		rule, tk := parts[len(parts)-2], parts[len(parts)-1]
		if _, ok := lookupKey(sectionRules + "." + rule + "." + tk); !ok || box == "" {
			return &UnknownKeyError{Key: k, Source: "--" + FlagSet}
		}
		if setOverrides[box] == nil {
			setOverrides[box] = map[string]map[string]string{}
		}
		if setOverrides[box][rule] == nil {
			setOverrides[box][rule] = map[string]string{}
		}
		setOverrides[box][rule][tk] = val
	default:
		if _, ok := lookupKey(k); !ok {
			return &UnknownKeyError{Key: k, Source: "--" + FlagSet}
		}
		v.Set(k, val)
	}
	return nil
}
