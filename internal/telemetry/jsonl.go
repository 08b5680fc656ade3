package telemetry

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

func (p *parser) runJSONL(br *bufio.Reader) error {
	for {
		line, tooLong, err := p.nextLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ferr := p.flush(); ferr != nil {
				return ferr
			}
			return p.readError(err)
		}
		p.res.Lines++
		if tooLong {
			p.reject(lineTooLong)
			continue
		}
		s, reason := p.parseJSONLine(line)
		if reason != "" {
			p.reject(reason)
			continue
		}
		if err := p.accept(s); err != nil {
			return err
		}
	}
	if err := p.flush(); err != nil {
		return err
	}
	if p.res.Lines > 0 && p.syntaxErrors == p.res.Lines {
		return p.notTelemetry(0, "no line is a JSON object (%s)", p.firstSyntax)
	}
	return nil
}

// JSON value kinds, named as in error messages.
const (
	jsonString = "a string"
	jsonNumber = "a number"
	jsonBool   = "a boolean"
	jsonNull   = "null"
	jsonObject = "an object"
	jsonArray  = "an array"
)

// jsonField is one member of the object on a line: its kind and raw token.
type jsonField struct {
	set  bool
	kind string
	raw  []byte // string content without quotes (escapes undone), or number text
}

func (p *parser) parseJSONLine(line []byte) (Sample, string) {
	var f [5]jsonField // indexed like columns
	if reason := p.scanObject(line, &f); reason != "" {
		return Sample{}, reason
	}
	for k, name := range columns {
		if !f[k].set {
			return Sample{}, fmt.Sprintf("missing field %q", name)
		}
		kind := f[k].kind
		switch {
		case k == 0 && kind != jsonString && kind != jsonNumber:
			return Sample{}, fmt.Sprintf("field %q is %s, want a string or a number", name, kind)
		case k == 4 && kind != jsonNumber:
			return Sample{}, fmt.Sprintf("field %q is %s, want a number", name, kind)
		case k > 0 && k < 4 && kind != jsonString:
			return Sample{}, fmt.Sprintf("field %q is %s, want a string", name, kind)
		}
	}
	t, reason := p.parseTime(f[0].raw)
	if reason != "" {
		return Sample{}, reason
	}
	return p.buildSample(t, f[1].raw, f[2].raw, f[3].raw, f[4].raw)
}

// jsonScanner reads the JSON object on one line.
type jsonScanner struct {
	b   []byte
	i   int
	err string
}

// fail records the first syntax error.
func (s *jsonScanner) fail(format string, args ...any) {
	if s.err == "" {
		s.err = fmt.Sprintf("invalid JSON at column %d: ", s.i+1) + fmt.Sprintf(format, args...)
	}
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// scanObject fills f from the object on line. A reason that is a syntax error
// is also counted in p.syntaxErrors.
func (p *parser) scanObject(line []byte, f *[5]jsonField) string {
	s := &jsonScanner{b: line}
	reason := s.object(f, p)
	if s.err != "" {
		p.syntaxErrors++
		if p.firstSyntax == "" {
			p.firstSyntax = fmt.Sprintf("line %d: %s", p.lineNo, s.err)
		}
		return s.err
	}
	return reason
}

// object scans the top-level object; it returns a non-syntax reason (unknown
// or duplicate field) or sets s.err.
func (s *jsonScanner) object(f *[5]jsonField, p *parser) string {
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		kind := s.value(1)
		if s.err == "" {
			s.skipSpace()
			if s.i < len(s.b) {
				s.fail("unexpected %s after value", quoteString(string(s.b[s.i])))
			} else {
				s.err = fmt.Sprintf("line is %s, not a JSON object", kind)
			}
		}
		return ""
	}
	s.i++
	reason := ""
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
	} else {
		for {
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				s.fail("want a field name")
				return ""
			}
			keyStart := s.i
			s.str()
			if s.err != "" {
				return ""
			}
			key := unquoteJSON(s.b[keyStart:s.i])
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				s.fail("want ':' after field name")
				return ""
			}
			s.i++
			s.skipSpace()
			start := s.i
			kind := s.value(1)
			if s.err != "" {
				return ""
			}
			if reason == "" {
				k := columnIndex(key)
				switch {
				case k < 0:
					reason = fmt.Sprintf("unknown field %s", quoteString(string(key)))
				case f[k].set:
					reason = fmt.Sprintf("duplicate field %q", columns[k])
				default:
					raw := s.b[start:s.i]
					if kind == jsonString {
						raw = unquoteJSON(raw)
					}
					f[k] = jsonField{set: true, kind: kind, raw: raw}
				}
			}
			s.skipSpace()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				break
			}
			s.fail("want ',' or '}'")
			return ""
		}
	}
	s.skipSpace()
	if s.i < len(s.b) {
		s.fail("unexpected data after the object")
		return ""
	}
	return reason
}

func columnIndex(key []byte) int {
	for k, name := range columns {
		if string(key) == name {
			return k
		}
	}
	return -1
}

// maxJSONDepth bounds nesting inside a line.
const maxJSONDepth = 64

// value scans one JSON value and returns its kind.
func (s *jsonScanner) value(depth int) string {
	if depth > maxJSONDepth {
		s.fail("nested deeper than %d", maxJSONDepth)
		return ""
	}
	if s.i >= len(s.b) {
		s.fail("unexpected end of line")
		return ""
	}
	switch c := s.b[s.i]; {
	case c == '"':
		s.str()
		return jsonString
	case c == '-' || '0' <= c && c <= '9':
		s.number()
		return jsonNumber
	case c == '{':
		s.i++
		s.skipSpace()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return jsonObject
		}
		for s.err == "" {
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				s.fail("want a field name")
				break
			}
			s.str()
			s.skipSpace()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				s.fail("want ':' after field name")
				break
			}
			s.i++
			s.skipSpace()
			s.value(depth + 1)
			s.skipSpace()
			if s.err != "" {
				break
			}
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				break
			}
			s.fail("want ',' or '}'")
		}
		return jsonObject
	case c == '[':
		s.i++
		s.skipSpace()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return jsonArray
		}
		for s.err == "" {
			s.skipSpace()
			s.value(depth + 1)
			s.skipSpace()
			if s.err != "" {
				break
			}
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				break
			}
			s.fail("want ',' or ']'")
		}
		return jsonArray
	case s.literal("true"), s.literal("false"):
		return jsonBool
	case s.literal("null"):
		return jsonNull
	default:
		s.fail("unexpected %s", quoteString(string(c)))
		return ""
	}
}

// literal consumes word when it is next.
func (s *jsonScanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// str scans a string starting at the opening quote and moves past it.
func (s *jsonScanner) str() {
	for i := s.i + 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return
		case c == '\\':
			i++
			if i >= len(s.b) {
				break
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) || !isHex(s.b[i+1:i+5]) {
					s.i = i
					s.fail("bad \\u escape")
					return
				}
				i += 4
			default:
				s.i = i
				s.fail("bad escape %s", quoteString(string(s.b[i-1:i+1])))
				return
			}
		case c < 0x20:
			s.i = i
			s.fail("control character in string")
			return
		}
	}
	s.i = len(s.b)
	s.fail("unterminated string")
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number scans a number following the JSON grammar.
func (s *jsonScanner) number() {
	b, i := s.b, s.i
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		s.i = i
		s.fail("bad number")
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			s.i = i
			s.fail("bad number")
			return
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.i = i
			s.fail("bad number")
			return
		}
	}
	s.i = i
}

// unquoteJSON returns the content of a JSON string token (quotes included),
// with escapes undone. The token has been checked by str.
func unquoteJSON(tok []byte) []byte {
	content := tok[1 : len(tok)-1]
	hasEscape := false
	for _, c := range content {
		if c == '\\' {
			hasEscape = true
			break
		}
	}
	if !hasEscape {
		return content
	}
	var out string
	if err := json.Unmarshal(tok, &out); err != nil {
		return content // not reached: str validated the token
	}
	return []byte(out)
}
