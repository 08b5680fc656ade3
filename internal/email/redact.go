package email

import "regexp"

// addressRE matches what looks like an email address inside free text, such
// as an SMTP reply ("550 5.1.1 <jane@example.com>: no such mailbox").
var addressRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+`)

// RedactAddresses replaces every email address in s with "<address>", for
// text shown where personal data must not be: the Temporal UI's details,
// monitoring output, command-line tables.
func RedactAddresses(s string) string {
	return addressRE.ReplaceAllString(s, "<address>")
}
