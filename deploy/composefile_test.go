package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// composeFile is the part of the compose specification the stack uses. It is
// decoded with KnownFields, so a misspelt key fails the test as it would
// fail `docker compose config`.
type composeFile struct {
	Version    *string                 `yaml:"version"`
	Name       string                  `yaml:"name"`
	Services   map[string]*service     `yaml:"services"`
	Volumes    map[string]*namedVolume `yaml:"volumes"`
	Networks   map[string]any          `yaml:"networks"`
	Extensions map[string]any          `yaml:",inline"` // x-* keys
}

type namedVolume struct {
	Driver   string `yaml:"driver"`
	External bool   `yaml:"external"`
	Name     string `yaml:"name"`
}

type service struct {
	Image           string       `yaml:"image"`
	Build           *build       `yaml:"build"`
	ContainerName   string       `yaml:"container_name"`
	Hostname        string       `yaml:"hostname"`
	Entrypoint      stringList   `yaml:"entrypoint"`
	Command         stringList   `yaml:"command"`
	Environment     environment  `yaml:"environment"`
	Volumes         []mount      `yaml:"volumes"`
	Ports           []string     `yaml:"ports"`
	Expose          []string     `yaml:"expose"`
	DependsOn       dependencies `yaml:"depends_on"`
	Healthcheck     *healthcheck `yaml:"healthcheck"`
	Restart         string       `yaml:"restart"`
	Profiles        []string     `yaml:"profiles"`
	Init            bool         `yaml:"init"`
	User            string       `yaml:"user"`
	WorkingDir      string       `yaml:"working_dir"`
	StopGracePeriod string       `yaml:"stop_grace_period"`
	Logging         *logging     `yaml:"logging"`
	Networks        []string     `yaml:"networks"`
}

type logging struct {
	Driver  string            `yaml:"driver"`
	Options map[string]string `yaml:"options"`
}

type healthcheck struct {
	Test          stringList `yaml:"test"`
	Interval      string     `yaml:"interval"`
	Timeout       string     `yaml:"timeout"`
	Retries       int        `yaml:"retries"`
	StartPeriod   string     `yaml:"start_period"`
	StartInterval string     `yaml:"start_interval"`
	Disable       bool       `yaml:"disable"`
}

// commandLine returns the health check's command as one string, without the
// CMD or CMD-SHELL marker.
func (h *healthcheck) commandLine() string {
	v := h.Test.Values
	if !h.Test.Shell && len(v) > 0 && (v[0] == "CMD" || v[0] == "CMD-SHELL") {
		v = v[1:]
	}
	return strings.Join(v, " ")
}

// stringList is a command, entrypoint or test: a list, or a string (split
// on spaces here; compose hands it to a shell or splits it the same way for
// the simple commands the stack uses).
type stringList struct {
	Values []string
	Shell  bool // written as a string
}

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		l.Values, l.Shell = strings.Fields(n.Value), true
		return nil
	case yaml.SequenceNode:
		return n.Decode(&l.Values)
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// environment is a service's environment, written as a mapping or as a list
// of NAME=value.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	out := environment{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: environment %s: want a scalar value", v.Line, k.Value)
			}
			if v.Tag == "!!null" {
				out[k.Value] = ""
				continue
			}
			out[k.Value] = v.Value
		}
	case yaml.SequenceNode:
		var items []string
		if err := n.Decode(&items); err != nil {
			return err
		}
		for _, item := range items {
			k, v, _ := strings.Cut(item, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment: want a mapping or a list", n.Line)
	}
	*e = out
	return nil
}

// dependencies is depends_on: a list of service names (condition
// service_started) or a mapping of names to a condition.
type dependencies map[string]string

func (d *dependencies) UnmarshalYAML(n *yaml.Node) error {
	out := dependencies{}
	switch n.Kind {
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			out[name] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
			Restart   bool   `yaml:"restart"`
			Required  *bool  `yaml:"required"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for name, dep := range m {
			out[name] = dep.Condition
		}
	default:
		return fmt.Errorf("line %d: depends_on: want a list or a mapping", n.Line)
	}
	*d = out
	return nil
}

// build is a build context, as a path or as a mapping.
type build struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Target     string            `yaml:"target"`
	Args       map[string]string `yaml:"args"`
}

func (b *build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain build
	return n.Decode((*plain)(b))
}

// mount is one entry of a service's volumes, short (source:target[:mode]) or
// long syntax.
type mount struct {
	Type     string `yaml:"type"` // bind or volume
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

func (m *mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain mount
		return n.Decode((*plain)(m))
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1:
		m.Target = parts[0]
	case 2, 3:
		m.Source, m.Target = parts[0], parts[1]
		m.ReadOnly = len(parts) == 3 && slices.Contains(strings.Split(parts[2], ","), "ro")
	default:
		return fmt.Errorf("line %d: volume %q: want source:target[:mode]", n.Line, n.Value)
	}
	m.Type = "volume"
	if strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, "~") {
		m.Type = "bind"
	}
	return nil
}

// varRef matches $$, ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?err}, ${NAME?err} and $NAME.
var varRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate replaces variable references the way compose does, with env
// as the environment. A reference without a default is an error: the stack
// must come up with no .env file.
func interpolate(src string, env map[string]string) (string, error) {
	var errs []error
	out := varRef.ReplaceAllStringFunc(src, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := varRef.FindStringSubmatch(m)
		name, op, def := sub[1], sub[2], sub[3]
		if name == "" {
			name = sub[4]
		}
		v, set := env[name]
		switch op {
		case ":-":
			if v == "" {
				return def
			}
			return v
		case "-":
			if !set {
				return def
			}
			return v
		}
		if !set {
			errs = append(errs, fmt.Errorf("%s has no default", m))
		}
		return v
	})
	return out, errors.Join(errs...)
}

// parseCompose interpolates data with env and decodes it.
func parseCompose(data []byte, env map[string]string) (*composeFile, error) {
	text, err := interpolate(string(data), env)
	if err != nil {
		return nil, fmt.Errorf("interpolate compose file: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode compose file: %w", err)
	}
	return &f, nil
}

// TestParseCompose covers the syntaxes the typed decoding accepts, and the
// errors for what compose would reject.
func TestParseCompose(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		env     map[string]string
		check   func(t *testing.T, f *composeFile)
		wantErr string
	}{
		{
			name: "short syntax",
			src: "services:\n  a:\n    image: x:1\n    command: starter ingest /data\n    environment: [A=1, B]\n" +
				"    depends_on: [b]\n    volumes: [\"./f:/g:ro\", \"v:/data\"]\n  b:\n    build: .\n",
			check: func(t *testing.T, f *composeFile) {
				a := f.Services["a"]
				require.Equal(t, stringList{Values: []string{"starter", "ingest", "/data"}, Shell: true}, a.Command)
				require.Equal(t, environment{"A": "1", "B": ""}, a.Environment)
				require.Equal(t, dependencies{"b": "service_started"}, a.DependsOn)
				require.Equal(t, []mount{{Type: "bind", Source: "./f", Target: "/g", ReadOnly: true}, {Type: "volume", Source: "v", Target: "/data"}}, a.Volumes)
				require.Equal(t, &build{Context: "."}, f.Services["b"].Build)
			},
		},
		{
			name: "long syntax",
			src: "services:\n  a:\n    build: {context: ., dockerfile: D}\n    environment: {A: \"1\", B: null}\n" +
				"    depends_on: {b: {condition: service_healthy}}\n    volumes:\n      - {type: volume, source: v, target: /data, read_only: true}\n",
			check: func(t *testing.T, f *composeFile) {
				a := f.Services["a"]
				require.Equal(t, &build{Context: ".", Dockerfile: "D"}, a.Build)
				require.Equal(t, environment{"A": "1", "B": ""}, a.Environment)
				require.Equal(t, dependencies{"b": "service_healthy"}, a.DependsOn)
				require.Equal(t, []mount{{Type: "volume", Source: "v", Target: "/data", ReadOnly: true}}, a.Volumes)
			},
		},
		{
			name: "merge keys and interpolation",
			src:  "x-a: &a\n  image: x:${TAG:-1}\n  environment: {P: \"${P-p}\", Q: $$HOME}\nservices:\n  a:\n    <<: *a\n    restart: unless-stopped\n",
			env:  map[string]string{"P": ""},
			check: func(t *testing.T, f *composeFile) {
				a := f.Services["a"]
				require.Equal(t, "x:1", a.Image)
				require.Equal(t, environment{"P": "", "Q": "$HOME"}, a.Environment)
				require.Equal(t, "unless-stopped", a.Restart)
				require.Contains(t, f.Extensions, "x-a")
			},
		},
		{
			name:    "misspelt key",
			src:     "services:\n  a:\n    image: x:1\n    contianer_name: a\n",
			wantErr: "decode compose file: yaml: unmarshal errors:\n  line 4: field contianer_name not found in type deploy.service",
		},
		{
			name:    "variable without default",
			src:     "services:\n  a:\n    image: x:${TAG}\n    environment: {A: $B}\n",
			wantErr: "interpolate compose file: ${TAG} has no default\n$B has no default",
		},
		{
			name:    "environment with a list value",
			src:     "services:\n  a:\n    image: x:1\n    environment: {A: [1]}\n",
			wantErr: "decode compose file: line 4: environment A: want a scalar value",
		},
		{
			name:    "volume with too many colons",
			src:     "services:\n  a:\n    image: x:1\n    volumes: [\"a:b:c:d\"]\n",
			wantErr: `decode compose file: line 4: volume "a:b:c:d": want source:target[:mode]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseCompose([]byte(tc.src), tc.env)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, f)
		})
	}
}
