package deploy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// codecFileVars are the codec files a sanwatch service reads: made at run
// time in a volume (codec-keys), so checkConfig does not look for them on
// the host; checkCodec checks where they are instead.
var codecFileVars = []string{"SANWATCH_CODEC_KEYS_FILE", "SANWATCH_CODEC_AUTH_TOKEN_FILE"}

// commandFlag returns the value of --name in args ("--name v" or "--name=v"),
// or of --set name=v for a configuration key.
func commandFlag(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if a == "--set" && i+1 < len(args) {
			if v, ok := strings.CutPrefix(args[i+1], name+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// checkCodec: every sanwatch service reads the same codec key file from a
// named volume that the codec-keys job writes it into and that they wait
// for; the codec server publishes the port the Temporal UI's codec endpoint
// names and lets the UI's origin call it.
func checkCodec(p *project) error {
	var errs []error
	var keygen, server string
	for _, name := range p.sanwatchServices() {
		args := p.file.Services[name].Command.Values
		switch {
		case slices.Contains(args, "codec-keygen"):
			keygen = name
		case slices.Contains(args, "codec-server"):
			server = name
		}
	}
	if keygen == "" || server == "" {
		return errors.New("no sanwatch service runs starter codec-keygen and codec-server")
	}
	kg := p.file.Services[keygen]
	made, _ := commandFlag(kg.Command.Values, "keys-file")
	var volume string
	for _, m := range kg.Volumes {
		if m.Type == "volume" && !m.ReadOnly && path.Dir(made) == m.Target {
			volume = m.Source
		}
	}
	if volume == "" {
		errs = append(errs, fmt.Errorf("service %q: writes %q, which is not on a writable named volume", keygen, made))
	}
	for _, name := range p.sanwatchServices() {
		s := p.file.Services[name]
		keys := s.Environment["SANWATCH_CODEC_KEYS_FILE"]
		if keys != made {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_CODEC_KEYS_FILE %q is not the file %q that %q makes", name, keys, made, keygen))
			continue
		}
		if name == keygen || isKeyJob(s) {
			continue
		}
		if !slices.ContainsFunc(s.Volumes, func(m mount) bool { return m.Source == volume && m.Target == path.Dir(keys) }) {
			errs = append(errs, fmt.Errorf("service %q: does not mount volume %q at %s, where its key file is", name, volume, path.Dir(keys)))
		}
		if s.DependsOn[keygen] != "service_completed_successfully" {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to complete, so its key file may not exist yet", name, keygen))
		}
	}

	cs := p.file.Services[server]
	addr, _ := commandFlag(cs.Command.Values, "codec.server_addr")
	_, listenPort, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("service %q: codec.server_addr %q: %w", server, addr, err))...)
	}
	hostPort := ""
	for _, pm := range cs.Ports {
		if parts := strings.Split(pm, ":"); len(parts) == 3 && parts[2] == listenPort {
			hostPort = parts[1]
			if parts[0] != "127.0.0.1" {
				errs = append(errs, fmt.Errorf("service %q: port %q is published beyond the host's loopback", server, pm))
			}
		}
	}
	if hostPort == "" {
		errs = append(errs, fmt.Errorf("service %q: listens on %s, which no 127.0.0.1 port publishes", server, addr))
	}
	ui, ok := p.file.Services["temporal-ui"]
	if !ok {
		return errors.Join(append(errs, errors.New(`no "temporal-ui" service`))...)
	}
	u, err := url.Parse(ui.Environment["TEMPORAL_CODEC_ENDPOINT"])
	if err != nil || u.Port() != hostPort {
		errs = append(errs, fmt.Errorf(`service "temporal-ui": TEMPORAL_CODEC_ENDPOINT %q is not the codec server's host port %s`,
			ui.Environment["TEMPORAL_CODEC_ENDPOINT"], hostPort))
	}
	uiPort := ""
	for _, pm := range ui.Ports {
		if parts := strings.Split(pm, ":"); len(parts) == 3 {
			uiPort = parts[1]
		}
	}
	origins, _ := commandFlag(cs.Command.Values, "codec.cors_origins")
	if want := "http://localhost:" + uiPort; !slices.Contains(splitList(origins), want) {
		errs = append(errs, fmt.Errorf("service %q: codec.cors_origins %q does not allow the UI's origin %s", server, origins, want))
	}
	return errors.Join(errs...)
}

func TestCodecChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *project)
		want   string
	}{
		{
			name: "worker reads another key file",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_CODEC_KEYS_FILE"] = "/data/codec.keys"
			},
			want: `service "worker": SANWATCH_CODEC_KEYS_FILE "/data/codec.keys" is not the file "/var/lib/sanwatch/codec/codec.keys" that "codec-keys" makes`,
		},
		{
			name:   "worker does not wait for the key",
			mutate: func(p *project) { delete(p.file.Services["worker"].DependsOn, "codec-keys") },
			want:   `service "worker": does not wait for "codec-keys" to complete, so its key file may not exist yet`,
		},
		{
			name: "UI pointed elsewhere",
			mutate: func(p *project) {
				p.file.Services["temporal-ui"].Environment["TEMPORAL_CODEC_ENDPOINT"] = "http://localhost:9999"
			},
			want: `service "temporal-ui": TEMPORAL_CODEC_ENDPOINT "http://localhost:9999" is not the codec server's host port 8081`,
		},
		{
			name:   "codec server on all host interfaces",
			mutate: func(p *project) { p.file.Services["codec-server"].Ports = []string{"0.0.0.0:8081:8081"} },
			want:   `service "codec-server": port "0.0.0.0:8081:8081" is published beyond the host's loopback`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t)
			require.NoError(t, checkCodec(p), "the check fails before the file is broken")
			tc.mutate(p)
			require.EqualError(t, checkCodec(p), tc.want)
		})
	}
}
