package receiver

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a certificate for cn, valid from notBefore to notAfter, for
// a server (with 127.0.0.1 as its address) or a client.
func (ca *testCA) issue(t *testing.T, cn string, server bool, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writePEM writes a certificate and its key to dir and returns their paths.
func writePEM(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// tlsRig starts an HTTPS receiver whose client CA is ca (require: client
// certificates are required) and returns it with the server's CA pool.
func tlsRig(t *testing.T, ca *testCA, require_ bool, mod ...func(*Options)) (*rig, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, "receiver", true, now.Add(-time.Hour), now.Add(time.Hour)))
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))
	opts := Options{Addr: "0.0.0.0:0", CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, RequireClientCert: require_}
	for _, m := range mod {
		m(&opts)
	}
	r := newRig(t, opts, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return r, roots
}

// withClient makes r's client present cert (none when nil) and trust roots.
func (r *rig) withClient(roots *x509.CertPool, cert *tls.Certificate, maxVersion uint16) *rig {
	tc := &tls.Config{RootCAs: roots, MaxVersion: maxVersion}
	if maxVersion != 0 {
		tc.MinVersion = tls.VersionTLS10
	}
	if cert != nil {
		// Sent whatever CAs the server names, as a misconfigured box would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := *r
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	return &c
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "boxes")
	r, roots := tlsRig(t, ca, false)
	now := time.Now()
	b1 := ca.issue(t, "b1", false, now.Add(-time.Hour), now.Add(time.Hour))
	expired := ca.issue(t, "b1", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	stranger := newCA(t, "elsewhere").issue(t, "b1", false, now.Add(-time.Hour), now.Add(time.Hour))
	noCN := ca.issue(t, "", false, now.Add(-time.Hour), now.Add(time.Hour))
	body := csvBatch("b1", 0, 5)

	// A valid certificate is the box named by its common name.
	a := r.withClient(roots, &b1, 0).post("", bytes.NewReader(body))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
	a = r.withClient(roots, &b1, 0).post("", bytes.NewReader(csvBatch("b2", 0, 5)))
	require.Equal(t, http.StatusForbidden, a.status, a.raw)
	require.Equal(t, `wrong box: the body has samples of box "b2"; this credential is for box "b1"`, a.err.Error)
	code, st, _ := func() (int, BatchStatus, errorBody) {
		c := r.withClient(roots, &b1, 0)
		return c.get("", sha(body))
	}()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "b1", st.Box)

	// A certificate and a token for different boxes are refused.
	a = r.withClient(roots, &b1, 0).post(r.token("b2"), bytes.NewReader(csvBatch("b1", 1, 5)))
	require.Equal(t, http.StatusForbidden, a.status, a.raw)
	require.Equal(t, `wrong box: the client certificate is for box "b1" and the token for box "b2"`, a.err.Error)
	a = r.withClient(roots, &noCN, 0).post("", bytes.NewReader(csvBatch("b1", 1, 5)))
	require.Equal(t, http.StatusUnauthorized, a.status, a.raw)

	// Without a certificate a token still works (not required here).
	a = r.withClient(roots, nil, 0).post(r.token("b1"), bytes.NewReader(csvBatch("b1", 2, 5)))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)

	// An expired certificate, or one of another CA, fails the handshake.
	for name, cert := range map[string]*tls.Certificate{"expired": &expired, "unknown CA": &stranger} {
		req, err := http.NewRequest(http.MethodPost, r.url+"/v1/telemetry", bytes.NewReader(body))
		require.NoError(t, err)
		_, err = r.withClient(roots, cert, 0).client.Do(req)
		require.Error(t, err, name)
		require.Regexp(t, "tls|certificate", err.Error(), name)
	}
	// HTTP/1.1 only, even to a client that offers HTTP/2.
	h2 := r.withClient(roots, &b1, 0)
	h2.client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	req, err := http.NewRequest(http.MethodGet, r.url+"/healthz", nil)
	require.NoError(t, err)
	resp, err := h2.client.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, "HTTP/1.1", resp.Proto)
	// TLS 1.1 is refused.
	req, err = http.NewRequest(http.MethodGet, r.url+"/healthz", nil)
	require.NoError(t, err)
	_, err = r.withClient(roots, nil, tls.VersionTLS11).client.Do(req)
	require.ErrorContains(t, err, "protocol version")
	require.Contains(t, r.url, "https://")
}

func TestRequiredClientCertificate(t *testing.T) {
	ca := newCA(t, "boxes")
	r, roots := tlsRig(t, ca, true)
	now := time.Now()
	b1 := ca.issue(t, "b1", false, now.Add(-time.Hour), now.Add(time.Hour))
	req, err := http.NewRequest(http.MethodPost, r.url+"/v1/telemetry", bytes.NewReader(csvBatch("b1", 0, 5)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+r.token("b1"))
	_, err = r.withClient(roots, nil, 0).client.Do(req)
	require.Error(t, err, "a token alone is not enough")
	a := r.withClient(roots, &b1, 0).post("", bytes.NewReader(csvBatch("b1", 0, 5)))
	require.Equal(t, http.StatusAccepted, a.status, a.raw)
}

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		err  string
	}{
		{Options{Addr: "127.0.0.1:8088"}, ""},
		{Options{Addr: "[::1]:8088"}, ""},
		{Options{Addr: "localhost:8088"}, ""},
		{Options{Addr: "0.0.0.0:8088", AllowPlainHTTP: true}, ""},
		{Options{Addr: "0.0.0.0:8088", CertFile: "c", KeyFile: "k"}, ""},
		{Options{Addr: "0.0.0.0:8088"}, `receiver.addr "0.0.0.0:8088" is not a loopback address and no TLS is configured: tokens would cross the network in clear; set receiver.cert_file and receiver.key_file (or listen on 127.0.0.1 behind a proxy that terminates TLS)`},
		{Options{Addr: ":8088"}, `receiver.addr ":8088" is not a loopback address ...`},
	} {
		err := tc.opts.checkPlain()
		switch prefix, ok := strings.CutSuffix(tc.err, " ..."); {
		case tc.err == "":
			require.NoError(t, err, tc.opts.Addr)
		case ok:
			require.ErrorContains(t, err, prefix)
		default:
			require.EqualError(t, err, tc.err)
		}
	}
	// ListenAndServe refuses before listening.
	in, _, _, _ := newIntake(t, t.TempDir())
	err := NewServer(in, Options{Addr: "0.0.0.0:0"}).ListenAndServe(t.Context())
	require.ErrorContains(t, err, "is not a loopback address")
}

// TestSlowClientsAreCutOff trickles headers (slowloris) and then a body to
// the receiver: each connection is closed after its timeout, and other
// clients are served meanwhile.
func TestSlowClientsAreCutOff(t *testing.T) {
	r := newRig(t, Options{Addr: "127.0.0.1:0", ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second}, nil)
	tok := r.token("b1")
	addr := strings.TrimPrefix(r.url, "http://")

	trickle := func(t *testing.T, head string, drip []byte) time.Duration {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		start := time.Now()
		_, err = io.WriteString(conn, head)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
		}()
		for i := 0; ; i++ {
			select {
			case <-closed:
				return time.Since(start)
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write(drip[i%len(drip) : i%len(drip)+1]); err != nil {
				<-closed
				return time.Since(start)
			}
			require.Less(t, time.Since(start), 10*time.Second, "the server never cut the slow client off")
		}
	}
	t.Run("headers", func(t *testing.T) {
		took := trickle(t, "POST /v1/telemetry HTTP/1.1\r\nHost: x\r\n", []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaa\r\n"))
		require.Less(t, took, 3*time.Second)
		// Others are still served.
		a := r.post(tok, bytes.NewReader(csvBatch("b1", 0, 5)))
		require.Equal(t, http.StatusAccepted, a.status, a.raw)
	})
	t.Run("body", func(t *testing.T) {
		head := "POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 100000\r\n\r\n" +
			"time,box,component,metric,value\n"
		took := trickle(t, head, []byte(t0.Format(time.RFC3339)+",b1,pool/p0,pool.used_bytes,1\n"))
		require.Less(t, took, 5*time.Second)
	})
	require.Len(t, r.wf.started(), 1, "no slow body was accepted")
}

// TestSlowTLSClientsAreCutOff opens connections that stall in the TLS
// handshake, and after it in the headers: both are closed after the header
// timeout.
func TestSlowTLSClientsAreCutOff(t *testing.T) {
	ca := newCA(t, "boxes")
	r, roots := tlsRig(t, ca, false, func(o *Options) { o.ReadHeaderTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(r.url, "https://")
	closedWithin := func(t *testing.T, conn net.Conn) time.Duration {
		t.Helper()
		start := time.Now()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server never closed the stalled connection")
		}
		return time.Since(start)
	}
	t.Run("handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		require.Less(t, closedWithin(t, conn), 3*time.Second)
	})
	t.Run("headers", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /v1/telemetry HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		require.Less(t, closedWithin(t, conn), 3*time.Second)
	})
}
