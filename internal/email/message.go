// Package email renders and sends the remediation emails about one finding:
// a plain-text and an HTML part, an inline PNG chart and a CSV of the
// evidence, threaded per fingerprint with stable Message-IDs so that a retried
// send is the same message. Sending goes through an SMTP relay with go-mail;
// every failure is classified as temporary (retry) or permanent (give up).
package email

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/sanwatch/sanwatch/internal/finding"
	"github.com/sanwatch/sanwatch/internal/fleet"
)

// Kind says which email of a remediation thread a message is.
type Kind string

// Kinds of remediation emails, in the order a thread usually sees them.
const (
	KindNotify        Kind = "notify"
	KindReminder      Kind = "reminder"
	KindUpdate        Kind = "update"
	KindEscalation    Kind = "escalation"
	KindResolved      Kind = "resolved"
	KindUndeliverable Kind = "undeliverable"
)

// Kinds lists the known kinds in a fixed order.
var Kinds = []Kind{KindNotify, KindReminder, KindUpdate, KindEscalation, KindResolved, KindUndeliverable}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// DefaultDomain is the right-hand side of Message-IDs when none is given.
const DefaultDomain = "sanwatch"

// AckSignal is the name of the signal that acknowledges a remediation
// workflow; the email shows it in the temporal CLI command.
const AckSignal = "ack"

// Message is one email about one finding: what to render and where to send it.
type Message struct {
	Kind    Kind            `json:"kind"`
	Finding finding.Finding `json:"finding"`
	Box     fleet.Box       `json:"box"`
	To      []string        `json:"to"`
	Cc      []string        `json:"cc,omitempty"`
	From    string          `json:"from"`
	// WorkflowID is the remediation workflow the email belongs to. It is shown
	// in the ack instructions (temporal workflow signal); empty leaves that out.
	WorkflowID string `json:"workflow_id,omitempty"`
	// MessageID is computed by MessageID, stable across retries, with angle brackets.
	MessageID string `json:"message_id"`
	// InReplyTo and References hold the first message's id for every follow-up.
	InReplyTo  string   `json:"in_reply_to,omitempty"`
	References []string `json:"references,omitempty"`
	// Step is the sequence number of the message within its thread.
	Step int `json:"step"`
	// Note is free text for the kind, such as who acked or why mail was undeliverable.
	Note string `json:"note,omitempty"`
}

// MessageID returns a stable Message-ID "<hash.step.kind@domain>", where hash
// is derived from the workflow id (one per fingerprint), so that a retried or
// replayed send reuses it and every message of a thread shares the prefix.
// An empty or unusable domain becomes DefaultDomain.
func MessageID(workflowID string, step int, kind Kind, domain string) string {
	sum := sha256.Sum256([]byte(workflowID))
	return "<" + hex.EncodeToString(sum[:12]) + "." + strconv.Itoa(step) + "." +
		idAtom(string(kind), "message") + "@" + idDomain(domain) + ">"
}

// idAtom keeps the letters, digits and dashes of s, lower-cased; empty becomes def.
func idAtom(s, def string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return def
	}
	return b.String()
}

// idDomain returns domain if it is a plain dot-atom host name, else DefaultDomain.
func idDomain(domain string) string {
	if domain == "" || len(domain) > 253 {
		return DefaultDomain
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || idAtom(label, "") != strings.ToLower(label) {
			return DefaultDomain
		}
	}
	return domain
}

// Errors of message validation.
var (
	ErrNoRecipients = errors.New("no recipients")
	ErrNoSender     = errors.New("no from address")
	ErrNoMessageID  = errors.New("no message id")
)

// Validate checks what must hold before a message is rendered or sent: a
// known kind, at least one To address, a From address, every address free of
// control characters and commas and parseable by net/mail (fleet.ValidateAddress),
// well-formed message ids and a fingerprint without control characters.
func (m Message) Validate() error {
	if !m.Kind.Valid() {
		return fmt.Errorf("validate message: unknown kind %q: allowed %s", m.Kind, kindList())
	}
	if len(m.To) == 0 {
		return fmt.Errorf("validate message: %w", ErrNoRecipients)
	}
	if m.From == "" {
		return fmt.Errorf("validate message: %w", ErrNoSender)
	}
	for _, field := range []struct {
		name  string
		addrs []string
	}{{"to", m.To}, {"cc", m.Cc}, {"from", []string{m.From}}} {
		for _, a := range field.addrs {
			if err := fleet.ValidateAddress(a); err != nil {
				return fmt.Errorf("validate message: %s: %w", field.name, err)
			}
		}
	}
	if m.MessageID != "" {
		if err := validateMsgID(m.MessageID); err != nil {
			return fmt.Errorf("validate message: message id: %w", err)
		}
	}
	if m.InReplyTo != "" {
		if err := validateMsgID(m.InReplyTo); err != nil {
			return fmt.Errorf("validate message: in-reply-to: %w", err)
		}
	}
	for _, id := range m.References {
		if err := validateMsgID(id); err != nil {
			return fmt.Errorf("validate message: references: %w", err)
		}
	}
	if fp := m.Finding.Fingerprint(); hasControl(fp) {
		return fmt.Errorf("validate message: fingerprint %q contains a control character", fp)
	}
	return nil
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// validateMsgID accepts "<left@right>" of printable ASCII without spaces.
func validateMsgID(id string) error {
	if len(id) < 5 || id[0] != '<' || id[len(id)-1] != '>' {
		return fmt.Errorf("%q is not of the form <left@right>", id)
	}
	inner := id[1 : len(id)-1]
	left, right, ok := strings.Cut(inner, "@")
	if !ok || left == "" || right == "" || strings.Contains(right, "@") {
		return fmt.Errorf("%q is not of the form <left@right>", id)
	}
	for _, r := range inner {
		if r <= ' ' || r >= 0x7f || r == '<' || r == '>' {
			return fmt.Errorf("%q contains a character not allowed in a message id", id)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}
