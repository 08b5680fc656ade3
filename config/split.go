package config

import (
	"errors"
	"strings"
)

// SplitCommand splits a command line such as smtp.oauth2_token_command into
// the program and its arguments, without a shell: words are separated by
// white space; 'single quotes' keep everything literally; "double quotes"
// keep white space, with \" and \\ as escapes; a backslash outside quotes
// escapes the next character. Nothing is expanded ($VAR, ~, globs) and
// nothing is interpreted (pipes, redirections, ;).
func SplitCommand(s string) ([]string, error) {
	var (
		out   []string
		word  strings.Builder
		inArg bool
		quote rune // 0, '\'' or '"'
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			if quote == '"' && r != '"' && r != '\\' {
				word.WriteRune('\\') // kept, as in a POSIX shell
			}
			word.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == '\\':
			esc, inArg = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inArg {
				out = append(out, word.String())
				word.Reset()
				inArg = false
			}
		default:
			word.WriteRune(r)
			inArg = true
		}
	}
	switch {
	case esc:
		return nil, errors.New("ends with a backslash")
	case quote != 0:
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		out = append(out, word.String())
	}
	if len(out) == 0 {
		return nil, errors.New("no program")
	}
	return out, nil
}
