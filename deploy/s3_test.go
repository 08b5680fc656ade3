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

// s3Images are the S3-compatible servers the stack may run.
var s3Images = []string{"chrislusf/seaweedfs:"}

func isS3Server(s *service) bool {
	return slices.ContainsFunc(s3Images, func(prefix string) bool { return strings.HasPrefix(s.Image, prefix) }) &&
		slices.Contains(s.Command.Values, "-s3")
}

// flagValue returns the value of -name=value in a weed command line.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v
		}
	}
	return ""
}

// mountedVolume returns the named volume s mounts at the directory holding
// file, or "".
func mountedVolume(s *service, file string) string {
	for _, m := range s.Volumes {
		if m.Type == "volume" && (path.Dir(file) == m.Target || strings.HasPrefix(file, strings.TrimSuffix(m.Target, "/")+"/")) {
			return m.Source
		}
	}
	return ""
}

// checkS3: the batch store. The S3 server keeps its data on a named volume,
// reads its identities from the volume the credentials job writes, and
// answers a health check on its S3 port; a job creates the bucket once the
// server is healthy. Every sanwatch service names that bucket on that server
// in SANWATCH_BATCHES_URL, with no credentials in the URL or the environment:
// it reads the key from AWS_SHARED_CREDENTIALS_FILE on the same volume, and
// waits for the bucket.
func checkS3(p *project) error {
	var server, bucketJob string
	for _, name := range p.serviceNames() {
		s := p.file.Services[name]
		switch {
		case isS3Server(s):
			server = name
		case s.Environment["BUCKET"] != "" && s.Environment["MASTER"] != "":
			bucketJob = name
		}
	}
	if server == "" {
		return errors.New("no S3 server service (chrislusf/seaweedfs with -s3)")
	}
	var errs []error
	srv := p.file.Services[server]
	s3Port := flagValue(srv.Command.Values, "s3.port")
	if s3Port == "" {
		s3Port = "8333" // weed's default
	}
	if !slices.Contains(containerPorts(srv), s3Port) {
		errs = append(errs, fmt.Errorf("service %q: expose does not list the S3 port %s", server, s3Port))
	}
	if !slices.ContainsFunc(srv.Volumes, func(m mount) bool { return m.Type == "volume" && m.Source != "" && m.Target == "/data" }) {
		errs = append(errs, fmt.Errorf("service %q: /data is not on a named volume: batches would go with the container", server))
	}
	if srv.Healthcheck == nil || !strings.Contains(srv.Healthcheck.commandLine(), "127.0.0.1:"+s3Port+"/healthz") {
		errs = append(errs, fmt.Errorf("service %q: healthcheck does not fetch /healthz on the S3 port %s", server, s3Port))
	}
	identities := flagValue(srv.Command.Values, "s3.config")
	credVolume := mountedVolume(srv, identities)
	if identities == "" || credVolume == "" {
		return errors.Join(append(errs, fmt.Errorf("service %q: -s3.config %q is not on a named volume: the S3 API would accept anyone", server, identities))...)
	}
	for _, dep := range sortedKeys(srv.DependsOn) {
		d := p.file.Services[dep]
		if d != nil && slices.ContainsFunc(d.Volumes, func(m mount) bool { return m.Source == credVolume && !m.ReadOnly }) &&
			srv.DependsOn[dep] != "service_completed_successfully" {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to complete, which writes its identities", server, dep))
		}
	}
	if !slices.ContainsFunc(sortedKeys(srv.DependsOn), func(dep string) bool {
		d := p.file.Services[dep]
		return d != nil && srv.DependsOn[dep] == "service_completed_successfully" &&
			slices.ContainsFunc(d.Volumes, func(m mount) bool { return m.Source == credVolume && !m.ReadOnly })
	}) {
		errs = append(errs, fmt.Errorf("service %q: waits for no job that writes volume %q, so its identities may not exist yet", server, credVolume))
	}

	bucket := ""
	if bucketJob == "" {
		errs = append(errs, errors.New("no job creates the bucket (BUCKET and MASTER in its environment)"))
	} else {
		j := p.file.Services[bucketJob]
		bucket = j.Environment["BUCKET"]
		if host, _, _ := net.SplitHostPort(j.Environment["MASTER"]); host != server {
			errs = append(errs, fmt.Errorf("service %q: MASTER %q is not the S3 server %q", bucketJob, j.Environment["MASTER"], server))
		}
		if j.DependsOn[server] != "service_healthy" {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to be healthy", bucketJob, server))
		}
	}

	for _, name := range p.sanwatchServices() {
		s := p.file.Services[name]
		if isKeyJob(s) {
			continue
		}
		for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SANWATCH_BATCHES_ACCESS_KEY"} {
			if _, ok := s.Environment[v]; ok {
				errs = append(errs, fmt.Errorf("service %q: %s is set in the compose file: keep the key in the credentials volume", name, v))
			}
		}
		raw := s.Environment["SANWATCH_BATCHES_URL"]
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "s3" {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_BATCHES_URL %q is not an s3:// URL: workers on other hosts could not read the batches", name, raw))
			continue
		}
		if u.User != nil {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_BATCHES_URL holds credentials", name))
		}
		if bucket != "" && u.Host != bucket {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_BATCHES_URL names bucket %q, but %q creates %q", name, u.Host, bucketJob, bucket))
		}
		ep, err := url.Parse(u.Query().Get("endpoint"))
		if err != nil || ep.Hostname() != server || ep.Port() != s3Port {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_BATCHES_URL endpoint %q is not http://%s:%s", name, u.Query().Get("endpoint"), server, s3Port))
		}
		if u.Query().Get("use_path_style") != "true" {
			errs = append(errs, fmt.Errorf("service %q: SANWATCH_BATCHES_URL lacks use_path_style=true: the bucket would be looked up as a host name", name))
		}
		creds := s.Environment["AWS_SHARED_CREDENTIALS_FILE"]
		if v := mountedVolume(s, creds); creds == "" || v != credVolume {
			errs = append(errs, fmt.Errorf("service %q: AWS_SHARED_CREDENTIALS_FILE %q is not on volume %q, where the S3 key is", name, creds, credVolume))
		}
		if bucketJob != "" && s.DependsOn[bucketJob] != "service_completed_successfully" {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to complete, so the bucket may not exist yet", name, bucketJob))
		}
	}
	return errors.Join(errs...)
}

// checkReceiver: the receiver runs `starter receive` on all interfaces of
// its container with TLS, from a certificate the TLS job writes into a
// volume the receiver waits for; its port is published on loopback unless
// RECEIVER_HOST_IP says otherwise; its health check fetches /healthz over
// HTTPS on that port; and it does not wait for Temporal (a post is taken
// while Temporal is down: its workflow starts from the outbox later).
func checkReceiver(p *project) error {
	var name, tlsJob string
	for _, n := range p.sanwatchServices() {
		args := p.file.Services[n].Command.Values
		switch {
		case slices.Contains(args, "receive"):
			name = n
		case slices.Contains(args, "tls-selfsigned"):
			tlsJob = n
		}
	}
	if name == "" {
		return errors.New("no sanwatch service runs starter receive")
	}
	s := p.file.Services[name]
	var errs []error
	addr, _ := commandFlag(s.Command.Values, "receiver.addr")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("service %q: receiver.addr %q: %v", name, addr, err)
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		errs = append(errs, fmt.Errorf("service %q: receiver.addr %q: the published port reaches only 0.0.0.0 inside the container", name, addr))
	}
	published := false
	for _, pm := range s.Ports {
		if parts := strings.Split(pm, ":"); len(parts) == 3 && parts[2] == port {
			published = true
		}
	}
	if !published {
		errs = append(errs, fmt.Errorf("service %q: no port publishes receiver.addr %s", name, addr))
	}
	cert, _ := commandFlag(s.Command.Values, "receiver.cert_file")
	key, _ := commandFlag(s.Command.Values, "receiver.key_file")
	if cert == "" || key == "" {
		errs = append(errs, fmt.Errorf("service %q: no receiver.cert_file and key_file: tokens would cross the network in clear", name))
	} else if tlsJob == "" {
		errs = append(errs, fmt.Errorf("service %q: no job writes its certificate (starter tls-selfsigned)", name))
	} else {
		j := p.file.Services[tlsJob]
		made, _ := commandFlag(j.Command.Values, "cert-file")
		madeKey, _ := commandFlag(j.Command.Values, "key-file")
		if made != cert || madeKey != key {
			errs = append(errs, fmt.Errorf("service %q: reads %s and %s, but %q writes %s and %s", name, cert, key, tlsJob, made, madeKey))
		}
		if v := mountedVolume(j, made); v == "" || v != mountedVolume(s, cert) {
			errs = append(errs, fmt.Errorf("service %q: does not mount the volume %q writes its certificate into", name, tlsJob))
		}
		if s.DependsOn[tlsJob] != "service_completed_successfully" {
			errs = append(errs, fmt.Errorf("service %q: does not wait for %q to complete, so its certificate may not exist yet", name, tlsJob))
		}
	}
	if s.Healthcheck == nil || !strings.Contains(s.Healthcheck.commandLine(), "https://127.0.0.1:"+port+"/healthz") {
		errs = append(errs, fmt.Errorf("service %q: healthcheck does not fetch https://127.0.0.1:%s/healthz", name, port))
	}
	if via := waitsForTemporal(p, name, map[string]bool{}); via != "" {
		errs = append(errs, fmt.Errorf("service %q: waits for %s: it must take posts while Temporal is down (its outbox starts the workflows later)", name, via))
	}
	return errors.Join(errs...)
}

// waitsForTemporal returns the chain of depends_on by which name waits for
// the Temporal server or its admin tools ("a" or "a via b"), or "".
func waitsForTemporal(p *project, name string, seen map[string]bool) string {
	seen[name] = true
	for _, dep := range sortedKeys(p.file.Services[name].DependsOn) {
		d := p.file.Services[dep]
		if d == nil || seen[dep] {
			continue
		}
		if isTemporalServer(d) || strings.HasPrefix(d.Image, "temporalio/admin-tools:") {
			return fmt.Sprintf("%q", dep)
		}
		if via := waitsForTemporal(p, dep, seen); via != "" {
			return fmt.Sprintf("%s via %q", via, dep)
		}
	}
	return ""
}

func TestBatchStoreChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *project)
		check  func(*project) error
		want   string
	}{
		{
			name: "worker on the local file store",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_BATCHES_URL"] = "file:///data/batches"
			},
			check: checkS3,
			want:  `service "worker": SANWATCH_BATCHES_URL "file:///data/batches" is not an s3:// URL: workers on other hosts could not read the batches`,
		},
		{
			name: "another bucket",
			mutate: func(p *project) {
				p.file.Services["receiver"].Environment["SANWATCH_BATCHES_URL"] = "s3://batches?endpoint=http://s3:8333&region=us-east-1&use_path_style=true"
			},
			check: checkS3,
			want:  `service "receiver": SANWATCH_BATCHES_URL names bucket "batches", but "s3-bucket" creates "sanwatch"`,
		},
		{
			name: "endpoint on the wrong port",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_BATCHES_URL"] = "s3://sanwatch?endpoint=http://s3:9000&region=us-east-1&use_path_style=true"
			},
			check: checkS3,
			want:  `service "worker": SANWATCH_BATCHES_URL endpoint "http://s3:9000" is not http://s3:8333`,
		},
		{
			name: "virtual-host style",
			mutate: func(p *project) {
				p.file.Services["worker"].Environment["SANWATCH_BATCHES_URL"] = "s3://sanwatch?endpoint=http://s3:8333&region=us-east-1"
			},
			check: checkS3,
			want:  `service "worker": SANWATCH_BATCHES_URL lacks use_path_style=true: the bucket would be looked up as a host name`,
		},
		{
			name:   "secret in the compose file",
			mutate: func(p *project) { p.file.Services["worker"].Environment["AWS_SECRET_ACCESS_KEY"] = "hunter2" },
			check:  checkS3,
			want:   `service "worker": AWS_SECRET_ACCESS_KEY is set in the compose file: keep the key in the credentials volume`,
		},
		{
			name: "credentials file not mounted",
			mutate: func(p *project) {
				w := p.file.Services["worker"]
				w.Volumes = slices.DeleteFunc(slices.Clone(w.Volumes), func(m mount) bool { return m.Source == "s3-credentials" })
			},
			check: checkS3,
			want:  `service "worker": AWS_SHARED_CREDENTIALS_FILE "/var/lib/sanwatch/s3/credentials" is not on volume "s3-credentials", where the S3 key is`,
		},
		{
			name:   "worker does not wait for the bucket",
			mutate: func(p *project) { delete(p.file.Services["worker"].DependsOn, "s3-bucket") },
			check:  checkS3,
			want:   `service "worker": does not wait for "s3-bucket" to complete, so the bucket may not exist yet`,
		},
		{
			name: "S3 data in the container",
			mutate: func(p *project) {
				p.file.Services["s3"].Volumes = slices.DeleteFunc(slices.Clone(p.file.Services["s3"].Volumes), func(m mount) bool { return m.Target == "/data" })
			},
			check: checkS3,
			want:  `service "s3": /data is not on a named volume: batches would go with the container`,
		},
		{
			name: "S3 without identities",
			mutate: func(p *project) {
				s := p.file.Services["s3"]
				s.Command.Values = slices.DeleteFunc(slices.Clone(s.Command.Values), func(a string) bool { return strings.HasPrefix(a, "-s3.config=") })
			},
			check: checkS3,
			want:  `service "s3": -s3.config "" is not on a named volume: the S3 API would accept anyone`,
		},
		{
			name: "S3 health check on the master port",
			mutate: func(p *project) {
				p.file.Services["s3"].Healthcheck.Test.Values = []string{"CMD", "curl", "-fsS", "http://127.0.0.1:9333/healthz"}
			},
			check: checkS3,
			want:  `service "s3": healthcheck does not fetch /healthz on the S3 port 8333`,
		},
		{
			name:   "bucket job does not wait for the server",
			mutate: func(p *project) { p.file.Services["s3-bucket"].DependsOn["s3"] = "service_started" },
			check:  checkS3,
			want:   `service "s3-bucket": does not wait for "s3" to be healthy`,
		},
		{
			name:   "S3 server does not wait for its identities",
			mutate: func(p *project) { p.file.Services["s3"].DependsOn = dependencies{} },
			check:  checkS3,
			want:   `service "s3": waits for no job that writes volume "s3-credentials", so its identities may not exist yet`,
		},
		{
			name: "receiver in plain HTTP",
			mutate: func(p *project) {
				r := p.file.Services["receiver"]
				r.Command.Values = []string{"--set", "receiver.addr=0.0.0.0:8088", "receive", "--allow-plain-http"}
			},
			check: checkReceiver,
			want:  `service "receiver": no receiver.cert_file and key_file: tokens would cross the network in clear`,
		},
		{
			name: "receiver on its container's loopback",
			mutate: func(p *project) {
				r := p.file.Services["receiver"]
				r.Command.Values = slices.Clone(r.Command.Values)
				r.Command.Values[1] = "receiver.addr=127.0.0.1:8088"
			},
			check: checkReceiver,
			want:  `service "receiver": receiver.addr "127.0.0.1:8088": the published port reaches only 0.0.0.0 inside the container`,
		},
		{
			name:   "receiver port not published",
			mutate: func(p *project) { p.file.Services["receiver"].Ports = nil },
			check:  checkReceiver,
			want:   `service "receiver": no port publishes receiver.addr 0.0.0.0:8088`,
		},
		{
			name:   "receiver does not wait for its certificate",
			mutate: func(p *project) { delete(p.file.Services["receiver"].DependsOn, "receiver-tls") },
			check:  checkReceiver,
			want:   `service "receiver": does not wait for "receiver-tls" to complete, so its certificate may not exist yet`,
		},
		{
			name: "certificate written elsewhere",
			mutate: func(p *project) {
				j := p.file.Services["receiver-tls"]
				j.Command.Values = slices.Clone(j.Command.Values)
				j.Command.Values[2] = "/data/cert.pem"
			},
			check: checkReceiver,
			want: `service "receiver": reads /var/lib/sanwatch/tls/cert.pem and /var/lib/sanwatch/tls/key.pem, but "receiver-tls" writes /data/cert.pem and /var/lib/sanwatch/tls/key.pem` + "\n" +
				`service "receiver": does not mount the volume "receiver-tls" writes its certificate into`,
		},
		{
			name: "receiver health check in plain HTTP",
			mutate: func(p *project) {
				p.file.Services["receiver"].Healthcheck.Test.Values = []string{"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8088/healthz"}
			},
			check: checkReceiver,
			want:  `service "receiver": healthcheck does not fetch https://127.0.0.1:8088/healthz`,
		},
		{
			name: "receiver waits for Temporal",
			mutate: func(p *project) {
				p.file.Services["receiver"].DependsOn["temporal-admin-tools"] = "service_healthy"
			},
			check: checkReceiver,
			want:  `service "receiver": waits for "temporal-admin-tools": it must take posts while Temporal is down (its outbox starts the workflows later)`,
		},
		{
			name: "receiver waits for Temporal through its certificate job",
			mutate: func(p *project) {
				p.file.Services["receiver-tls"].DependsOn["temporal-admin-tools"] = "service_healthy"
			},
			check: checkReceiver,
			want:  `service "receiver": waits for "temporal-admin-tools" via "receiver-tls": it must take posts while Temporal is down (its outbox starts the workflows later)`,
		},
		{
			name:   "receiver on every host interface by default",
			mutate: func(p *project) { p.file.Services["receiver"].Ports = []string{"8088:8088"} },
			check:  checkPublishedPorts,
			want:   `service "receiver": port "8088:8088" is published on every interface of the host: bind it to 127.0.0.1`,
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
