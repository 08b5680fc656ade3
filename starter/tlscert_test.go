package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTLSSelfSigned: the certificate is for the hosts asked, a TLS client
// that trusts it (as curl --cacert does) verifies a server using it, and a
// second run keeps it.
func TestTLSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	run := func(args ...string) string {
		var out bytes.Buffer
		root := (&cli{stdout: &out, stderr: io.Discard}).root()
		root.SetArgs(append([]string{"tls-selfsigned", "--cert-file", cert, "--key-file", key}, args...))
		require.NoError(t, root.Execute())
		return out.String()
	}
	require.Contains(t, run("--hosts", "receiver,localhost,127.0.0.1"), "tls-selfsigned: wrote "+cert)
	fi, err := os.Stat(key)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	before, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.Contains(t, run(), "exists, kept")
	after, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.Equal(t, before, after)

	pair, err := tls.LoadX509KeyPair(cert, key)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(before))
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name, server string
		ok           bool
	}{
		{"service name", "receiver", true},
		{"loopback address", "127.0.0.1", true},
		{"another host", "elsewhere.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: tc.server})
			if tc.ok {
				require.NoError(t, err)
				c.Close()
				return
			}
			require.ErrorContains(t, err, "certificate is valid for")
		})
	}
}
