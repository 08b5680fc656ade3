package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

const testMail = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <1@test>\r\n\r\nbody\r\n"

// send delivers testMail over plain SMTP (no STARTTLS) to b and c.
func send(addr string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail("a@example.com", nil); err != nil {
		return err
	}
	for _, to := range []string{"b@example.com", "c@example.com"} {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, strings.NewReader(testMail)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func smtpCode(t *testing.T, err error) int {
	t.Helper()
	var se *smtp.SMTPError
	require.ErrorAs(t, err, &se)
	return se.Code
}

func TestServerReceives(t *testing.T) {
	s := Start(t)
	require.Equal(t, "127.0.0.1", s.Host())
	require.NotZero(t, s.Port())
	require.NoError(t, send(s.Addr()))

	got := s.WaitMessages(1, 5*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, "a@example.com", got[0].From)
	require.Equal(t, []string{"b@example.com", "c@example.com"}, got[0].To)
	require.Equal(t, "hello", got[0].Header.Get("Subject"))
	require.Equal(t, "<1@test>", got[0].Header.Get("Message-ID"))
	require.Equal(t, testMail, string(got[0].Data))
	require.Equal(t, 1, s.Attempts())
	require.Equal(t, 1, s.Connections())
}

func TestServerFailNext(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		n        int
		wantCode int // 0: a connection error, not an SMTP reply
	}{
		{name: "451 twice", mode: Temp4xx, n: 2, wantCode: 451},
		{name: "550 once", mode: Perm5xx, n: 1, wantCode: 550},
		{name: "drop once", mode: Drop, n: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t)
			s.FailNext(tc.n, tc.mode)
			for range tc.n {
				err := send(s.Addr())
				require.Error(t, err)
				if tc.wantCode != 0 {
					require.Equal(t, tc.wantCode, smtpCode(t, err))
				} else {
					var se *smtp.SMTPError
					require.False(t, errors.As(err, &se), "want a connection error, got %v", err)
				}
			}
			require.Empty(t, s.Messages())
			require.NoError(t, send(s.Addr()), "faults are used up")
			require.Len(t, s.WaitMessages(1, 5*time.Second), 1)
			require.Equal(t, tc.n+1, s.Attempts())
		})
	}
}

func TestServerHang(t *testing.T) {
	s := Start(t)
	s.FailNext(1, Hang)
	c, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = c.Read(make([]byte, 16))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "no greeting: %v", err)

	require.NoError(t, send(s.Addr()), "the next connection is served")
	require.Equal(t, 2, s.Connections())
}

func TestServerRefuseAccept(t *testing.T) {
	s := Start(t)
	port := s.Port()
	s.Refuse()
	err := send(s.Addr())
	require.ErrorContains(t, err, "connection refused")
	s.Accept()
	require.Equal(t, port, s.Port())
	require.NoError(t, send(s.Addr()))
	require.Len(t, s.WaitMessages(1, 5*time.Second), 1)
}

func TestServerAuthAndTLS(t *testing.T) {
	s := Start(t, WithAuth("u", "p"))
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: s.CertPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 530, smtpCode(t, c.Mail("a@example.com", nil)), "mail before auth")
	require.Equal(t, 535, smtpCode(t, c.Auth(sasl.NewPlainClient("", "u", "wrong"))))
	require.NoError(t, c.Auth(sasl.NewLoginClient("u", "p")))
	require.NoError(t, c.Mail("a@example.com", nil))
}

func TestWaitMessagesTimesOut(t *testing.T) {
	s := Start(t)
	start := time.Now()
	got := s.WaitMessages(1, 100*time.Millisecond)
	require.Empty(t, got)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	require.Less(t, time.Since(start), 2*time.Second)
}

// xoauth2Client is the client side of XOAUTH2 with a raw initial response.
type xoauth2Client struct{ ir string }

func (c xoauth2Client) Start() (string, []byte, error) { return "XOAUTH2", []byte(c.ir), nil }
func (c xoauth2Client) Next([]byte) ([]byte, error)    { return []byte{}, nil }

func TestServerXOAUTH2(t *testing.T) {
	const user = "alerts@example.com"
	tests := []struct {
		name      string
		ir        string
		wantCode  int // 0: accepted
		wantToken string
	}{
		{name: "valid token", ir: "user=" + user + "\x01auth=Bearer good-token\x01\x01", wantToken: "good-token"},
		{name: "refused token", ir: "user=" + user + "\x01auth=Bearer stale-token\x01\x01", wantCode: 535, wantToken: "stale-token"},
		{name: "other user", ir: "user=someone@example.com\x01auth=Bearer good-token\x01\x01", wantCode: 535, wantToken: "good-token"},
		{name: "no trailing separators", ir: "user=" + user + "\x01auth=Bearer good-token", wantCode: 501},
		{name: "not bearer", ir: "user=" + user + "\x01auth=Basic good-token\x01\x01", wantCode: 501},
		{name: "extra field", ir: "user=" + user + "\x01host=x\x01auth=Bearer good-token\x01\x01", wantCode: 501},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, WithXOAUTH2(user, func(tok string) bool { return tok == "good-token" }))
			c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12})
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, 530, smtpCode(t, c.Mail("a@example.com", nil)), "mail before auth")
			err = c.Auth(xoauth2Client{ir: tc.ir})
			if tc.wantCode != 0 {
				require.Equal(t, tc.wantCode, smtpCode(t, err))
			} else {
				require.NoError(t, err)
				require.NoError(t, c.Mail("a@example.com", nil))
			}
			if tc.wantToken != "" {
				require.Equal(t, []string{tc.wantToken}, s.Tokens())
			} else {
				require.Empty(t, s.Tokens())
			}
		})
	}
}

// TestServerTLSVerified: the certificate verifies against the test CA alone
// (CertPool, CAFile) for 127.0.0.1, localhost and CertName, with STARTTLS
// and implicit TLS, and not against the system roots.
func TestServerTLSVerified(t *testing.T) {
	fromFile := func(s *Server) *x509.CertPool {
		data, err := os.ReadFile(s.CAFile())
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(data))
		return pool
	}
	tests := []struct {
		name       string
		implicit   bool
		pool       func(*Server) *x509.CertPool
		serverName string
		wantErr    string
	}{
		{name: "starttls, CA pool, ip", pool: (*Server).CertPool, serverName: "127.0.0.1"},
		{name: "starttls, CA file, cert name", pool: fromFile, serverName: CertName},
		{name: "implicit, CA file, localhost", implicit: true, pool: fromFile, serverName: "localhost"},
		{name: "implicit, system roots", implicit: true, pool: func(*Server) *x509.CertPool { return nil }, serverName: "127.0.0.1",
			wantErr: "certificate signed by unknown authority"},
		{name: "starttls, other name", pool: (*Server).CertPool, serverName: "mail.example.com",
			wantErr: "certificate is valid for localhost, " + CertName + ", not mail.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.implicit {
				opts = append(opts, WithImplicitTLS())
			}
			s := Start(t, opts...)
			cfg := &tls.Config{RootCAs: tc.pool(s), ServerName: tc.serverName, MinVersion: tls.VersionTLS12}
			var (
				c   *smtp.Client
				err error
			)
			if tc.implicit {
				c, err = smtp.DialTLS(s.Addr(), cfg)
			} else {
				c, err = smtp.DialStartTLS(s.Addr(), cfg)
			}
			if err == nil { // the handshake may wait for the first command
				defer c.Close()
				err = c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(testMail))
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Empty(t, s.Messages())
				return
			}
			require.NoError(t, err)
			got := s.WaitMessages(1, 5*time.Second)
			require.Len(t, got, 1)
			require.True(t, got[0].TLS, "received over TLS")
		})
	}
}
