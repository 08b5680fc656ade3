// Package s3test runs a real S3-compatible server, SeaweedFS (`weed
// mini`: master, volume server, filer and S3 gateway in one process), on
// loopback for tests: free ports, a temporary data
// directory, and credentials made at Start that reach the server through a
// config file and the client through AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, never through a URL or argv. The server can be
// stopped and started again on the same ports and data, so that clients
// are tested against a store that goes away and comes back.
//
// The weed binary is built by `make s3-server` (scripts/build-seaweedfs.sh);
// SANWATCH_S3_SERVER names another one. Without it, Start fails the test
// and says how to build it: tests never skip for a missing dependency.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// EnvServer names the weed binary to run instead of <repo>/bin/weed.
const EnvServer = "SANWATCH_S3_SERVER"

// Region is the region clients name (SeaweedFS accepts any).
const Region = "us-east-1"

// Server is one SeaweedFS server with the S3 gateway on loopback.
type Server struct {
	t         testing.TB
	bin       string
	dir       string
	ports     []int  // master, master grpc, volume, volume grpc, filer, filer grpc, s3, s3 grpc
	config    string // the -s3.config file
	AccessKey string
	SecretKey string

	mu    sync.Mutex // guards cmd and done
	cmd   *exec.Cmd
	done  chan struct{}
	logMu sync.Mutex
	log   bytes.Buffer
	// StartTime is how long the last start took until the S3 API answered
	// (with, at Start, the first write).
	StartTime time.Duration
}

// Binary returns the weed binary tests run, or an error that says how to
// build it.
func Binary() (string, error) {
	if p := os.Getenv(EnvServer); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3 test server %s=%s: %w", EnvServer, p, err)
		}
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	p := filepath.Join(root, "bin", "weed")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("s3 test server: SeaweedFS is not built at %s: run `make s3-server` (about 5 minutes the first time; `make test` does it too) or set %s", p, EnvServer)
	}
	return p, nil
}

// Options configure StartWith.
type Options struct {
	// ConfigFile is a SeaweedFS identities file (-s3.config) to use, with
	// AccessKey and SecretKey one of its keys; empty makes one with a
	// random key.
	ConfigFile           string
	AccessKey, SecretKey string
	// Bucket is created through the S3 API once the server answers, and
	// written to once (the first write to a fresh server waits for its
	// volume allocation); empty creates none (weed mini then creates a
	// bucket at its first write).
	Bucket string
}

// Start starts a server with a random key, creates bucket, and stops the
// server at the test's cleanup.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	return StartWith(t, Options{Bucket: bucket})
}

// StartWith starts a server as o says and stops it at the test's cleanup.
// It fails the test if the server does not answer within a minute.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), AccessKey: o.AccessKey, SecretKey: o.SecretKey, config: o.ConfigFile}
	for range 10 {
		s.ports = append(s.ports, freePort(t))
	}
	if s.config == "" {
		s.AccessKey, s.SecretKey = "sanwatch-"+randHex(4), randHex(20)
		s.config = filepath.Join(s.dir, "s3.json")
		cfg := map[string]any{"identities": []any{map[string]any{
			"name":        "sanwatch",
			"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
			"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
		}}}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.config, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	s.Restart()
	if o.Bucket == "" {
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	for {
		_, err := s.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.Bucket)})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("s3 test server: create bucket %s: %v\n%s", o.Bucket, err, s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The first write to a fresh server waits for its volume allocation
	// (about a second): done here, so that tests time what they test.
	key := aws.String(".sanwatch-warm-up")
	if _, err := s.client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(o.Bucket), Key: key, Body: strings.NewReader("ok")}); err != nil {
		t.Fatalf("s3 test server: first write: %v\n%s", err, s.Log())
	}
	if _, err := s.client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.Bucket), Key: key}); err != nil {
		t.Fatalf("s3 test server: delete: %v\n%s", err, s.Log())
	}
	s.StartTime += time.Since(begin)
	return s
}

// Master is the master's address as `weed shell -master` takes it
// (host:port.grpcPort).
func (s *Server) Master() string {
	return "127.0.0.1:" + strconv.Itoa(s.ports[0]) + "." + strconv.Itoa(s.ports[1])
}

// Bin is the weed binary the server runs.
func (s *Server) Bin() string { return s.bin }

// Endpoint is the S3 API's base URL.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.ports[6]) }

// URL is the batches.url of bucket on this server (no credentials in it).
func (s *Server) URL(bucket string) string {
	q := url.Values{"endpoint": {s.Endpoint()}, "region": {Region}, "use_path_style": {"true"}}
	return "s3://" + bucket + "?" + q.Encode()
}

// Env is the environment a client process needs: the credentials, and no
// look-ups of shared files or instance metadata.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
}

// SetEnv sets Env in this process for the rest of the test (not for
// parallel tests).
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func (s *Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region: Region, BaseEndpoint: aws.String(s.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Restart starts the server process (again, after Stop) on the same ports
// and data, and waits until the S3 API answers.
func (s *Server) Restart() {
	s.t.Helper()
	p := s.ports
	// weed mini: master, volume server, filer and S3 gateway in one
	// process, every port given (free loopback ports), the admin UI and
	// WebDAV off. It takes its first write in about a second, where
	// `weed server` waits eight for its filer lock ring.
	args := []string{"-logdir=" + s.dir, "mini", "-dir=" + filepath.Join(s.dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-admin.port=" + strconv.Itoa(p[8]), "-admin.port.grpc=" + strconv.Itoa(p[9]), "-admin.port.legacy=0", "-admin.ui=false",
		"-webdav=false", "-master.telemetry=false", "-s3.config=" + s.config,
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(s.dir, "s3.sock")}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"HOME=" + s.dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logWriter{s}, logWriter{s}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("s3 test server: already running")
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("s3 test server: start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	if err := s.waitReady(done); err != nil {
		s.t.Fatalf("s3 test server: %v\n%s", err, s.Log())
	}
	s.StartTime = time.Since(begin)
}

// waitReady waits until the S3 API answers /healthz, the process exits, or
// a minute passes.
func (s *Server) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var err error
	for {
		var resp *http.Response
		if resp, err = hc.Get(s.Endpoint() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/healthz: %s", resp.Status)
		}
		select {
		case <-done:
			return errors.New("weed exited before the S3 API answered")
		case <-ctx.Done():
			return fmt.Errorf("S3 API on %s not ready after a minute: %v", s.Endpoint(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL to its process group: a graceful stop
// takes 15 s or more, and a killed store is what clients must survive) and
// keeps its data for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Log returns what the server printed.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// logWriter collects the server's output.
type logWriter struct{ s *Server }

func (w logWriter) Write(b []byte) (int, error) {
	w.s.logMu.Lock()
	defer w.s.logMu.Unlock()
	return w.s.log.Write(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
