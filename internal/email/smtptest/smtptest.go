// Package smtptest runs an in-process SMTP server on loopback for tests,
// built on github.com/emersion/go-smtp. It records what it receives and can
// be told to fail the next transactions (451, 550, a dropped connection, a
// server that never answers) or to refuse connections, so that senders and
// their retries are tested against real SMTP. It speaks STARTTLS or implicit
// TLS with a certificate signed by a CA made at Start (CAFile, CertPool), and
// authenticates with PLAIN and LOGIN (WithAuth) or XOAUTH2 (WithXOAUTH2).
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
)

// Mode is a fault the server injects.
type Mode int

// Fault modes.
const (
	// Temp4xx answers MAIL FROM with 451 (try again later).
	Temp4xx Mode = iota + 1
	// Perm5xx answers RCPT TO with 550 (no such mailbox).
	Perm5xx
	// Drop closes the connection in the middle of DATA.
	Drop
	// Hang accepts the connection and never says anything until it is closed.
	Hang
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Temp4xx:
		return "temp4xx"
	case Perm5xx:
		return "perm5xx"
	case Drop:
		return "drop"
	case Hang:
		return "hang"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Received is one message the server accepted.
type Received struct {
	From   string
	To     []string
	Data   []byte
	Header mail.Header // parsed with net/mail
	TLS    bool        // the message came over TLS (STARTTLS or implicit)
	User   string      // the user the session authenticated as; empty: none
}

// CertNames are the names in the server certificate besides 127.0.0.1:
// "localhost", and CertName, which resolves nowhere and so can only be
// reached by dialling 127.0.0.1 and verifying it as the server name.
var CertNames = []string{"localhost", CertName}

// CertName is a name the server certificate is valid for that no DNS knows.
const CertName = "smtp.sanwatch.test"

// Option configures a Server at Start.
type Option func(*Server)

// WithAuth makes the server offer AUTH PLAIN and LOGIN and accept only these
// credentials; MAIL FROM without authentication is then refused with 530.
func WithAuth(username, password string) Option {
	return func(s *Server) { s.user, s.pass = username, password }
}

// WithImplicitTLS makes the listener speak TLS from the first byte (the
// SMTPS/465 style). Without it the server offers STARTTLS. The certificate,
// for 127.0.0.1 and CertNames, is signed by a CA made at Start: clients
// verify it with CertPool or CAFile.
func WithImplicitTLS() Option {
	return func(s *Server) { s.implicitTLS = true }
}

// WithXOAUTH2 makes the server offer AUTH XOAUTH2 (Gmail, Microsoft 365) for
// username, accepting a bearer token when valid says so; MAIL FROM without
// authentication is then refused with 530. The client's initial response
// must be exactly "user=<username>\x01auth=Bearer <token>\x01\x01". A refused
// token gets the 334 error challenge real servers send, then 535. Tokens
// returns every token presented.
func WithXOAUTH2(username string, valid func(token string) bool) Option {
	return func(s *Server) { s.oauthUser, s.oauthValid = username, valid }
}

// Server is a running test SMTP server.
type Server struct {
	t           testing.TB
	srv         *smtp.Server
	addr        string
	tlsConfig   *tls.Config
	certPool    *x509.CertPool
	caPEM       []byte
	caFile      string
	implicitTLS bool
	user, pass  string
	oauthUser   string
	oauthValid  func(string) bool

	mu          sync.Mutex
	changed     *sync.Cond
	messages    []Received
	fault       Mode
	faultLeft   int
	listener    net.Listener
	hung        []net.Conn
	attempts    int
	connections int
	closed      bool
	tokens      []string
}

// Start runs a server on 127.0.0.1 on a free port. It is closed by t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t}
	s.changed = sync.NewCond(&s.mu)
	for _, o := range opts {
		o(s)
	}
	cert, caPEM, err := newCertificate()
	if err != nil {
		t.Fatalf("smtptest: create certificate: %v", err)
	}
	s.caPEM = caPEM
	s.certPool = x509.NewCertPool()
	s.certPool.AppendCertsFromPEM(caPEM)
	s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 32 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	if !s.implicitTLS {
		s.srv.TLSConfig = s.tlsConfig
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.Close)
	return s
}

// serve runs the SMTP server on l, behind the fault-injecting listener.
func (s *Server) serve(l net.Listener) {
	fl := &faultListener{Listener: l, s: s}
	s.mu.Lock()
	s.listener = fl
	s.mu.Unlock()
	go func() { _ = s.srv.Serve(fl) }()
}

// Close stops the server, closing the listener and every connection.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, c := range s.hung {
		_ = c.Close()
	}
	s.hung = nil
	s.changed.Broadcast()
	s.mu.Unlock()
	_ = s.srv.Close()
}

// Addr returns host:port of the server.
func (s *Server) Addr() string { return s.addr }

// Host returns the IP address the server listens on.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// Port returns the TCP port the server listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// CertPool returns a pool holding the CA that signed the server's
// certificate, and nothing else.
func (s *Server) CertPool() *x509.CertPool { return s.certPool }

// CAPEM returns the CA certificate that signed the server's certificate, as PEM.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CAFile writes the CA certificate (CAPEM) to a file in a temporary
// directory of the test and returns its path: an smtp.ca_file.
func (s *Server) CAFile() string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caFile == "" {
		p := filepath.Join(s.t.TempDir(), "smtptest-ca.pem")
		if err := os.WriteFile(p, s.caPEM, 0o600); err != nil {
			s.t.Fatalf("smtptest: write CA file: %v", err)
		}
		s.caFile = p
	}
	return s.caFile
}

// Tokens returns the XOAUTH2 bearer tokens presented so far, accepted or
// not, in order.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// WaitMessages waits until at least n messages were accepted or timeout
// passes, and returns the messages accepted by then.
func (s *Server) WaitMessages(n int, timeout time.Duration) []Received {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.changed.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.messages) < n && !s.closed && time.Now().Before(deadline) {
		s.changed.Wait()
	}
	return append([]Received(nil), s.messages...)
}

// FailNext makes the next n transactions fail with mode. Hang applies to the
// next n connections, which are accepted and never answered. A new call
// replaces what is left of the previous one; n <= 0 clears it.
func (s *Server) FailNext(n int, mode Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultLeft = mode, max(n, 0)
}

// Attempts returns how many transactions (MAIL FROM commands) the server saw,
// failed ones included.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Connections returns how many connections the server accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Refuse closes the listener: new connections are refused until Accept.
// Connections already open are left alone.
func (s *Server) Refuse() {
	s.mu.Lock()
	l := s.listener
	s.listener = nil
	s.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
}

// Accept listens again on the same address after Refuse.
func (s *Server) Accept() {
	s.t.Helper()
	s.mu.Lock()
	open := s.listener != nil || s.closed
	s.mu.Unlock()
	if open {
		return
	}
	var (
		l   net.Listener
		err error
	)
	for range 50 { // the port may take a moment to be free again
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("smtptest: listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

// takeFault consumes one injected fault if the pending one is in modes.
func (s *Server) takeFault(modes ...Mode) Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faultLeft == 0 {
		return 0
	}
	for _, m := range modes {
		if s.fault == m {
			s.faultLeft--
			return m
		}
	}
	return 0
}

// faultListener counts connections, holds Hang connections without handing
// them to the SMTP server, and wraps connections in TLS in implicit mode.
type faultListener struct {
	net.Listener
	s *Server
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		l.s.connections++
		l.s.mu.Unlock()
		if l.s.takeFault(Hang) == Hang {
			l.s.mu.Lock()
			if l.s.closed {
				_ = c.Close()
			} else {
				l.s.hung = append(l.s.hung, c)
			}
			l.s.mu.Unlock()
			continue
		}
		if l.s.implicitTLS {
			c = tls.Server(c, l.s.tlsConfig)
		}
		return c, nil
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, conn: c}, nil
}

// session is one SMTP connection's state.
type session struct {
	s      *Server
	conn   *smtp.Conn
	authed string // the user authenticated as; empty: none
	from   string
	to     []string
	fault  Mode
}

var _ smtp.AuthSession = (*session)(nil)

var (
	errTemp = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Requested action aborted: try again later"}
	errPerm = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	errAuth = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
)

// mechXOAUTH2 is the SASL name of XOAUTH2.
const mechXOAUTH2 = "XOAUTH2"

func (ss *session) AuthMechanisms() []string {
	var mechs []string
	if ss.s.user != "" {
		mechs = append(mechs, sasl.Plain, sasl.Login)
	}
	if ss.s.oauthUser != "" {
		mechs = append(mechs, mechXOAUTH2)
	}
	return mechs
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		if username != ss.s.user || password != ss.s.pass {
			return smtp.ErrAuthFailed
		}
		ss.authed = username
		return nil
	}
	switch {
	case mech == sasl.Plain && ss.s.user != "":
		return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
	case mech == sasl.Login && ss.s.user != "":
		return &loginServer{check: check}, nil
	case mech == mechXOAUTH2 && ss.s.oauthUser != "":
		return &xoauth2Server{ss: ss}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	ss.s.attempts++
	ss.s.mu.Unlock()
	if (ss.s.user != "" || ss.s.oauthUser != "") && ss.authed == "" {
		return errAuth
	}
	ss.fault = ss.s.takeFault(Temp4xx, Perm5xx, Drop)
	if ss.fault == Temp4xx {
		return errTemp
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.fault == Perm5xx {
		return errPerm
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.fault == Drop {
		_, _ = io.CopyN(io.Discard, r, 256)
		_ = ss.conn.Conn().Close()
		return errors.New("connection dropped")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read data: %w", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message: " + err.Error()}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, Received{
		From: ss.from, To: append([]string(nil), ss.to...), Data: data, Header: msg.Header, TLS: isTLS, User: ss.authed,
	})
	ss.s.changed.Broadcast()
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to, ss.fault = "", nil, 0
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN: ask for the user name, then
// the password.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the user name
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected client response")
}

// xoauth2Server is the server side of AUTH XOAUTH2: one initial response
// "user=<user>\x01auth=Bearer <token>\x01\x01"; a refused token gets a 334
// challenge with a JSON error, and the client's (empty) answer a 535, as
// Gmail and Microsoft 365 do.
type xoauth2Server struct {
	ss      *session
	refused bool
}

// xoauth2Error is the challenge sent for a refused token.
const xoauth2Error = `{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}`

func (x *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if x.refused {
		return nil, true, smtp.ErrAuthFailed
	}
	if response == nil {
		return nil, false, nil // ask for the initial response
	}
	user, token, ok := parseXOAUTH2(string(response))
	if !ok {
		return nil, true, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed XOAUTH2 response"}
	}
	s := x.ss.s
	s.mu.Lock()
	s.tokens = append(s.tokens, token)
	s.mu.Unlock()
	if user != s.oauthUser || s.oauthValid == nil || !s.oauthValid(token) {
		x.refused = true
		return []byte(xoauth2Error), false, nil
	}
	x.ss.authed = user
	return nil, true, nil
}

// parseXOAUTH2 splits "user=<user>\x01auth=Bearer <token>\x01\x01", and
// nothing else, into the user and the token.
func parseXOAUTH2(r string) (user, token string, ok bool) {
	rest, found := strings.CutSuffix(r, "\x01\x01")
	if !found {
		return "", "", false
	}
	userPart, authPart, found := strings.Cut(rest, "\x01")
	if !found || strings.Contains(authPart, "\x01") {
		return "", "", false
	}
	user, ok1 := strings.CutPrefix(userPart, "user=")
	token, ok2 := strings.CutPrefix(authPart, "auth=Bearer ")
	if !ok1 || !ok2 || user == "" || token == "" || strings.ContainsAny(token, " \t") {
		return "", "", false
	}
	return user, token, true
}

// newCertificate makes a CA and, signed by it, an ECDSA server certificate
// for 127.0.0.1 and CertNames. It returns the server certificate with its
// chain and the CA as PEM.
func newCertificate() (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "smtptest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     CertNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}, caPEM, nil
}
