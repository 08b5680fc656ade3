package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/sanwatch/sanwatch/internal/email"
)

// mailSink is an SMTP server on 127.0.0.1 that accepts every message and
// records when the first message of each fingerprint (the
// X-Sanwatch-Fingerprint header) was accepted: the end of its DATA.
type mailSink struct {
	srv  *smtp.Server
	port int

	mu       sync.Mutex
	arrived  map[string]time.Time
	waiters  map[string][]chan time.Time
	messages int
}

// startMailSink listens on a free loopback port and serves in the background.
func startMailSink() (*mailSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for smtp: %w", err)
	}
	s := &mailSink{arrived: map[string]time.Time{}, waiters: map[string][]chan time.Time{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.MaxMessageBytes = 32 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	s.port, _ = strconv.Atoi(port)
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// accepted records a message accepted at at.
func (s *mailSink) accepted(fp string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages++
	if _, seen := s.arrived[fp]; seen {
		return
	}
	s.arrived[fp] = at
	for _, ch := range s.waiters[fp] {
		ch <- at
	}
	delete(s.waiters, fp)
}

// wait returns when the first message about fp was accepted, waiting up to timeout.
func (s *mailSink) wait(fp string, timeout time.Duration) (time.Time, error) {
	s.mu.Lock()
	if at, ok := s.arrived[fp]; ok {
		s.mu.Unlock()
		return at, nil
	}
	ch := make(chan time.Time, 1)
	s.waiters[fp] = append(s.waiters[fp], ch)
	s.mu.Unlock()
	select {
	case at := <-ch:
		return at, nil
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("wait for email about %s: none accepted within %s", fp, timeout)
	}
}

// count returns how many messages were accepted.
func (s *mailSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages
}

// Close stops the server.
func (s *mailSink) Close() error { return s.srv.Close() }

// sinkSession is one SMTP transaction of the sink.
type sinkSession struct{ s *mailSink }

// Mail accepts any sender.
func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt accepts any recipient.
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

// Data reads the message and records its fingerprint's arrival.
func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read data: %w", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "malformed message"}
	}
	fp := msg.Header.Get(email.FingerprintHeader)
	if fp == "" {
		return errors.New("message without " + email.FingerprintHeader)
	}
	ss.s.accepted(fp, time.Now())
	return nil
}

// Reset forgets the transaction (nothing is kept per transaction).
func (*sinkSession) Reset() {}

// Logout ends the session.
func (*sinkSession) Logout() error { return nil }
