package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// TLSMode says how the connection to the SMTP relay is secured.
type TLSMode string

// TLS modes: none (plain SMTP, e.g. a local relay or Mailpit), starttls
// (upgrade required, usually port 587) and tls (implicit TLS, usually 465).
const (
	TLSNone     TLSMode = "none"
	TLSStartTLS TLSMode = "starttls"
	TLSImplicit TLSMode = "tls"
)

// DefaultTimeout bounds every dial, read and write when SMTPOptions.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// FingerprintHeader carries the finding's fingerprint on every email.
const FingerprintHeader = "X-Sanwatch-Fingerprint"

// AuthMechanism says how a Sender authenticates to the relay.
type AuthMechanism string

// Authentication mechanisms: AuthPassword is PLAIN or LOGIN with Username and
// Password (none when Username is empty); AuthXOAUTH2 is XOAUTH2 (Gmail,
// Microsoft 365) with Username and an OAuth2 access token from a TokenSource.
const (
	AuthPassword AuthMechanism = ""
	AuthXOAUTH2  AuthMechanism = "xoauth2"
)

// SMTPOptions configure the relay a Sender delivers to.
type SMTPOptions struct {
	Host string
	// Port 0 means the usual port of the TLS mode: 25, 587 or 465.
	Port int
	// TLS is the TLS mode; empty means starttls.
	TLS      TLSMode
	Username string
	Password string
	// Timeout bounds the dial and every command; 0 means DefaultTimeout.
	Timeout time.Duration
	// CAFile is a PEM bundle of the CAs that sign the relay's certificate,
	// for a relay behind a private CA. They replace the system roots.
	// Empty: the system roots.
	CAFile string
	// ServerName is the name verified in the relay's certificate; empty: Host.
	ServerName string
	// InsecureSkipVerify accepts any certificate. For testing only: anyone
	// on the path can then read the mail and the credentials.
	InsecureSkipVerify bool
	// AllowInsecureAuth allows credentials (Username) over TLS mode none,
	// where they cross the network in clear text. Without it NewSender
	// refuses that combination.
	AllowInsecureAuth bool
	// Auth is the authentication mechanism; empty: AuthPassword.
	Auth AuthMechanism
	// Token gives the access token before each connection, for AuthXOAUTH2.
	Token TokenSource
	// HelloName is the name sent with EHLO; empty means the host name.
	HelloName string
}

// Sender delivers rendered messages to one SMTP relay. It is safe for
// concurrent use: every Send uses its own connection.
type Sender struct {
	opts    SMTPOptions
	rootCAs *x509.CertPool // from CAFile; nil: the system roots
	now     func() time.Time
}

// NewSender checks o, fills its defaults and returns a Sender. Errors name
// the option and the value; the password is never part of them.
func NewSender(o SMTPOptions) (*Sender, error) {
	if strings.TrimSpace(o.Host) == "" {
		return nil, errors.New("new sender: smtp host is empty")
	}
	if hasControl(o.Host) || strings.ContainsAny(o.Host, " /") {
		return nil, fmt.Errorf("new sender: smtp host %q is not a host name", o.Host)
	}
	switch o.TLS {
	case "":
		o.TLS = TLSStartTLS
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("new sender: unknown smtp tls mode %q: allowed none, starttls, tls", o.TLS)
	}
	if o.Port == 0 {
		o.Port = map[TLSMode]int{TLSNone: 25, TLSStartTLS: 587, TLSImplicit: 465}[o.TLS]
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("new sender: smtp port %d out of range 1-65535", o.Port)
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("new sender: smtp timeout %s is negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if hasControl(o.Username) || hasControl(o.HelloName) || strings.ContainsAny(o.HelloName, " ") {
		return nil, errors.New("new sender: smtp username or hello name contains a control character or space")
	}
	if hasControl(o.ServerName) || strings.ContainsAny(o.ServerName, " /") {
		return nil, fmt.Errorf("new sender: smtp server name %q is not a host name", o.ServerName)
	}
	switch o.Auth {
	case AuthPassword:
	case AuthXOAUTH2:
		if o.Username == "" {
			return nil, errors.New("new sender: smtp auth xoauth2 needs a username (the mailbox the token is for)")
		}
		if o.Token == nil {
			return nil, errors.New("new sender: smtp auth xoauth2 needs a token source")
		}
	default:
		return nil, fmt.Errorf("new sender: unknown smtp auth %q: allowed empty (plain/login) or xoauth2", o.Auth)
	}
	if o.Username != "" && o.TLS == TLSNone && !o.AllowInsecureAuth {
		return nil, errors.New("new sender: smtp credentials over tls mode none would cross the network in clear text: " +
			"use starttls or tls, or allow insecure auth")
	}
	s := &Sender{opts: o, now: time.Now}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("new sender: read smtp ca file: %w", err)
		}
		s.rootCAs = x509.NewCertPool()
		if !s.rootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("new sender: smtp ca file %s holds no PEM certificates", o.CAFile)
		}
	}
	return s, nil
}

// SendError is the error of Send: Temporary says whether trying again later
// may succeed (connection refused, timeout, dropped connection, 4xx reply);
// Code is the SMTP reply code when the server gave one.
type SendError struct {
	Temporary bool
	Code      int
	Err       error
}

// Error describes the failure, its class and the SMTP code.
func (e *SendError) Error() string {
	class := "permanent"
	if e.Temporary {
		class = "temporary"
	}
	if e.Code != 0 {
		return fmt.Sprintf("send email: %s failure (smtp %d): %v", class, e.Code, e.Err)
	}
	return fmt.Sprintf("send email: %s failure: %v", class, e.Err)
}

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a *SendError that retrying will not fix
// (5xx reply, rejected address, invalid message). Other errors are not
// known to be permanent.
func IsPermanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && !se.Temporary
}

// Send builds the MIME message (multipart/alternative text and HTML with the
// PNG inline as multipart/related, CSV attached; headers Message-ID,
// In-Reply-To, References, Date and X-Sanwatch-Fingerprint) and delivers it.
// The error is a *SendError. An invalid message fails permanently before
// any connection is made.
func (s *Sender) Send(ctx context.Context, m Message, r Rendered) error {
	msg, err := s.build(m, r)
	if err != nil {
		return &SendError{Temporary: false, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return &SendError{Temporary: true, Err: fmt.Errorf("send email: %w", err)}
	}
	// Cancelling sendCtx when Send returns releases the connection watch.
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	secret := s.opts.Password
	if s.opts.Auth == AuthXOAUTH2 {
		token, err := s.opts.Token.Token(sendCtx)
		if err != nil {
			// A token that cannot be had now may be had later (the
			// command's service is down, the file is being replaced).
			return &SendError{Temporary: true, Err: fmt.Errorf("send email: get oauth2 token: %w", err)}
		}
		secret = token
	}
	client, err := s.client(sendCtx, secret)
	if err != nil {
		return &SendError{Temporary: false, Err: redact(err, secret)}
	}
	if err := client.DialAndSendWithContext(sendCtx, msg); err != nil {
		se := classify(err)
		se.Err = redact(se.Err, secret)
		if s.opts.Auth == AuthXOAUTH2 && se.Code == codeAuthFailed {
			// The token was refused: it may have expired or been revoked
			// before its time. Fetch a new one and try again.
			if inv, ok := s.opts.Token.(interface{ Invalidate() }); ok {
				inv.Invalidate()
			}
			se.Temporary = true
		}
		return se
	}
	return nil
}

// codeAuthFailed is the SMTP reply to refused credentials (RFC 4954).
const codeAuthFailed = 535

func (s *Sender) build(m Message, r Rendered) (*mail.Msg, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("build message: %w", err)
	}
	if m.MessageID == "" {
		return nil, fmt.Errorf("build message: %w", ErrNoMessageID)
	}
	if r.Text == "" && r.HTML == "" {
		return nil, errors.New("build message: rendered message has no body")
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, fmt.Errorf("build message: from: %w", err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("build message: to: %w", err)
	}
	if len(m.Cc) > 0 {
		if err := msg.Cc(m.Cc...); err != nil {
			return nil, fmt.Errorf("build message: cc: %w", err)
		}
	}
	subject := r.Subject
	if subject == "" {
		subject = Subject(m)
	}
	msg.Subject(clean(subject, maxSubject))
	msg.SetMessageIDWithValue(strings.Trim(m.MessageID, "<>"))
	if m.InReplyTo != "" {
		msg.SetGenHeader(mail.HeaderInReplyTo, m.InReplyTo)
	}
	if len(m.References) > 0 {
		msg.SetGenHeader(mail.HeaderReferences, strings.Join(m.References, " "))
	}
	msg.SetDateWithValue(s.now())
	msg.SetGenHeader(mail.Header(FingerprintHeader), m.Finding.Fingerprint())
	msg.SetGenHeader(mail.Header("X-Sanwatch-Kind"), string(m.Kind))
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")

	switch {
	case r.Text != "" && r.HTML != "":
		msg.SetBodyString(mail.TypeTextPlain, r.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	case r.Text != "":
		msg.SetBodyString(mail.TypeTextPlain, r.Text)
	default:
		msg.SetBodyString(mail.TypeTextHTML, r.HTML)
	}
	if len(r.PNG) > 0 {
		if err := msg.EmbedReader(ChartFile, bytes.NewReader(r.PNG), mail.WithFileContentType("image/png")); err != nil {
			return nil, fmt.Errorf("build message: embed chart: %w", err)
		}
	}
	if len(r.CSV) > 0 {
		if err := msg.AttachReader(CSVFile, bytes.NewReader(r.CSV), mail.WithFileContentType("text/csv")); err != nil {
			return nil, fmt.Errorf("build message: attach csv: %w", err)
		}
	}
	return msg, nil
}

// client returns a go-mail client for one send, authenticating with secret
// (the password or the access token). Connections are dialled by dial so
// that cancelling ctx closes them at once.
func (s *Sender) client(ctx context.Context, secret string) (*mail.Client, error) {
	o := s.opts
	serverName := o.ServerName
	if serverName == "" {
		serverName = o.Host
	}
	tlsConfig := &tls.Config{
		ServerName: serverName, RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // documented as for testing only
	}
	opts := []mail.Option{
		mail.WithPort(o.Port),
		mail.WithTimeout(o.Timeout),
		mail.WithTLSConfig(tlsConfig),
		mail.WithDialContextFunc(s.dialer(ctx, tlsConfig)),
	}
	switch o.TLS {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default: // none, or tls where the dialer does the handshake
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if o.HelloName != "" {
		opts = append(opts, mail.WithHELO(o.HelloName))
	}
	switch {
	case o.Auth == AuthXOAUTH2:
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthXOAUTH2), mail.WithUsername(o.Username), mail.WithPassword(secret))
	case o.Username != "" && o.TLS == TLSNone: // allowed by NewSender only with AllowInsecureAuth
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlainNoEnc, mail.SMTPAuthLoginNoEnc),
			mail.WithUsername(o.Username), mail.WithPassword(secret))
	case o.Username != "":
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(o.Username), mail.WithPassword(secret))
	}
	c, err := mail.NewClient(o.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("create smtp client: %w", err)
	}
	return c, nil
}

// dialer connects within the dial context, does the TLS handshake in tls
// mode, and closes the connection if sendCtx ends before the send does.
func (s *Sender) dialer(sendCtx context.Context, tlsConfig *tls.Config) mail.DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: s.opts.Timeout}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.opts.TLS == TLSImplicit {
			tc := tls.Client(conn, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			conn = tc
		}
		context.AfterFunc(sendCtx, func() { _ = conn.Close() })
		return conn, nil
	}
}

// classify turns an error of go-mail into a *SendError: a 5xx reply or a
// certificate the relay cannot prove is permanent; a 4xx reply, a refused,
// timed-out or dropped connection is temporary.
func classify(err error) *SendError {
	code := 0
	var me *mail.SendError
	if errors.As(err, &me) {
		code = me.ErrorCode()
	}
	if code == 0 {
		var te *textproto.Error
		if errors.As(err, &te) {
			code = te.Code
		}
	}
	se := &SendError{Temporary: true, Code: code, Err: err}
	switch {
	case code >= 500 && code < 600:
		se.Temporary = false
	case code >= 400 && code < 500:
		se.Temporary = true
	case isCertificateError(err):
		se.Temporary = false
	}
	return se
}

func isCertificateError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// redactedError is an error whose text had the password removed. It does not
// unwrap, so the original text cannot be reached through it.
type redactedError struct{ msg string }

func (e redactedError) Error() string { return e.msg }

// redact replaces the password in err's text. Errors that do not contain it
// are returned unchanged so that errors.As still finds SMTP codes.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return redactedError{msg: strings.ReplaceAll(err.Error(), password, "[redacted]")}
}
