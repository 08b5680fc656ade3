package deploy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/config"
)

// Paths, relative to this package's directory (where go test runs).
const (
	repoRoot       = ".."
	composePath    = "../docker-compose.yml"
	dockerfilePath = "../Dockerfile"
	goModPath      = "../go.mod"
)

// project is the compose file with what the checks compare it against.
type project struct {
	file          *composeFile
	root          string
	dockerfile    string
	goVersion     string            // the go line of go.mod
	serverVersion string            // go.temporal.io/server's version in go.mod
	readme        string            // README.md
	envKeys       map[string]string // SANWATCH_... -> configuration key
	configFlags   map[string]bool   // flags config.AddFlags defines (worker and starter)
	workerFlags   map[string]bool   // the worker's own flags
	starterCmds   map[string]bool   // every cobra Use name in starter/
}

// loadProject reads docker-compose.yml, the Dockerfile, go.mod and the
// worker and starter sources.
func loadProject(t *testing.T) *project {
	t.Helper()
	data, err := os.ReadFile(composePath)
	require.NoError(t, err)
	f, err := parseCompose(data, nil)
	require.NoError(t, err)
	dockerfile, err := os.ReadFile(dockerfilePath)
	require.NoError(t, err)
	gomod, err := os.ReadFile(goModPath)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	require.NotNil(t, m, "go.mod has no go line")

	sv := regexp.MustCompile(`(?m)^\s*go\.temporal\.io/server (v\S+)`).FindSubmatch(gomod)
	require.NotNil(t, sv, "go.mod does not require go.temporal.io/server")
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)

	p := &project{
		file: f, root: repoRoot, dockerfile: string(dockerfile), goVersion: string(m[1]),
		serverVersion: string(sv[1]), readme: string(readme),
		envKeys: map[string]string{}, configFlags: map[string]bool{},
		workerFlags: map[string]bool{}, starterCmds: map[string]bool{},
	}
	for _, k := range config.Keys() {
		p.envKeys[config.EnvVar(k)] = k
	}
	require.NotEmpty(t, p.envKeys, "config.Keys returned no keys")
	for _, f := range []string{config.FlagConfig, config.FlagSet, config.FlagTemporalAddress, config.FlagNamespace,
		config.FlagStoreDriver, config.FlagDataDir, config.FlagInventory, config.FlagLogLevel} {
		p.configFlags[f] = true
	}

	worker, err := os.ReadFile(filepath.Join(repoRoot, "worker", "main.go"))
	require.NoError(t, err)
	flagDef := regexp.MustCompile(`fs\.(?:String|Bool|Int|Duration|StringArray|StringSlice)(?:Var)?\((?:&\w+,\s*)?"([a-z][a-z0-9-]*)"`)
	for _, m := range flagDef.FindAllSubmatch(worker, -1) {
		p.workerFlags[string(m[1])] = true
	}
	require.NotEmpty(t, p.workerFlags, "found no flag definitions in worker/main.go")

	files, err := filepath.Glob(filepath.Join(repoRoot, "starter", "*.go"))
	require.NoError(t, err)
	use := regexp.MustCompile(`Use:\s*"([a-z][a-z0-9-]*)`)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		for _, m := range use.FindAllSubmatch(src, -1) {
			if string(m[1]) != "starter" {
				p.starterCmds[string(m[1])] = true
			}
		}
	}
	require.NotEmpty(t, p.starterCmds, "found no cobra commands in starter/")
	return p
}

// serviceNames returns the service names, sorted, so that errors come in a
// stable order.
func (p *project) serviceNames() []string {
	return sortedKeys(p.file.Services)
}

// sanwatchServices returns the services built from the repository's
// Dockerfile (the worker and the starter), sorted by name.
func (p *project) sanwatchServices() []string {
	var out []string
	for _, name := range p.serviceNames() {
		if p.file.Services[name].Build != nil {
			out = append(out, name)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// containerPorts returns the ports a service listens on inside its
// container: the container side of ports, and expose.
func containerPorts(s *service) []string {
	var out []string
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		out = append(out, strings.TrimSuffix(parts[len(parts)-1], "/tcp"))
	}
	for _, p := range s.Expose {
		out = append(out, strings.TrimSuffix(p, "/tcp"))
	}
	return out
}

func isTemporalServer(s *service) bool {
	return strings.HasPrefix(s.Image, "temporalio/server:") || strings.HasPrefix(s.Image, "temporalio/auto-setup:")
}

func isPostgres(s *service) bool {
	return strings.HasPrefix(s.Image, "postgres:")
}

// checkTopLevel: no obsolete version key, only x-* extensions, some services.
func checkTopLevel(p *project) error {
	var errs []error
	if p.file.Version != nil {
		errs = append(errs, fmt.Errorf("top-level version %q is obsolete in the compose specification: remove it", *p.file.Version))
	}
	for _, k := range sortedKeys(p.file.Extensions) {
		if !strings.HasPrefix(k, "x-") {
			errs = append(errs, fmt.Errorf("unknown top-level key %q", k))
		}
	}
	if len(p.file.Services) == 0 {
		errs = append(errs, errors.New("no services"))
	}
	return errors.Join(errs...)
}

// checkImages: every service has an image or a build; builds have their
// Dockerfile; images are pinned.
func checkImages(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		if s.Image == "" && s.Build == nil {
			errs = append(errs, fmt.Errorf("service %q: neither image nor build", name))
			continue
		}
		if s.Build != nil {
			dockerfile := s.Build.Dockerfile
			if dockerfile == "" {
				dockerfile = "Dockerfile"
			}
			path := filepath.Join(p.root, s.Build.Context, dockerfile)
			if _, err := os.Stat(path); err != nil {
				errs = append(errs, fmt.Errorf("service %q: build dockerfile %s does not exist", name, filepath.Join(s.Build.Context, dockerfile)))
			}
		}
		if s.Image == "" {
			continue
		}
		i := strings.LastIndex(s.Image, ":")
		switch {
		case i < 0 || strings.Contains(s.Image[i:], "/"):
			errs = append(errs, fmt.Errorf("service %q: image %q has no tag: pin a version", name, s.Image))
		case s.Image[i+1:] == "latest":
			errs = append(errs, fmt.Errorf("service %q: image %q is not pinned: use a version, not latest", name, s.Image))
		}
	}
	return errors.Join(errs...)
}

// checkEnvKeys: every SANWATCH_* variable is a configuration key.
func checkEnvKeys(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		for _, v := range sortedKeys(p.file.Services[name].Environment) {
			if _, ok := p.envKeys[v]; strings.HasPrefix(v, config.EnvPrefix+"_") && !ok {
				errs = append(errs, fmt.Errorf("service %q: %s is not a sanwatch configuration key", name, v))
			}
		}
	}
	return errors.Join(errs...)
}

// checkCommands: the sanwatch services run worker or starter, with flags
// they define and, for the starter, one of its commands.
func checkCommands(p *project) error {
	workerFlags := map[string]bool{}
	for f := range p.configFlags {
		workerFlags[f] = true
	}
	for f := range p.workerFlags {
		workerFlags[f] = true
	}
	var errs []error
	for _, name := range p.sanwatchServices() {
		s := p.file.Services[name]
		switch ep := s.Entrypoint.Values; {
		case slices.Equal(ep, []string{"worker"}):
			errs = append(errs, checkArgs(name, "worker", s.Command.Values, workerFlags, nil))
		case slices.Equal(ep, []string{"starter"}):
			errs = append(errs, checkArgs(name, "starter", s.Command.Values, p.configFlags, p.starterCmds))
		default:
			errs = append(errs, fmt.Errorf("service %q: runs the sanwatch image with entrypoint %q: want worker or starter", name, ep))
		}
	}
	return errors.Join(errs...)
}

// checkArgs checks a command line of prog: flags (all of which take a
// value), then, when commands is not nil, a command.
func checkArgs(service, prog string, args []string, flags, commands map[string]bool) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			f, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !flags[f] {
				return fmt.Errorf("service %q: %s has no flag --%s", service, prog, f)
			}
			if !hasValue {
				if i++; i == len(args) {
					return fmt.Errorf("service %q: %s flag --%s needs a value", service, prog, f)
				}
			}
			continue
		}
		if commands == nil {
			return fmt.Errorf("service %q: %s takes no argument %q", service, prog, a)
		}
		if !commands[a] {
			return fmt.Errorf("service %q: %q is not a %s command", service, a, prog)
		}
		return nil // the rest is the command's
	}
	if commands != nil {
		return fmt.Errorf("service %q: command names no %s command", service, prog)
	}
	return nil
}

var healthURL = regexp.MustCompile(`https?://([^/\s"']+)(/[^\s"']*)?`)

// checkWorkerHealth: the worker's metrics listen on all interfaces, and its
// health check fetches /healthz on that port with a tool the image has.
func checkWorkerHealth(p *project) error {
	w, ok := p.file.Services["worker"]
	if !ok {
		return errors.New(`no "worker" service`)
	}
	addr := w.Environment["SANWATCH_WORKER_METRICS_ADDR"]
	if addr == "" {
		return errors.New(`service "worker": SANWATCH_WORKER_METRICS_ADDR is not set: the default listens on loopback only`)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf(`service "worker": SANWATCH_WORKER_METRICS_ADDR %q: %w`, addr, err)
	}
	var errs []error
	if host != "" && host != "0.0.0.0" && host != "::" {
		errs = append(errs, fmt.Errorf(`service "worker": metrics listen on %s, which other containers cannot reach: use 0.0.0.0:%s`, addr, port))
	}
	if !slices.Contains(w.Expose, port) {
		errs = append(errs, fmt.Errorf(`service "worker": expose does not list the metrics port %s`, port))
	}
	if w.Healthcheck == nil || w.Healthcheck.Disable {
		return errors.Join(append(errs, errors.New(`service "worker": no healthcheck`))...)
	}
	cmd := w.Healthcheck.commandLine()
	if prog, _, _ := strings.Cut(cmd, " "); prog != "wget" {
		errs = append(errs, fmt.Errorf(`service "worker": healthcheck runs %q: the alpine-based image has wget, not that`, prog))
	}
	m := healthURL.FindStringSubmatch(cmd)
	if m == nil {
		return errors.Join(append(errs, fmt.Errorf(`service "worker": healthcheck %q fetches no URL`, cmd))...)
	}
	_, hport, err := net.SplitHostPort(m[1])
	if err != nil || hport != port {
		errs = append(errs, fmt.Errorf(`service "worker": healthcheck fetches %s, but metrics listen on port %s`, m[0], port))
	}
	if m[2] != "/healthz" {
		errs = append(errs, fmt.Errorf(`service "worker": healthcheck fetches %s, want the /healthz path`, m[0]))
	}
	return errors.Join(errs...)
}

// checkPublishedPorts: what the host can reach. Every published port binds
// loopback, and nothing that belongs on the compose network alone is
// published: the databases, the workers (metrics, pprof) and Mailpit's SMTP.
// Reach the UIs from elsewhere through a proxy that authenticates.
func checkPublishedPorts(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		for _, port := range s.Ports {
			container := strings.TrimSuffix(port[strings.LastIndex(port, ":")+1:], "/tcp")
			switch {
			case !strings.HasPrefix(port, "127.0.0.1:") && !strings.HasPrefix(port, "[::1]:"):
				errs = append(errs, fmt.Errorf("service %q: port %q is published on every interface of the host: bind it to 127.0.0.1", name, port))
			case isPostgres(s):
				errs = append(errs, fmt.Errorf("service %q: port %q publishes the database: keep it on the compose network", name, port))
			case name == "codec-server" && container == "8081":
				// The codec server's API, for the Temporal UI in the browser.
			case name == "receiver" && container == "8088":
				// The receiver's API, for the boxes (TLS, tokens or client
				// certificates); on loopback unless RECEIVER_HOST_IP widens it.
			case slices.Contains(p.sanwatchServices(), name):
				errs = append(errs, fmt.Errorf("service %q: port %q publishes metrics or pprof: scrape them on the compose network", name, port))
			case strings.HasPrefix(s.Image, "axllent/mailpit:") && container != "8025":
				errs = append(errs, fmt.Errorf("service %q: port %q publishes more than the Mailpit UI (8025)", name, port))
			}
		}
	}
	return errors.Join(errs...)
}

// checkDependsOn: dependencies exist, and what they wait for can happen.
func checkDependsOn(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		for _, dep := range sortedKeys(s.DependsOn) {
			t, ok := p.file.Services[dep]
			if !ok {
				errs = append(errs, fmt.Errorf("service %q: depends on %q, which is not a service", name, dep))
				continue
			}
			if len(s.Profiles) == 0 && len(t.Profiles) > 0 {
				errs = append(errs, fmt.Errorf("service %q: depends on %q, which is only in profiles %v", name, dep, t.Profiles))
			}
			switch cond := s.DependsOn[dep]; cond {
			case "service_started":
			case "service_healthy":
				if t.Healthcheck == nil || t.Healthcheck.Disable {
					errs = append(errs, fmt.Errorf("service %q: waits for %q to be healthy, but %q has no healthcheck", name, dep, dep))
				}
			case "service_completed_successfully":
				if t.Restart == "always" || t.Restart == "unless-stopped" {
					errs = append(errs, fmt.Errorf("service %q: waits for %q to complete, but %q restarts %s", name, dep, dep, t.Restart))
				}
			default:
				errs = append(errs, fmt.Errorf("service %q: depends on %q with unknown condition %q", name, dep, cond))
			}
		}
	}
	return errors.Join(errs...)
}

// checkScalable: `docker compose up --scale worker=N` needs a worker without
// a container name and without host ports.
func checkScalable(p *project) error {
	w, ok := p.file.Services["worker"]
	if !ok {
		return errors.New(`no "worker" service`)
	}
	var errs []error
	if w.ContainerName != "" {
		errs = append(errs, fmt.Errorf(`service "worker": container_name %q prevents --scale`, w.ContainerName))
	}
	for _, port := range w.Ports {
		if parts := strings.Split(port, ":"); len(parts) >= 2 && parts[len(parts)-2] != "" {
			errs = append(errs, fmt.Errorf(`service "worker": port %q binds a host port, which prevents --scale`, port))
		}
	}
	return errors.Join(errs...)
}

// checkMounts: bind mounts name files of the repository that exist; named
// volumes are declared and used.
func checkMounts(p *project) error {
	var errs []error
	used := map[string]bool{}
	for _, name := range p.serviceNames() {
		for _, m := range p.file.Services[name].Volumes {
			switch m.Type {
			case "bind":
				if filepath.IsAbs(m.Source) || strings.HasPrefix(m.Source, "~") {
					errs = append(errs, fmt.Errorf("service %q: mounts host path %s: mount a file of the repository (./...) or a named volume", name, m.Source))
					continue
				}
				if _, err := os.Stat(filepath.Join(p.root, m.Source)); err != nil {
					errs = append(errs, fmt.Errorf("service %q: mounts %s, which does not exist", name, m.Source))
				}
			case "volume":
				if m.Source == "" {
					errs = append(errs, fmt.Errorf("service %q: anonymous volume at %s: name it and declare it under volumes", name, m.Target))
					continue
				}
				used[m.Source] = true
				if _, ok := p.file.Volumes[m.Source]; !ok {
					errs = append(errs, fmt.Errorf("service %q: volume %q is not declared under volumes", name, m.Source))
				}
			default:
				errs = append(errs, fmt.Errorf("service %q: mount of type %q at %s", name, m.Type, m.Target))
			}
		}
	}
	for _, v := range sortedKeys(p.file.Volumes) {
		if !used[v] {
			errs = append(errs, fmt.Errorf("volume %q is declared but no service mounts it", v))
		}
	}
	return errors.Join(errs...)
}

// checkTemporalAddress: every Temporal address (sanwatch's and the Temporal
// tools') is the Temporal server service and a port it listens on.
func checkTemporalAddress(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		if _, ok := s.Environment["SANWATCH_TEMPORAL_ADDRESS"]; s.Build != nil && !ok {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_TEMPORAL_ADDRESS is not set: the default 127.0.0.1:7233 is the container itself", name))
		}
		for _, v := range []string{"SANWATCH_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"} {
			addr, ok := s.Environment[v]
			if !ok {
				continue
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q: %s %q: %w", name, v, addr, err))
				continue
			}
			t, ok := p.file.Services[host]
			if !ok || !isTemporalServer(t) {
				errs = append(errs, fmt.Errorf("service %q: %s %q does not name the Temporal server service", name, v, addr))
				continue
			}
			if !slices.Contains(containerPorts(t), port) {
				errs = append(errs, fmt.Errorf("service %q: %s %q: service %q does not listen on port %s", name, v, addr, host, port))
			}
		}
	}
	return errors.Join(errs...)
}

// checkTemporal: the Temporal server and its schema job log in to the
// PostgreSQL service with its credentials, the server's dynamic config is a
// mounted file, and the namespace the admin tools register is the one the
// sanwatch services use and wait for.
func checkTemporal(p *project) error {
	var errs []error
	admin := ""
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		if _, ok := s.Environment["TEMPORAL_NAMESPACE"]; ok && strings.HasPrefix(s.Image, "temporalio/admin-tools:") {
			admin = name
		}
		if path, ok := s.Environment["DYNAMIC_CONFIG_FILE_PATH"]; ok {
			errs = append(errs, checkDynamicConfig(p, name, path))
		}
		seeds, ok := s.Environment["POSTGRES_SEEDS"]
		if !ok {
			continue
		}
		db, ok := p.file.Services[seeds]
		if !ok || !isPostgres(db) {
			errs = append(errs, fmt.Errorf("service %q: POSTGRES_SEEDS %q is not a postgres service", name, seeds))
			continue
		}
		if got, want := s.Environment["POSTGRES_USER"], db.Environment["POSTGRES_USER"]; got != want {
			errs = append(errs, fmt.Errorf("service %q: POSTGRES_USER %q is not the user %q of service %q", name, got, want, seeds))
		}
		for _, v := range []string{"POSTGRES_PWD", "SQL_PASSWORD"} {
			if got, ok := s.Environment[v]; ok && got != db.Environment["POSTGRES_PASSWORD"] {
				errs = append(errs, fmt.Errorf("service %q: %s does not match POSTGRES_PASSWORD of service %q", name, v, seeds))
			}
		}
	}
	if admin == "" {
		return errors.Join(append(errs, errors.New("no temporalio/admin-tools service registers TEMPORAL_NAMESPACE"))...)
	}
	want := p.file.Services[admin].Environment["TEMPORAL_NAMESPACE"]
	for _, name := range p.sanwatchServices() {
		s := p.file.Services[name]
		ns := s.Environment["SANWATCH_TEMPORAL_NAMESPACE"]
		if ns == "" {
			ns = "default"
		}
		if ns != want {
			errs = append(errs, fmt.Errorf("service %q: namespace %q is not the namespace %q that %q registers", name, ns, want, admin))
		}
		if s.DependsOn[admin] != "service_healthy" && !withoutTemporal(s) {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to be healthy, so the namespace may not exist yet", name, admin))
		}
	}
	return errors.Join(errs...)
}

// withoutTemporal reports whether a sanwatch service starts without
// Temporal: the receiver (it takes posts while Temporal is down; its outbox
// starts the workflows later) and the key jobs, on which it waits.
func withoutTemporal(s *service) bool {
	return slices.Contains(s.Command.Values, "receive") || isKeyJob(s)
}

// isKeyJob reports whether a sanwatch service is a one-shot job that only
// writes a key or a certificate into a volume (codec-keygen,
// tls-selfsigned): it reads no batch, no codec key and no Temporal.
func isKeyJob(s *service) bool {
	return slices.ContainsFunc(s.Command.Values, func(a string) bool { return a == "codec-keygen" || a == "tls-selfsigned" })
}

// temporalWorkDir is the working directory of the temporalio/server image
// (docker/targets/server.Dockerfile), against which a relative
// DYNAMIC_CONFIG_FILE_PATH resolves.
const temporalWorkDir = "/etc/temporal"

// checkDynamicConfig: the Temporal server's dynamic config file lies in a
// folder of the repository bind-mounted whole. A file mounted on its own
// never sees an edit: editors write a new file and rename it over the old
// one, and the container keeps the old inode.
func checkDynamicConfig(p *project, name, path string) error {
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(temporalWorkDir, abs)
	}
	for _, m := range p.file.Services[name].Volumes {
		if m.Type != "bind" {
			continue
		}
		if m.Target == abs {
			return fmt.Errorf("service %q: DYNAMIC_CONFIG_FILE_PATH %s is a file mounted on its own (%s), which never sees an edit: mount its folder", name, path, m.Source)
		}
		rel, err := filepath.Rel(m.Target, abs)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		if _, err := os.Stat(filepath.Join(p.root, m.Source, rel)); err != nil {
			return fmt.Errorf("service %q: DYNAMIC_CONFIG_FILE_PATH %s: %s does not exist in %s", name, path, rel, m.Source)
		}
		return nil
	}
	return fmt.Errorf("service %q: DYNAMIC_CONFIG_FILE_PATH %s is not in a mounted folder", name, path)
}

// checkTemporalVersion: the Temporal server and admin tools images are the
// version of go.temporal.io/server in go.mod (the test server the e2e tests
// run), so what is tested is what the stack runs.
func checkTemporalVersion(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		if !isTemporalServer(s) && !strings.HasPrefix(s.Image, "temporalio/admin-tools:") {
			continue
		}
		if tag := s.Image[strings.LastIndex(s.Image, ":")+1:]; "v"+tag != p.serverVersion {
			errs = append(errs, fmt.Errorf("service %q: image %s differs from go.mod's go.temporal.io/server %s", name, s.Image, p.serverVersion))
		}
	}
	return errors.Join(errs...)
}

// readmePasswordNote is what the README says about the database passwords.
var readmePasswordNote = regexp.MustCompile("(?s)TEMPORAL_DB_PASSWORD.{0,400}?only before\\s+the\\s+first\\s+`up`.{0,200}?down\\s+-v")

// checkReadme: the README's compose section says the database passwords
// apply only when the volumes are created: PostgreSQL reads
// POSTGRES_PASSWORD on an empty data directory only, so a changed password
// locks the services out until `down -v`.
func checkReadme(p *project) error {
	const heading = "### The production-like stack (docker compose)"
	i := strings.Index(p.readme, heading)
	if i < 0 {
		return fmt.Errorf("README: no section %q", heading)
	}
	section := p.readme[i+len(heading):]
	if j := strings.Index(section, "\n#"); j >= 0 {
		section = section[:j]
	}
	if !readmePasswordNote.MatchString(section) {
		return errors.New("README: the compose section does not say that TEMPORAL_DB_PASSWORD and STORE_DB_PASSWORD apply only before the first `up` (or after `down -v`)")
	}
	return nil
}

// splitList splits a list-valued environment variable (comma-separated).
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkSharedData: the ingest roots are on a named volume that the worker
// and every other sanwatch service mount at the same path (claim check:
// batches travel through Temporal as paths).
func checkSharedData(p *project) error {
	w, ok := p.file.Services["worker"]
	if !ok {
		return errors.New(`no "worker" service`)
	}
	roots := splitList(w.Environment["SANWATCH_INGEST_ROOTS"])
	if len(roots) == 0 {
		return errors.New(`service "worker": SANWATCH_INGEST_ROOTS is not set`)
	}
	var errs []error
	for _, root := range roots {
		var shared *mount
		for i, m := range w.Volumes {
			if m.Type == "volume" && m.Source != "" && (root == m.Target || strings.HasPrefix(root, strings.TrimSuffix(m.Target, "/")+"/")) {
				shared = &w.Volumes[i]
			}
		}
		if shared == nil {
			errs = append(errs, fmt.Errorf(`service "worker": ingest root %s is not on a named volume`, root))
			continue
		}
		for _, name := range p.sanwatchServices() {
			s := p.file.Services[name]
			if name == "worker" {
				continue
			}
			if got := s.Environment["SANWATCH_INGEST_ROOTS"]; got != w.Environment["SANWATCH_INGEST_ROOTS"] {
				errs = append(errs, fmt.Errorf("service %q: SANWATCH_INGEST_ROOTS %q differs from the worker's %q", name, got, w.Environment["SANWATCH_INGEST_ROOTS"]))
			}
			if !slices.ContainsFunc(s.Volumes, func(m mount) bool { return m.Source == shared.Source && m.Target == shared.Target }) {
				errs = append(errs, fmt.Errorf("service %q: does not mount volume %q at %s as the worker does: batch paths would not resolve", name, shared.Source, shared.Target))
			}
		}
	}
	return errors.Join(errs...)
}

// checkProfiles: the starter is a tool (docker compose run), the worker is
// started by docker compose up.
func checkProfiles(p *project) error {
	var errs []error
	if s, ok := p.file.Services["starter"]; !ok {
		errs = append(errs, errors.New(`no "starter" service`))
	} else if !slices.Contains(s.Profiles, "tools") {
		errs = append(errs, errors.New(`service "starter": not in the tools profile, so docker compose up would start it`))
	}
	if w, ok := p.file.Services["worker"]; ok && len(w.Profiles) > 0 {
		errs = append(errs, fmt.Errorf(`service "worker": in profiles %v, so docker compose up does not start it`, w.Profiles))
	}
	return errors.Join(errs...)
}

var restartPolicy = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)

// checkRestart: every service states its restart policy; those that
// docker compose up starts come back after a crash, and one-shot jobs retry a
// limited number of times (upstream's on-failure:6).
func checkRestart(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		switch {
		case s.Restart == "":
			errs = append(errs, fmt.Errorf("service %q: no restart policy", name))
		case !restartPolicy.MatchString(s.Restart):
			errs = append(errs, fmt.Errorf("service %q: restart %q is not a restart policy", name, s.Restart))
		case s.Restart == "on-failure":
			errs = append(errs, fmt.Errorf("service %q: restart \"on-failure\" retries forever, so a wrong password makes docker compose up wait forever: use on-failure:6", name))
		case s.Restart == "no" && len(s.Profiles) == 0:
			errs = append(errs, fmt.Errorf("service %q: restart \"no\": a crashed service would stay down", name))
		}
	}
	return errors.Join(errs...)
}

// pgIsReadyTCP matches a pg_isready that connects over TCP to loopback.
var pgIsReadyTCP = regexp.MustCompile(`pg_isready\b.*(?:-h|--host)[ =](?:127\.0\.0\.1|localhost)(?:\s|$)`)

// checkPostgres: PostgreSQL services are checked with pg_isready over TCP
// (the entrypoint's temporary server listens only on the Unix socket while
// it initialises a fresh volume) and keep their data in a named volume.
func checkPostgres(p *project) error {
	var errs []error
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		if !isPostgres(s) {
			continue
		}
		switch {
		case s.Healthcheck == nil || !strings.Contains(s.Healthcheck.commandLine(), "pg_isready"):
			errs = append(errs, fmt.Errorf("service %q: healthcheck does not run pg_isready", name))
		case !pgIsReadyTCP.MatchString(s.Healthcheck.commandLine()):
			errs = append(errs, fmt.Errorf("service %q: pg_isready without -h 127.0.0.1 checks the Unix socket, which answers before TCP is up on a fresh volume", name))
		}
		if !slices.ContainsFunc(s.Volumes, func(m mount) bool {
			return m.Type == "volume" && m.Source != "" && m.Target == "/var/lib/postgresql/data"
		}) {
			errs = append(errs, fmt.Errorf("service %q: /var/lib/postgresql/data is not on a named volume", name))
		}
	}
	return errors.Join(errs...)
}

// checkConfig loads sanwatch's configuration the way each sanwatch service
// does (its environment and the mounted sanwatch.yaml) and checks that it
// validates and points at the services of the stack.
func checkConfig(p *project) error {
	var errs []error
	for _, name := range p.sanwatchServices() {
		s := p.file.Services[name]
		file := os.DevNull
		for _, m := range s.Volumes {
			if m.Type == "bind" && m.Target == "/etc/sanwatch/"+config.FileName {
				file = filepath.Join(p.root, m.Source)
			}
		}
		env := s.Environment
		cfg, err := config.Load(config.LoadOptions{File: file, Env: func(k string) (string, bool) {
			if slices.Contains(codecFileVars, k) {
				return "", false // made at run time in a volume: checkCodec
			}
			v, ok := env[k]
			return v, ok
		}})
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
			continue
		}
		if cfg.Store.Driver == config.DriverPostgres {
			errs = append(errs, checkDSN(p, name, cfg.Store.DSN))
		}
		if h := cfg.SMTP.Host; !strings.Contains(h, ".") && net.ParseIP(h) == nil {
			if _, ok := p.file.Services[h]; !ok {
				errs = append(errs, fmt.Errorf("service %q: smtp.host %q is neither a service nor a DNS name", name, h))
			}
		}
		if slices.Equal(s.Entrypoint.Values, []string{"worker"}) {
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if s.StopGracePeriod == "" {
				grace, err = 10*time.Second, nil // compose's default
			}
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("service %q: stop_grace_period %q: %w", name, s.StopGracePeriod, err))
			case grace <= cfg.Worker.ShutdownTimeout:
				errs = append(errs, fmt.Errorf("service %q: stop_grace_period %s does not exceed worker.shutdown_timeout %s: running activities would be killed",
					name, grace, cfg.Worker.ShutdownTimeout))
			}
		}
	}
	return errors.Join(errs...)
}

// checkDSN checks that a postgres DSN names a PostgreSQL service of the
// stack with its user, password and database.
func checkDSN(p *project, name, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("service %q: store.dsn: %w", name, err)
	}
	db, ok := p.file.Services[u.Hostname()]
	if !ok || !isPostgres(db) {
		return fmt.Errorf("service %q: store.dsn host %q is not a postgres service", name, u.Hostname())
	}
	var errs []error
	pass, _ := u.User.Password()
	want := map[string]string{"POSTGRES_USER": u.User.Username(), "POSTGRES_PASSWORD": pass, "POSTGRES_DB": strings.TrimPrefix(u.Path, "/")}
	for _, k := range sortedKeys(want) {
		got := db.Environment[k]
		if k == "POSTGRES_DB" && got == "" {
			got = db.Environment["POSTGRES_USER"] // the image's default
		}
		if got != want[k] {
			errs = append(errs, fmt.Errorf("service %q: store.dsn does not match %s of service %q", name, k, u.Hostname()))
		}
	}
	return errors.Join(errs...)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// checkDockerfile: the builder matches go.mod and builds both commands
// without cgo; the image holds the advisories where the services read them,
// sets only known keys, and does not run as root.
func checkDockerfile(p *project) error {
	var errs []error
	var goVersion, user, advisories string
	var cgoOff, builds, fromGo bool
	env := map[string]string{}
	for _, in := range parseDockerfile(p.dockerfile) {
		switch in.cmd {
		case "ARG":
			if v, ok := strings.CutPrefix(in.args, "GO_VERSION="); ok {
				goVersion = v
			}
		case "FROM":
			fromGo = fromGo || strings.HasPrefix(in.args, "golang:${GO_VERSION}")
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			cgoOff = cgoOff || env["CGO_ENABLED"] == "0"
		case "RUN":
			cgoOff = cgoOff || strings.Contains(in.args, "CGO_ENABLED=0 go build")
			builds = builds || strings.Contains(in.args, "go build") &&
				strings.Contains(in.args, " ./worker") && strings.Contains(in.args, " ./starter")
		case "COPY":
			if f := strings.Fields(in.args); len(f) == 2 && f[0] == "config/advisories.yaml" {
				advisories = f[1]
			}
		case "USER":
			user = in.args
		}
	}
	if goVersion != p.goVersion {
		errs = append(errs, fmt.Errorf("Dockerfile: GO_VERSION %q differs from go.mod's go %s", goVersion, p.goVersion))
	}
	if !fromGo {
		errs = append(errs, errors.New("Dockerfile: no build stage FROM golang:${GO_VERSION}"))
	}
	if !cgoOff {
		errs = append(errs, errors.New("Dockerfile: CGO_ENABLED=0 is not set for go build"))
	}
	if !builds {
		errs = append(errs, errors.New("Dockerfile: go build does not build ./worker and ./starter"))
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		errs = append(errs, errors.New("Dockerfile: the image runs as root: add a USER"))
	}
	for _, k := range sortedKeys(env) {
		if _, ok := p.envKeys[k]; strings.HasPrefix(k, config.EnvPrefix+"_") && !ok {
			errs = append(errs, fmt.Errorf("Dockerfile: ENV %s is not a sanwatch configuration key", k))
		}
	}
	if advisories == "" {
		errs = append(errs, errors.New("Dockerfile: config/advisories.yaml is not copied into the image"))
	}
	for _, name := range p.sanwatchServices() {
		if got := p.file.Services[name].Environment["SANWATCH_ADVISORIES"]; got != "" && got != advisories {
			errs = append(errs, fmt.Errorf("Dockerfile: advisories are copied to %s, but service %q reads SANWATCH_ADVISORIES=%s", advisories, name, got))
		}
	}
	return errors.Join(errs...)
}

// checks are every check of the stack, by name.
var checks = []struct {
	name  string
	check func(*project) error
}{
	{"version-less compose spec", checkTopLevel},
	{"images pinned or built", checkImages},
	{"SANWATCH variables are config keys", checkEnvKeys},
	{"commands name real flags and subcommands", checkCommands},
	{"worker health check matches metrics port", checkWorkerHealth},
	{"depends_on targets exist", checkDependsOn},
	{"worker scales", checkScalable},
	{"only UIs and the frontend published, on loopback", checkPublishedPorts},
	{"mounts exist and volumes are declared", checkMounts},
	{"Temporal address is the temporal service", checkTemporalAddress},
	{"Temporal database, dynamic config and namespace", checkTemporal},
	{"telemetry volume shared at the same path", checkSharedData},
	{"starter under the tools profile", checkProfiles},
	{"restart policies", checkRestart},
	{"postgres health and data", checkPostgres},
	{"sanwatch config loads from the compose env", checkConfig},
	{"Dockerfile", checkDockerfile},
	{"Temporal images at go.mod's server version", checkTemporalVersion},
	{"README on the database passwords", checkReadme},
	{"codec key volume, codec server and UI endpoint", checkCodec},
	{"S3 batch store, its credentials and bucket", checkS3},
	{"receiver over TLS, independent of Temporal", checkReceiver},
}

func TestCompose(t *testing.T) {
	p := loadProject(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.check(p))
		})
	}
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	want := []string{"codec-keys", "codec-server", "mailpit", "receiver", "receiver-tls", "s3", "s3-bucket", "s3-credentials",
		"sanwatch-db", "starter", "temporal", "temporal-admin-tools", "temporal-db", "temporal-schema", "temporal-ui", "victoriametrics", "worker"}
	require.Equal(t, want, p.serviceNames())
	require.Equal(t, []string{"codec-keys", "codec-server", "receiver", "receiver-tls", "starter", "worker"}, p.sanwatchServices())
}

// TestChecksCatchMistakes breaks the real compose file (or Dockerfile) one
// way at a time and requires the check to say exactly what is wrong.
func TestChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *project)
		check  func(*project) error
		want   string
	}{
		{
			name:   "version key",
			mutate: func(p *project) { v := "3.8"; p.file.Version = &v },
			check:  checkTopLevel,
			want:   `top-level version "3.8" is obsolete in the compose specification: remove it`,
		},
		{
			name:   "unknown top-level key",
			mutate: func(p *project) { p.file.Extensions["sanwatch"] = map[string]any{} },
			check:  checkTopLevel,
			want:   `unknown top-level key "sanwatch"`,
		},
		{
			name:   "service without image or build",
			mutate: func(p *project) { p.file.Services["mailpit"].Image = "" },
			check:  checkImages,
			want:   `service "mailpit": neither image nor build`,
		},
		{
			name:   "image latest",
			mutate: func(p *project) { p.file.Services["temporal-ui"].Image = "temporalio/ui:latest" },
			check:  checkImages,
			want:   `service "temporal-ui": image "temporalio/ui:latest" is not pinned: use a version, not latest`,
		},
		{
			name:   "image without tag",
			mutate: func(p *project) { p.file.Services["temporal-db"].Image = "postgres" },
			check:  checkImages,
			want:   `service "temporal-db": image "postgres" has no tag: pin a version`,
		},
		{
			name:   "missing dockerfile",
			mutate: func(p *project) { p.file.Services["worker"].Build.Dockerfile = "Dockerfile.worker" },
			check:  checkImages,
			want:   `service "worker": build dockerfile Dockerfile.worker does not exist`,
		},
		{
			name:   "unknown SANWATCH variable",
			mutate: func(p *project) { p.file.Services["worker"].Environment["SANWATCH_STORE_DRIVERS"] = "postgres" },
			check:  checkEnvKeys,
			want:   `service "worker": SANWATCH_STORE_DRIVERS is not a sanwatch configuration key`,
		},
		{
			name:   "unknown worker flag",
			mutate: func(p *project) { p.file.Services["worker"].Command.Values = []string{"--queue", "main"} },
			check:  checkCommands,
			want:   `service "worker": worker has no flag --queue`,
		},
		{
			name:   "worker flag without value",
			mutate: func(p *project) { p.file.Services["worker"].Command.Values = []string{"--metrics-addr"} },
			check:  checkCommands,
			want:   `service "worker": worker flag --metrics-addr needs a value`,
		},
		{
			name:   "worker argument",
			mutate: func(p *project) { p.file.Services["worker"].Command.Values = []string{"--queues=main", "analysis"} },
			check:  checkCommands,
			want:   `service "worker": worker takes no argument "analysis"`,
		},
		{
			name:   "unknown starter command",
			mutate: func(p *project) { p.file.Services["starter"].Command.Values = []string{"ingst", "/data/batches"} },
			check:  checkCommands,
			want:   `service "starter": "ingst" is not a starter command`,
		},
		{
			name:   "starter flag before no command",
			mutate: func(p *project) { p.file.Services["starter"].Command.Values = []string{"--log-level", "debug"} },
			check:  checkCommands,
			want:   `service "starter": command names no starter command`,
		},
		{
			name:   "sanwatch image with another entrypoint",
			mutate: func(p *project) { p.file.Services["starter"].Entrypoint.Values = []string{"/bin/sh"} },
			check:  checkCommands,
			want:   `service "starter": runs the sanwatch image with entrypoint ["/bin/sh"]: want worker or starter`,
		},
		{
			name: "health check on another port",
			mutate: func(p *project) {
				p.file.Services["worker"].Healthcheck.Test.Values = []string{"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9091/healthz"}
			},
			check: checkWorkerHealth,
			want:  `service "worker": healthcheck fetches http://127.0.0.1:9091/healthz, but metrics listen on port 9090`,
		},
		{
			name: "health check with curl on another path",
			mutate: func(p *project) {
				p.file.Services["worker"].Healthcheck.Test.Values = []string{"CMD", "curl", "-f", "http://127.0.0.1:9090/metrics"}
			},
			check: checkWorkerHealth,
			want: `service "worker": healthcheck runs "curl": the alpine-based image has wget, not that` + "\n" +
				`service "worker": healthcheck fetches http://127.0.0.1:9090/metrics, want the /healthz path`,
		},
		{
			name: "metrics on loopback",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_WORKER_METRICS_ADDR"] = "127.0.0.1:9090"
			},
			check: checkWorkerHealth,
			want:  `service "worker": metrics listen on 127.0.0.1:9090, which other containers cannot reach: use 0.0.0.0:9090`,
		},
		{
			name:   "worker without health check",
			mutate: func(p *project) { p.file.Services["worker"].Healthcheck = nil },
			check:  checkWorkerHealth,
			want:   `service "worker": no healthcheck`,
		},
		{
			name:   "depends on a missing service",
			mutate: func(p *project) { p.file.Services["worker"].DependsOn["temporal-server"] = "service_healthy" },
			check:  checkDependsOn,
			want:   `service "worker": depends on "temporal-server", which is not a service`,
		},
		{
			name:   "waits for health that is never checked",
			mutate: func(p *project) { p.file.Services["worker"].DependsOn["temporal-ui"] = "service_healthy" },
			check:  checkDependsOn,
			want:   `service "worker": waits for "temporal-ui" to be healthy, but "temporal-ui" has no healthcheck`,
		},
		{
			name:   "waits for a job that never ends",
			mutate: func(p *project) { p.file.Services["temporal-schema"].Restart = "unless-stopped" },
			check:  checkDependsOn,
			want:   `service "temporal": waits for "temporal-schema" to complete, but "temporal-schema" restarts unless-stopped`,
		},
		{
			name:   "depends on a tool",
			mutate: func(p *project) { p.file.Services["worker"].DependsOn["starter"] = "service_started" },
			check:  checkDependsOn,
			want:   `service "worker": depends on "starter", which is only in profiles [tools]`,
		},
		{
			name:   "worker container name",
			mutate: func(p *project) { p.file.Services["worker"].ContainerName = "sanwatch-worker" },
			check:  checkScalable,
			want:   `service "worker": container_name "sanwatch-worker" prevents --scale`,
		},
		{
			name:   "worker host port",
			mutate: func(p *project) { p.file.Services["worker"].Ports = []string{"9090", "127.0.0.1:9090:9090"} },
			check:  checkScalable,
			want:   `service "worker": port "127.0.0.1:9090:9090" binds a host port, which prevents --scale`,
		},
		{
			name:   "ui on every interface",
			mutate: func(p *project) { p.file.Services["temporal-ui"].Ports = []string{"8080:8080"} },
			check:  checkPublishedPorts,
			want:   `service "temporal-ui": port "8080:8080" is published on every interface of the host: bind it to 127.0.0.1`,
		},
		{
			name:   "database published",
			mutate: func(p *project) { p.file.Services["sanwatch-db"].Ports = []string{"127.0.0.1:5432:5432"} },
			check:  checkPublishedPorts,
			want:   `service "sanwatch-db": port "127.0.0.1:5432:5432" publishes the database: keep it on the compose network`,
		},
		{
			name:   "worker metrics published",
			mutate: func(p *project) { p.file.Services["worker"].Ports = []string{"127.0.0.1::9090", "9090"} },
			check:  checkPublishedPorts,
			want: `service "worker": port "127.0.0.1::9090" publishes metrics or pprof: scrape them on the compose network` + "\n" +
				`service "worker": port "9090" is published on every interface of the host: bind it to 127.0.0.1`,
		},
		{
			name: "mailpit smtp published",
			mutate: func(p *project) {
				s := p.file.Services["mailpit"]
				s.Ports = append(s.Ports, "127.0.0.1:1025:1025")
			},
			check: checkPublishedPorts,
			want:  `service "mailpit": port "127.0.0.1:1025:1025" publishes more than the Mailpit UI (8025)`,
		},
		{
			name: "mount of a missing file",
			mutate: func(p *project) {
				s := p.file.Services["starter"]
				s.Volumes = append(s.Volumes, mount{Type: "bind", Source: "./deploy/checks", Target: "/etc/sanwatch/checks"})
			},
			check: checkMounts,
			want:  `service "starter": mounts ./deploy/checks, which does not exist`,
		},
		{
			name: "mount of a host path",
			mutate: func(p *project) {
				s := p.file.Services["worker"]
				s.Volumes = append(s.Volumes, mount{Type: "bind", Source: "/srv/telemetry", Target: "/telemetry"})
			},
			check: checkMounts,
			want:  `service "worker": mounts host path /srv/telemetry: mount a file of the repository (./...) or a named volume`,
		},
		{
			name:   "undeclared volume",
			mutate: func(p *project) { delete(p.file.Volumes, "sanwatch-data") },
			check:  checkMounts,
			want: `service "codec-keys": volume "sanwatch-data" is not declared under volumes` + "\n" +
				`service "codec-server": volume "sanwatch-data" is not declared under volumes` + "\n" +
				`service "receiver": volume "sanwatch-data" is not declared under volumes` + "\n" +
				`service "receiver-tls": volume "sanwatch-data" is not declared under volumes` + "\n" +
				`service "starter": volume "sanwatch-data" is not declared under volumes` + "\n" +
				`service "worker": volume "sanwatch-data" is not declared under volumes`,
		},
		{
			name:   "unused volume",
			mutate: func(p *project) { p.file.Volumes["batches"] = nil },
			check:  checkMounts,
			want:   `volume "batches" is declared but no service mounts it`,
		},
		{
			name: "Temporal address names another service",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_TEMPORAL_ADDRESS"] = "temporal-ui:8080"
			},
			check: checkTemporalAddress,
			want:  `service "worker": SANWATCH_TEMPORAL_ADDRESS "temporal-ui:8080" does not name the Temporal server service`,
		},
		{
			name:   "Temporal address on the wrong port",
			mutate: func(p *project) { p.file.Services["temporal-ui"].Environment["TEMPORAL_ADDRESS"] = "temporal:7234" },
			check:  checkTemporalAddress,
			want:   `service "temporal-ui": TEMPORAL_ADDRESS "temporal:7234": service "temporal" does not listen on port 7234`,
		},
		{
			name:   "Temporal address missing",
			mutate: func(p *project) { delete(p.file.Services["starter"].Environment, "SANWATCH_TEMPORAL_ADDRESS") },
			check:  checkTemporalAddress,
			want:   `service "starter": SANWATCH_TEMPORAL_ADDRESS is not set: the default 127.0.0.1:7233 is the container itself`,
		},
		{
			name:   "schema job with another password",
			mutate: func(p *project) { p.file.Services["temporal-schema"].Environment["SQL_PASSWORD"] = "secret" },
			check:  checkTemporal,
			want:   `service "temporal-schema": SQL_PASSWORD does not match POSTGRES_PASSWORD of service "temporal-db"`,
		},
		{
			name:   "Temporal on the sanwatch database",
			mutate: func(p *project) { p.file.Services["temporal"].Environment["POSTGRES_SEEDS"] = "sanwatch-db" },
			check:  checkTemporal,
			want: `service "temporal": POSTGRES_USER "temporal" is not the user "sanwatch" of service "sanwatch-db"` + "\n" +
				`service "temporal": POSTGRES_PWD does not match POSTGRES_PASSWORD of service "sanwatch-db"`,
		},
		{
			name: "dynamic config not in the mounted folder",
			mutate: func(p *project) {
				p.file.Services["temporal"].Environment["DYNAMIC_CONFIG_FILE_PATH"] = "config/dynamicconfig/development-sql.yaml"
			},
			check: checkTemporal,
			want:  `service "temporal": DYNAMIC_CONFIG_FILE_PATH config/dynamicconfig/development-sql.yaml: development-sql.yaml does not exist in ./deploy/temporal/dynamicconfig`,
		},
		{
			name: "dynamic config not mounted",
			mutate: func(p *project) {
				p.file.Services["temporal"].Environment["DYNAMIC_CONFIG_FILE_PATH"] = "/etc/temporal/dynamic.yaml"
			},
			check: checkTemporal,
			want:  `service "temporal": DYNAMIC_CONFIG_FILE_PATH /etc/temporal/dynamic.yaml is not in a mounted folder`,
		},
		{
			name: "dynamic config file mounted on its own",
			mutate: func(p *project) {
				s := p.file.Services["temporal"]
				s.Volumes = []mount{{Type: "bind", Source: "./deploy/temporal/dynamicconfig/sanwatch.yaml",
					Target: "/etc/temporal/config/dynamicconfig/sanwatch.yaml", ReadOnly: true}}
			},
			check: checkTemporal,
			want: `service "temporal": DYNAMIC_CONFIG_FILE_PATH /etc/temporal/config/dynamicconfig/sanwatch.yaml is a file mounted on its own ` +
				`(./deploy/temporal/dynamicconfig/sanwatch.yaml), which never sees an edit: mount its folder`,
		},
		{
			name:   "Temporal server behind go.mod",
			mutate: func(p *project) { p.file.Services["temporal"].Image = "temporalio/server:1.32.0" },
			check:  checkTemporalVersion,
			want:   `service "temporal": image temporalio/server:1.32.0 differs from go.mod's go.temporal.io/server v1.32.1`,
		},
		{
			name:   "go.mod raised, compose not",
			mutate: func(p *project) { p.serverVersion = "v1.33.0" },
			check:  checkTemporalVersion,
			want: `service "temporal": image temporalio/server:1.32.1 differs from go.mod's go.temporal.io/server v1.33.0` + "\n" +
				`service "temporal-admin-tools": image temporalio/admin-tools:1.32.1 differs from go.mod's go.temporal.io/server v1.33.0` + "\n" +
				`service "temporal-schema": image temporalio/admin-tools:1.32.1 differs from go.mod's go.temporal.io/server v1.33.0`,
		},
		{
			name:   "schema job retried forever",
			mutate: func(p *project) { p.file.Services["temporal-schema"].Restart = "on-failure" },
			check:  checkRestart,
			want:   `service "temporal-schema": restart "on-failure" retries forever, so a wrong password makes docker compose up wait forever: use on-failure:6`,
		},
		{
			name: "pg_isready on the Unix socket",
			mutate: func(p *project) {
				p.file.Services["temporal-db"].Healthcheck.Test.Values = []string{"CMD", "pg_isready", "-U", "temporal", "-d", "postgres"}
			},
			check: checkPostgres,
			want:  `service "temporal-db": pg_isready without -h 127.0.0.1 checks the Unix socket, which answers before TCP is up on a fresh volume`,
		},
		{
			name: "README silent on when the passwords apply",
			mutate: func(p *project) {
				p.readme = strings.ReplaceAll(p.readme, "down -v", "down")
			},
			check: checkReadme,
			want:  "README: the compose section does not say that TEMPORAL_DB_PASSWORD and STORE_DB_PASSWORD apply only before the first `up` (or after `down -v`)",
		},
		{
			name:   "sanwatch in another namespace",
			mutate: func(p *project) { p.file.Services["worker"].Environment["SANWATCH_TEMPORAL_NAMESPACE"] = "sanwatch" },
			check:  checkTemporal,
			want:   `service "worker": namespace "sanwatch" is not the namespace "default" that "temporal-admin-tools" registers`,
		},
		{
			name:   "starter does not wait for the namespace",
			mutate: func(p *project) { delete(p.file.Services["starter"].DependsOn, "temporal-admin-tools") },
			check:  checkTemporal,
			want:   `service "starter": does not wait for "temporal-admin-tools" to be healthy, so the namespace may not exist yet`,
		},
		{
			name:   "starter mounts the data elsewhere",
			mutate: func(p *project) { p.file.Services["starter"].Volumes[0].Target = "/batches" },
			check:  checkSharedData,
			want:   `service "starter": does not mount volume "sanwatch-data" at /data as the worker does: batch paths would not resolve`,
		},
		{
			name:   "ingest root off the volume",
			mutate: func(p *project) { p.file.Services["worker"].Environment["SANWATCH_INGEST_ROOTS"] = "/tmp" },
			check:  checkSharedData,
			want:   `service "worker": ingest root /tmp is not on a named volume`,
		},
		{
			name:   "starter ingest roots differ",
			mutate: func(p *project) { p.file.Services["starter"].Environment["SANWATCH_INGEST_ROOTS"] = "/data/batches" },
			check:  checkSharedData,
			want:   `service "starter": SANWATCH_INGEST_ROOTS "/data/batches" differs from the worker's "/data"`,
		},
		{
			name:   "starter without profile",
			mutate: func(p *project) { p.file.Services["starter"].Profiles = nil },
			check:  checkProfiles,
			want:   `service "starter": not in the tools profile, so docker compose up would start it`,
		},
		{
			name:   "no restart policy",
			mutate: func(p *project) { p.file.Services["mailpit"].Restart = "" },
			check:  checkRestart,
			want:   `service "mailpit": no restart policy`,
		},
		{
			name:   "bad restart policy",
			mutate: func(p *project) { p.file.Services["temporal"].Restart = "on-crash" },
			check:  checkRestart,
			want:   `service "temporal": restart "on-crash" is not a restart policy`,
		},
		{
			name:   "worker never restarts",
			mutate: func(p *project) { p.file.Services["worker"].Restart = "no" },
			check:  checkRestart,
			want:   `service "worker": restart "no": a crashed service would stay down`,
		},
		{
			name:   "postgres checked without pg_isready",
			mutate: func(p *project) { p.file.Services["sanwatch-db"].Healthcheck.Test.Values = []string{"CMD", "true"} },
			check:  checkPostgres,
			want:   `service "sanwatch-db": healthcheck does not run pg_isready`,
		},
		{
			name:   "postgres data in the container",
			mutate: func(p *project) { p.file.Services["temporal-db"].Volumes = nil },
			check:  checkPostgres,
			want:   `service "temporal-db": /var/lib/postgresql/data is not on a named volume`,
		},
		{
			name:   "invalid configuration value",
			mutate: func(p *project) { p.file.Services["worker"].Environment["SANWATCH_STORE_DRIVER"] = "mysql" },
			check:  checkConfig,
			want:   `service "worker": config: store.driver = "mysql": must be sqlite or postgres`,
		},
		{
			name: "dsn password differs from the database's",
			mutate: func(p *project) {
				p.file.Services["sanwatch-db"].Environment["POSTGRES_PASSWORD"] = "changed"
			},
			check: checkConfig,
			want: `service "codec-keys": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"` + "\n" +
				`service "codec-server": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"` + "\n" +
				`service "receiver": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"` + "\n" +
				`service "receiver-tls": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"` + "\n" +
				`service "starter": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"` + "\n" +
				`service "worker": store.dsn does not match POSTGRES_PASSWORD of service "sanwatch-db"`,
		},
		{
			name: "dsn names the Temporal database",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_STORE_DSN"] = "postgres://sanwatch:sanwatch@temporal:5432/sanwatch"
			},
			check: checkConfig,
			want:  `service "worker": store.dsn host "temporal" is not a postgres service`,
		},
		{
			name:   "smtp host not in the stack",
			mutate: func(p *project) { p.file.Services["starter"].Environment["SANWATCH_SMTP_HOST"] = "mailhog" },
			check:  checkConfig,
			want:   `service "starter": smtp.host "mailhog" is neither a service nor a DNS name`,
		},
		{
			name:   "worker killed before shutdown",
			mutate: func(p *project) { p.file.Services["worker"].StopGracePeriod = "" },
			check:  checkConfig,
			want:   `service "worker": stop_grace_period 10s does not exceed worker.shutdown_timeout 30s: running activities would be killed`,
		},
		{
			name: "Dockerfile Go version",
			mutate: func(p *project) {
				p.goVersion = "1.99.1" // go.mod raised, the Dockerfile not
				p.dockerfile = regexp.MustCompile(`(?m)^ARG GO_VERSION=.*$`).ReplaceAllString(p.dockerfile, "ARG GO_VERSION=1.99.0")
			},
			check: checkDockerfile,
			want:  `Dockerfile: GO_VERSION "1.99.0" differs from go.mod's go 1.99.1`,
		},
		{
			name: "Dockerfile runs as root",
			mutate: func(p *project) {
				p.dockerfile = regexp.MustCompile(`(?m)^USER .*$`).ReplaceAllString(p.dockerfile, "")
			},
			check: checkDockerfile,
			want:  `Dockerfile: the image runs as root: add a USER`,
		},
		{
			name:   "Dockerfile with cgo",
			mutate: func(p *project) { p.dockerfile = strings.ReplaceAll(p.dockerfile, "CGO_ENABLED=0", "CGO_ENABLED=1") },
			check:  checkDockerfile,
			want:   `Dockerfile: CGO_ENABLED=0 is not set for go build`,
		},
		{
			name:   "Dockerfile sets an unknown key",
			mutate: func(p *project) { p.dockerfile += "ENV SANWATCH_INGEST_ROOT=/data\n" },
			check:  checkDockerfile,
			want:   `Dockerfile: ENV SANWATCH_INGEST_ROOT is not a sanwatch configuration key`,
		},
		{
			name: "advisories where no service reads them",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_ADVISORIES"] = "/etc/advisories.yaml"
			},
			check: checkDockerfile,
			want:  `Dockerfile: advisories are copied to /etc/sanwatch/advisories.yaml, but service "worker" reads SANWATCH_ADVISORIES=/etc/advisories.yaml`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t)
			require.NoError(t, tc.check(p), "the check fails before the file is broken")
			tc.mutate(p)
			require.EqualError(t, tc.check(p), tc.want)
		})
	}
}

// TestCodecServerIsolated: the codec server decrypts for whoever can reach
// it, so it sits alone on a network of its own, reached only through its
// loopback port; every network a service names is declared.
func TestCodecServerIsolated(t *testing.T) {
	p := loadProject(t)
	require.Equal(t, []string{"codec"}, p.file.Services["codec-server"].Networks)
	for _, name := range p.serviceNames() {
		for _, n := range p.file.Services[name].Networks {
			_, ok := p.file.Networks[n]
			require.True(t, ok, "service %q: network %q is not declared", name, n)
			if name != "codec-server" {
				require.NotEqual(t, "codec", n, "service %q shares the codec server's network", name)
			}
		}
	}
}
