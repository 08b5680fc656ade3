package email

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/internal/finding"
)

const testPassword = "s3cret-Pa55word"

func newSender(t *testing.T, srv *smtptest.Server, change func(*SMTPOptions)) *Sender {
	t.Helper()
	o := SMTPOptions{Host: srv.Host(), Port: srv.Port(), TLS: TLSNone, Timeout: 3 * time.Second, HelloName: "sanwatch.test"}
	if change != nil {
		change(&o)
	}
	s, err := NewSender(o)
	require.NoError(t, err)
	return s
}

func render(t *testing.T, m Message) Rendered {
	t.Helper()
	r, err := Render(m)
	require.NoError(t, err)
	return r
}

// part is one leaf of a parsed MIME tree.
type part struct {
	contentType string
	params      map[string]string
	header      map[string][]string
	body        []byte
}

// walk parses a MIME entity and returns the tree as "type" paths and leaves.
func walk(t *testing.T, contentType string, body io.Reader, path string, leaves map[string]part) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	require.NoError(t, err)
	if !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("walk called on non-multipart %s", mt)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart() // decodes quoted-printable
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		pt, pparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		key := fmt.Sprintf("%s/%d:%s", path, i, pt)
		if strings.HasPrefix(pt, "multipart/") {
			walk(t, p.Header.Get("Content-Type"), p, key, leaves)
			continue
		}
		data, err := io.ReadAll(p)
		require.NoError(t, err)
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			data, err = base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(data, []byte("\r\n"), nil)))
			require.NoError(t, err)
		}
		leaves[key] = part{contentType: pt, params: pparams, header: p.Header, body: data}
	}
}

func crlf(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }

func TestSendDelivers(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, srv, nil)
	s.now = func() time.Time { return time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC) }

	first := testMessage()
	m := testMessage()
	m.Kind = KindReminder
	m.Step = 2
	m.MessageID = MessageID(m.WorkflowID, 2, KindReminder, "example.com")
	m.InReplyTo = first.MessageID
	m.References = []string{first.MessageID}
	r := render(t, m)

	require.NoError(t, s.Send(context.Background(), m, r))
	got := srv.WaitMessages(1, 5*time.Second)
	require.Len(t, got, 1)
	msg := got[0]
	require.Equal(t, "sanwatch@example.com", msg.From)
	require.Equal(t, []string{"storage@example.com", "ops@example.com"}, msg.To)

	h := msg.Header
	require.Equal(t, "Reminder: [sanwatch][CRITICAL] box-0042 pool/ssd_r6: full in 5 days", h.Get("Subject"))
	require.Equal(t, m.MessageID, h.Get("Message-ID"))
	require.Equal(t, first.MessageID, h.Get("In-Reply-To"))
	require.Equal(t, first.MessageID, h.Get("References"))
	require.Equal(t, "box-0042/capacity_forecast/pool/ssd_r6", h.Get("X-Sanwatch-Fingerprint"))
	require.Equal(t, "<sanwatch@example.com>", h.Get("From"))
	require.Equal(t, `"Ops Team" <ops@example.com>`, h.Get("Cc"))
	date, err := h.Date()
	require.NoError(t, err)
	require.True(t, date.Equal(time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)))

	parsed, err := mail.ReadMessage(bytes.NewReader(msg.Data))
	require.NoError(t, err)
	leaves := map[string]part{}
	walk(t, parsed.Header.Get("Content-Type"), parsed.Body, "multipart/mixed", leaves)
	require.Contains(t, parsed.Header.Get("Content-Type"), "multipart/mixed")

	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{
		"multipart/mixed/0:multipart/related/0:multipart/alternative/0:text/plain",
		"multipart/mixed/0:multipart/related/0:multipart/alternative/1:text/html",
		"multipart/mixed/0:multipart/related/1:image/png",
		"multipart/mixed/1:text/csv",
	}, keys)

	text := leaves["multipart/mixed/0:multipart/related/0:multipart/alternative/0:text/plain"]
	require.Equal(t, r.Text, crlf(text.body))
	html := leaves["multipart/mixed/0:multipart/related/0:multipart/alternative/1:text/html"]
	require.Equal(t, r.HTML, crlf(html.body))
	img := leaves["multipart/mixed/0:multipart/related/1:image/png"]
	require.Equal(t, r.PNG, img.body)
	require.Equal(t, []string{"<evidence.png>"}, img.header["Content-Id"])
	require.True(t, strings.HasPrefix(img.header["Content-Disposition"][0], "inline"))
	csvPart := leaves["multipart/mixed/1:text/csv"]
	require.Equal(t, r.CSV, csvPart.body)
	require.Equal(t, `attachment; filename="evidence.csv"`, csvPart.header["Content-Disposition"][0])
}

func TestSendRetryReusesMessageID(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, srv, nil)
	m := testMessage()
	r := render(t, m)

	srv.FailNext(1, smtptest.Temp4xx)
	err := s.Send(context.Background(), m, r)
	require.Error(t, err)
	require.False(t, IsPermanent(err))
	require.NoError(t, s.Send(context.Background(), m, r))

	got := srv.WaitMessages(1, 5*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, m.MessageID, got[0].Header.Get("Message-ID"))
	require.Equal(t, 2, srv.Attempts())
}

func TestSendFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*smtptest.Server)
		timeout   time.Duration
		wantTemp  bool
		wantCode  int
		wantInErr string
		maxTime   time.Duration
	}{
		{name: "451 is temporary", setup: func(s *smtptest.Server) { s.FailNext(1, smtptest.Temp4xx) },
			wantTemp: true, wantCode: 451, wantInErr: "send email: temporary failure (smtp 451): "},
		{name: "550 is permanent", setup: func(s *smtptest.Server) { s.FailNext(1, smtptest.Perm5xx) },
			wantTemp: false, wantCode: 550, wantInErr: "send email: permanent failure (smtp 550): "},
		{name: "dropped connection is temporary", setup: func(s *smtptest.Server) { s.FailNext(1, smtptest.Drop) },
			wantTemp: true, wantInErr: "send email: temporary failure: "},
		{name: "hang is temporary within the timeout", setup: func(s *smtptest.Server) { s.FailNext(1, smtptest.Hang) },
			timeout: 300 * time.Millisecond, wantTemp: true, wantInErr: "i/o timeout", maxTime: 2 * time.Second},
		{name: "refused is temporary", setup: func(s *smtptest.Server) { s.Refuse() },
			wantTemp: true, wantInErr: "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t)
			s := newSender(t, srv, func(o *SMTPOptions) {
				if tc.timeout > 0 {
					o.Timeout = tc.timeout
				}
			})
			m := testMessage()
			r := render(t, m)
			tc.setup(srv)

			start := time.Now()
			err := s.Send(context.Background(), m, r)
			elapsed := time.Since(start)
			var se *SendError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.wantTemp, se.Temporary, "error: %v", err)
			require.Equal(t, !tc.wantTemp, IsPermanent(err))
			require.Equal(t, tc.wantCode, se.Code)
			require.Contains(t, err.Error(), tc.wantInErr)
			if tc.maxTime > 0 {
				require.GreaterOrEqual(t, elapsed, tc.timeout)
				require.Less(t, elapsed, tc.maxTime)
			}
			require.Empty(t, srv.Messages())

			// The fault is used up (or the listener back): the next try is delivered.
			srv.Accept()
			require.NoError(t, s.Send(context.Background(), m, r))
			require.Len(t, srv.WaitMessages(1, 5*time.Second), 1)
		})
	}
}

func TestSendCancelledContext(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, srv, func(o *SMTPOptions) { o.Timeout = 20 * time.Second })
	m := testMessage()
	r := render(t, m)
	srv.FailNext(1, smtptest.Hang)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, m, r)
	require.Less(t, time.Since(start), 5*time.Second, "cancel closes the hanging connection")
	require.Error(t, err)
	require.False(t, IsPermanent(err))
}

func TestSendRejectsInvalidMessage(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Message)
		wantErr string
	}{
		{name: "crlf in to", change: func(m *Message) { m.To = []string{"a@example.com\r\nBcc: evil@example.com"} },
			wantErr: `send email: permanent failure: build message: validate message: to: address "a@example.com\r\nBcc: evil@example.com" contains a control character`},
		{name: "lf in cc", change: func(m *Message) { m.Cc = []string{"x@example.com\nSubject: spam"} },
			wantErr: `send email: permanent failure: build message: validate message: cc: address "x@example.com\nSubject: spam" contains a control character`},
		{name: "crlf in from", change: func(m *Message) { m.From = "s@example.com\r\nX-Evil: 1" },
			wantErr: `send email: permanent failure: build message: validate message: from: address "s@example.com\r\nX-Evil: 1" contains a control character`},
		{name: "injection in references", change: func(m *Message) { m.References = []string{"<a@b>\r\nBcc: e@x"} },
			wantErr: `send email: permanent failure: build message: validate message: references: "<a@b>\r\nBcc: e@x" is not of the form <left@right>`},
		{name: "no message id", change: func(m *Message) { m.MessageID = "" },
			wantErr: "send email: permanent failure: build message: no message id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t)
			s := newSender(t, srv, nil)
			good := testMessage()
			r := render(t, good)
			m := testMessage()
			tc.change(&m)

			err := s.Send(context.Background(), m, r)
			require.EqualError(t, err, tc.wantErr)
			require.True(t, IsPermanent(err))
			require.Zero(t, srv.Connections())
			require.Zero(t, srv.Attempts())
		})
	}
}

func TestSendHugeEvidenceStaysSmall(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, srv, nil)
	m := testMessage()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	series := make([]finding.Point, 350_000) // more than 10 MB as CSV
	for i := range series {
		series[i] = finding.Point{Time: start.Add(time.Duration(i) * time.Second), Value: 1234567.891 + float64(i)/7}
	}
	raw, err := EvidenceCSV(series)
	require.NoError(t, err)
	require.Greater(t, len(raw), 10<<20, "the window really is 10 MB")
	m.Finding.Evidence.Series = series
	m.Finding.Problem = strings.Repeat("long explanation ", 50_000)
	m.Finding.Remediation = []string{strings.Repeat("step ", 100_000)}

	require.NoError(t, s.Send(context.Background(), m, render(t, m)))
	got := srv.WaitMessages(1, 5*time.Second)
	require.Len(t, got, 1)
	require.Less(t, len(got[0].Data), 200_000)
}

func TestSendAuth(t *testing.T) {
	tests := []struct {
		name      string
		server    []smtptest.Option
		caFile    bool // verify the relay with the server's test CA (smtp.ca_file)
		change    func(*SMTPOptions)
		wantErr   bool
		wantCode  int
		wantInErr string
	}{
		{name: "plain connection with auth when allowed", server: []smtptest.Option{smtptest.WithAuth("sanwatch", testPassword)},
			change: func(o *SMTPOptions) { o.Username, o.Password, o.AllowInsecureAuth = "sanwatch", testPassword, true }},
		{name: "starttls with auth", server: []smtptest.Option{smtptest.WithAuth("sanwatch", testPassword)}, caFile: true,
			change: func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSStartTLS, "sanwatch", testPassword }},
		{name: "implicit tls with auth", server: []smtptest.Option{smtptest.WithAuth("sanwatch", testPassword), smtptest.WithImplicitTLS()}, caFile: true,
			change: func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSImplicit, "sanwatch", testPassword }},
		{name: "wrong password is permanent and not echoed", server: []smtptest.Option{smtptest.WithAuth("sanwatch", "other")}, caFile: true,
			change:  func(o *SMTPOptions) { o.TLS, o.Username, o.Password = TLSStartTLS, "sanwatch", testPassword },
			wantErr: true, wantCode: 535, wantInErr: "SMTP AUTH failed"},
		{name: "no credentials when required", server: []smtptest.Option{smtptest.WithAuth("sanwatch", testPassword)},
			wantErr: true, wantCode: 530, wantInErr: "530"},
		{name: "untrusted certificate is permanent", server: []smtptest.Option{smtptest.WithImplicitTLS()},
			change: func(o *SMTPOptions) {
				o.TLS, o.Username, o.Password = TLSImplicit, "sanwatch", testPassword
			},
			wantErr: true, wantInErr: "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.server...)
			s := newSender(t, srv, func(o *SMTPOptions) {
				if tc.caFile {
					o.CAFile = srv.CAFile()
				}
				if tc.change != nil {
					tc.change(o)
				}
			})
			m := testMessage()
			err := s.Send(context.Background(), m, render(t, m))
			if !tc.wantErr {
				require.NoError(t, err)
				got := srv.WaitMessages(1, 5*time.Second)
				require.Len(t, got, 1)
				require.Equal(t, "sanwatch", got[0].User)
				require.Equal(t, tc.caFile, got[0].TLS)
				return
			}
			require.Error(t, err)
			require.True(t, IsPermanent(err), "error: %v", err)
			var se *SendError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.wantCode, se.Code)
			require.Contains(t, err.Error(), tc.wantInErr)
			require.NotContains(t, err.Error(), testPassword)
			require.NotContains(t, fmt.Sprintf("%+v %#v", err, err), testPassword)
			require.Empty(t, srv.Messages())
		})
	}
}

// TestSendTLS: the relay's certificate is verified, never skipped: against
// smtp.ca_file (a CA made at test time) with STARTTLS and implicit TLS, for
// the host or smtp.server_name. Without the CA, or with a name the
// certificate does not hold, the send fails permanently and says why.
func TestSendTLS(t *testing.T) {
	tests := []struct {
		name       string
		implicit   bool
		caFile     bool
		serverName string
		wantErr    string // in the error; empty: delivered
	}{
		{name: "starttls with ca_file", caFile: true},
		{name: "implicit tls with ca_file", implicit: true, caFile: true},
		{name: "starttls with ca_file and server_name", caFile: true, serverName: smtptest.CertName},
		{name: "implicit tls with ca_file and server_name", implicit: true, caFile: true, serverName: "localhost"},
		{name: "starttls without ca_file", wantErr: "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "implicit tls without ca_file", implicit: true,
			wantErr: "tls handshake: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "starttls with a wrong server_name", caFile: true, serverName: "mail.example.com",
			wantErr: "x509: certificate is valid for localhost, " + smtptest.CertName + ", not mail.example.com"},
		{name: "implicit tls with a wrong server_name", implicit: true, caFile: true, serverName: "mail.example.com",
			wantErr: "x509: certificate is valid for localhost, " + smtptest.CertName + ", not mail.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []smtptest.Option
			mode := TLSStartTLS
			if tc.implicit {
				opts, mode = append(opts, smtptest.WithImplicitTLS()), TLSImplicit
			}
			srv := smtptest.Start(t, opts...)
			s := newSender(t, srv, func(o *SMTPOptions) {
				o.TLS, o.ServerName = mode, tc.serverName
				if tc.caFile {
					o.CAFile = srv.CAFile()
				}
			})
			m := testMessage()
			err := s.Send(context.Background(), m, render(t, m))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.True(t, IsPermanent(err), "a certificate that does not verify is permanent: %v", err)
				require.Empty(t, srv.Messages())
				return
			}
			require.NoError(t, err)
			got := srv.WaitMessages(1, 5*time.Second)
			require.Len(t, got, 1)
			require.True(t, got[0].TLS, "delivered over TLS")
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		password string
		want     string
	}{
		{name: "password removed", err: errors.New("auth as bob:hunter2 failed"), password: "hunter2", want: "auth as bob:[redacted] failed"},
		{name: "no password set", err: errors.New("auth failed"), password: "", want: "auth failed"},
		{name: "password absent", err: errors.New("auth failed"), password: "hunter2", want: "auth failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := redact(tc.err, tc.password)
			require.EqualError(t, got, tc.want)
			if tc.password != "" {
				require.NotContains(t, fmt.Sprintf("%+v", errors.Unwrap(got)), tc.password)
			}
		})
	}
}

func TestNewSender(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	tests := []struct {
		name     string
		opts     SMTPOptions
		wantErr  string
		wantPort int
		wantTLS  TLSMode
	}{
		{name: "defaults", opts: SMTPOptions{Host: "mail.example.com"}, wantPort: 587, wantTLS: TLSStartTLS},
		{name: "none defaults to 25", opts: SMTPOptions{Host: "mail.example.com", TLS: TLSNone}, wantPort: 25, wantTLS: TLSNone},
		{name: "tls defaults to 465", opts: SMTPOptions{Host: "mail.example.com", TLS: TLSImplicit}, wantPort: 465, wantTLS: TLSImplicit},
		{name: "explicit port", opts: SMTPOptions{Host: "localhost", Port: 1025, TLS: TLSNone}, wantPort: 1025, wantTLS: TLSNone},
		{name: "no host", opts: SMTPOptions{}, wantErr: "new sender: smtp host is empty"},
		{name: "bad host", opts: SMTPOptions{Host: "a b"}, wantErr: `new sender: smtp host "a b" is not a host name`},
		{name: "bad tls", opts: SMTPOptions{Host: "h", TLS: "ssl"}, wantErr: `new sender: unknown smtp tls mode "ssl": allowed none, starttls, tls`},
		{name: "bad port", opts: SMTPOptions{Host: "h", Port: 70000}, wantErr: "new sender: smtp port 70000 out of range 1-65535"},
		{name: "negative timeout", opts: SMTPOptions{Host: "h", Timeout: -time.Second}, wantErr: "new sender: smtp timeout -1s is negative"},
		{name: "password not echoed", opts: SMTPOptions{Host: "h", Port: -1, Password: testPassword}, wantErr: "new sender: smtp port -1 out of range 1-65535"},
		{name: "credentials over none", opts: SMTPOptions{Host: "h", TLS: TLSNone, Username: "u", Password: testPassword},
			wantErr: "new sender: smtp credentials over tls mode none would cross the network in clear text: use starttls or tls, or allow insecure auth"},
		{name: "xoauth2 over none", opts: SMTPOptions{Host: "h", TLS: TLSNone, Username: "u", Auth: AuthXOAUTH2, Token: &TokenFile{Path: "/run/token"}},
			wantErr: "new sender: smtp credentials over tls mode none would cross the network in clear text: use starttls or tls, or allow insecure auth"},
		{name: "xoauth2 without username", opts: SMTPOptions{Host: "h", Auth: AuthXOAUTH2, Token: &TokenFile{Path: "/run/token"}},
			wantErr: "new sender: smtp auth xoauth2 needs a username (the mailbox the token is for)"},
		{name: "xoauth2 without token source", opts: SMTPOptions{Host: "h", Auth: AuthXOAUTH2, Username: "u"},
			wantErr: "new sender: smtp auth xoauth2 needs a token source"},
		{name: "unknown auth", opts: SMTPOptions{Host: "h", Auth: "ntlm"},
			wantErr: `new sender: unknown smtp auth "ntlm": allowed empty (plain/login) or xoauth2`},
		{name: "bad server name", opts: SMTPOptions{Host: "h", ServerName: "a b"},
			wantErr: `new sender: smtp server name "a b" is not a host name`},
		{name: "missing ca file", opts: SMTPOptions{Host: "h", CAFile: "/nonexistent/ca.pem"},
			wantErr: "new sender: read smtp ca file: open /nonexistent/ca.pem: no such file or directory"},
		{name: "ca file without certificates", opts: SMTPOptions{Host: "h", CAFile: notPEM},
			wantErr: "new sender: smtp ca file " + notPEM + " holds no PEM certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSender(tc.opts)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantPort, s.opts.Port)
			require.Equal(t, tc.wantTLS, s.opts.TLS)
			require.Equal(t, DefaultTimeout, s.opts.Timeout)
		})
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "plain error", err: errors.New("x"), want: false},
		{name: "temporary", err: &SendError{Temporary: true, Err: errors.New("x")}, want: false},
		{name: "permanent", err: &SendError{Temporary: false, Code: 550, Err: errors.New("x")}, want: true},
		{name: "wrapped permanent", err: fmt.Errorf("activity: %w", &SendError{Err: errors.New("x")}), want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, IsPermanent(tc.err))
		})
	}
}
