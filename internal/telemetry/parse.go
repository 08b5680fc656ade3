package telemetry

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotTelemetry is wrapped by the error Parse returns when the whole input
// is rejected: it is empty, binary, a CSV file without the right header, or
// JSON that is not one object per line.
var ErrNotTelemetry = errors.New("not telemetry")

// Limits of the parser.
const (
	// MaxLineBytes is the longest line accepted, line break excluded.
	MaxLineBytes = 64 * 1024
	// MaxNameBytes is the longest box id, component or metric accepted.
	MaxNameBytes = 128
)

// Defaults of Options.
const (
	DefaultMaxFutureSkew = time.Hour
	DefaultMaxErrors     = 20
	DefaultChunkSize     = 5000
	DefaultMaxBoxes      = 200_000
)

// minTime is the earliest sample time accepted.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// LineError says why one line of a batch was rejected.
type LineError struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Error returns "file:line: reason".
func (e LineError) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Reason
}

// Options tunes Parse. The zero value is ready to use.
type Options struct {
	Name          string        // file name used in errors ("input" when empty)
	Now           time.Time     // reference for the far-future check (zero: time.Now())
	MaxFutureSkew time.Duration // a sample later than Now+MaxFutureSkew is rejected (0: 1h)
	MaxErrors     int           // LineErrors kept in Result.Errors (0: 20); all are counted
	ChunkSize     int           // samples per emit call (0: 5000)
	MaxBoxes      int           // distinct boxes kept in Result.Boxes (0: 200,000); bounds memory on hostile input
	// Progress, when set, is called with the number of lines read so far
	// every ProgressLines lines, good or bad: a caller can show it is alive
	// through a batch whose lines are mostly rejected (and so never emitted).
	Progress func(lines int)
}

// ProgressLines is how many lines Parse reads between calls of Options.Progress.
const ProgressLines = 1024

// Result summarises a parsed batch.
type Result struct {
	Format   Format      `json:"format"`
	Lines    int64       `json:"lines"` // data lines, header and blank lines excluded
	Accepted int64       `json:"accepted"`
	Rejected int64       `json:"rejected"`
	Errors   []LineError `json:"errors,omitempty"` // the first Options.MaxErrors rejections
	First    time.Time   `json:"first"`            // earliest accepted sample
	Last     time.Time   `json:"last"`             // latest accepted sample
	Boxes    []string    `json:"boxes"`            // sorted unique boxes of accepted samples
	// BoxesTruncated is set when the batch touched more than Options.MaxBoxes
	// boxes; Boxes then holds only the first ones seen.
	BoxesTruncated bool `json:"boxes_truncated,omitempty"`
}

// RejectRatio returns the share of data lines that were rejected, 0 when
// there were none.
func (r Result) RejectRatio() float64 {
	if r.Lines == 0 {
		return 0
	}
	return float64(r.Rejected) / float64(r.Lines)
}

// Parse reads a telemetry batch from r and calls emit with chunks of at most
// Options.ChunkSize good samples, in file order. emit may be nil to only
// validate; each chunk is a fresh slice that emit may keep. An error from emit
// stops the parse and is returned wrapped.
//
// A gzip stream is detected by its magic bytes (1f 8b). The format is
// detected by content: when the first non-space byte is '{' the batch is JSON
// Lines, otherwise CSV whose first non-blank line is the header naming the
// columns time, box, component, metric and value in any order. Blank lines are
// skipped. A bad line is counted in Result.Rejected, the first ones are kept
// in Result.Errors, and parsing goes on. Memory stays bounded whatever the
// size of the input.
//
// When the whole input is rejected the error wraps ErrNotTelemetry. A read
// error, such as a corrupt or truncated gzip stream, is returned wrapped and
// naming the file, together with the counts of the lines read before it
// (whose samples were emitted).
func Parse(r io.Reader, opts Options, emit func([]Sample) error) (Result, error) {
	p := newParser(opts, emit)
	err := p.run(r)
	return p.result(), err
}

type parser struct {
	name      string
	now       time.Time
	skew      time.Duration
	maxErrors int
	chunkSize int
	maxBoxes  int
	emit      func([]Sample) error
	progress  func(lines int)

	res          Result
	chunk        []Sample
	boxes        map[string]struct{}
	intern       map[string]string
	lineNo       int
	cols         [5]int // cols[k] is the CSV field index of column k (time, box, component, metric, value)
	fields       [][]byte
	unquoted     []byte
	ends         []int
	syntaxErrors int64 // JSON lines that were not JSON objects at all
	firstSyntax  string
}

func newParser(opts Options, emit func([]Sample) error) *parser {
	p := &parser{
		name:      opts.Name,
		now:       opts.Now,
		skew:      opts.MaxFutureSkew,
		maxErrors: opts.MaxErrors,
		chunkSize: opts.ChunkSize,
		maxBoxes:  opts.MaxBoxes,
		emit:      emit,
		progress:  opts.Progress,
		boxes:     make(map[string]struct{}),
		intern:    make(map[string]string),
		fields:    make([][]byte, 0, 8),
	}
	if p.name == "" {
		p.name = "input"
	}
	if p.now.IsZero() {
		p.now = time.Now()
	}
	if p.skew <= 0 {
		p.skew = DefaultMaxFutureSkew
	}
	if p.maxErrors <= 0 {
		p.maxErrors = DefaultMaxErrors
	}
	if p.chunkSize <= 0 {
		p.chunkSize = DefaultChunkSize
	}
	if p.maxBoxes <= 0 {
		p.maxBoxes = DefaultMaxBoxes
	}
	return p
}

func (p *parser) result() Result {
	res := p.res
	res.Boxes = make([]string, 0, len(p.boxes))
	for b := range p.boxes {
		res.Boxes = append(res.Boxes, b)
	}
	slices.Sort(res.Boxes)
	return res
}

// notTelemetry returns a whole-file rejection; line 0 means no line number.
func (p *parser) notTelemetry(line int, format string, args ...any) error {
	where := p.name
	if line > 0 {
		where += ":" + strconv.Itoa(line)
	}
	return &notTelemetryError{msg: where + ": " + fmt.Sprintf(format, args...)}
}

// notTelemetryError is a whole-file rejection; it wraps ErrNotTelemetry
// without repeating its text.
type notTelemetryError struct{ msg string }

func (e *notTelemetryError) Error() string { return e.msg }
func (e *notTelemetryError) Unwrap() error { return ErrNotTelemetry }

// stickyReader returns the first error of r on every later read, so that an
// error seen while sniffing the head is seen again by the line reader.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(b)
	s.err = err
	return n, err
}

// sniffBytes is how much of the (decompressed) input is checked for binary data.
const sniffBytes = 8 * 1024

func (p *parser) run(r io.Reader) error {
	raw := bufio.NewReaderSize(r, 64*1024)
	var src io.Reader = raw
	if magic, _ := raw.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(raw)
		if err != nil {
			return fmt.Errorf("open gzip stream of %s: %w", p.name, err)
		}
		defer gz.Close()
		src = gz
		p.res.Format.Gzip = true
	}
	br := bufio.NewReaderSize(&stickyReader{r: src}, 4*MaxLineBytes)
	head, err := br.Peek(sniffBytes)
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return p.notTelemetry(0, "binary data (NUL byte at offset %d), not CSV or JSON Lines", i)
	}
	content := bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n")
	switch {
	case len(content) == 0 && err != nil && !errors.Is(err, io.EOF):
		return p.readError(err)
	case len(content) == 0 && len(head) < sniffBytes:
		return p.notTelemetry(0, "empty file")
	case len(content) > 0 && content[0] == '{':
		p.res.Format.Kind = KindJSONL
		return p.runJSONL(br)
	case len(content) > 0 && content[0] == '[':
		p.res.Format.Kind = KindJSONL
		return p.notTelemetry(0, "a JSON array, not JSON Lines (one object per line)")
	default:
		p.res.Format.Kind = KindCSV
		return p.runCSV(br)
	}
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

func (p *parser) readError(err error) error {
	if p.res.Format.Gzip {
		return fmt.Errorf("read gzip stream of %s: %w", p.name, err)
	}
	return fmt.Errorf("read %s: %w", p.name, err)
}

// nextLine returns the next non-blank line without its line break. tooLong
// reports a line longer than MaxLineBytes, whose content is dropped. At the
// end of the input it returns io.EOF; any other error is a read error.
func (p *parser) nextLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		line, err = br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, false, err
			}
			p.countLine()
			return nil, true, nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return nil, false, err // a partial last line before a read error is dropped
			}
			if len(line) == 0 {
				return nil, false, io.EOF
			}
		}
		p.countLine()
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > MaxLineBytes {
			return nil, true, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, false, io.EOF
			}
			continue
		}
		return line, false, nil
	}
}

// countLine counts a line read and reports progress every ProgressLines lines.
func (p *parser) countLine() {
	p.lineNo++
	if p.progress != nil && p.lineNo%ProgressLines == 0 {
		p.progress(p.lineNo)
	}
}

var lineTooLong = fmt.Sprintf("line longer than %d bytes", MaxLineBytes)

func (p *parser) runCSV(br *bufio.Reader) error {
	line, tooLong, err := p.nextLine(br)
	switch {
	case errors.Is(err, io.EOF):
		return p.notTelemetry(0, "empty file")
	case err != nil:
		return p.readError(err)
	case tooLong:
		return p.notTelemetry(p.lineNo, "header line is longer than %d bytes", MaxLineBytes)
	}
	if err := p.parseHeader(bytes.TrimPrefix(line, utf8BOM)); err != nil {
		return err
	}
	for {
		line, tooLong, err := p.nextLine(br)
		if errors.Is(err, io.EOF) {
			return p.flush()
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
		s, reason := p.parseCSVLine(line)
		if reason != "" {
			p.reject(reason)
			continue
		}
		if err := p.accept(s); err != nil {
			return err
		}
	}
}

// columns are the CSV column names, in the order of the cols array.
var columns = [5]string{"time", "box", "component", "metric", "value"}

// parseHeader reads the CSV header. Its errors name the line and the
// reason and quote at most a short excerpt of one column: a file that is
// not telemetry (a key, a password file) must not be echoed into errors,
// workflow failures and quarantine records.
func (p *parser) parseHeader(line []byte) error {
	bad := func(format string, args ...any) error {
		return p.notTelemetry(p.lineNo, "header is not "+CSVHeader+": "+format, args...)
	}
	fields, reason := p.splitCSV(line)
	switch {
	case reason != "":
		return bad("%s", reason)
	case len(fields) != len(columns):
		return bad("%d columns, want %d", len(fields), len(columns))
	}
	seen := [5]bool{}
	for i, f := range fields {
		name := strings.ToLower(string(f))
		k := slices.Index(columns[:], name)
		switch {
		case k < 0:
			return bad("column %d %s is unknown", i+1, quote(f))
		case seen[k]:
			return bad("column %d %s repeats", i+1, quote(f))
		}
		seen[k] = true
		p.cols[k] = i
	}
	return nil
}

// splitCSV splits one CSV line into fields. Unquoted fields are trimmed of
// spaces; quoted fields may hold commas and doubled quotes. The returned
// slices are valid until the next call.
func (p *parser) splitCSV(line []byte) ([][]byte, string) {
	fields := p.fields[:0]
	defer func() { p.fields = fields[:0] }()
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				return append(fields, trimSpace(line)), ""
			}
			fields = append(fields, trimSpace(line[:i]))
			line = line[i+1:]
		}
	}
	// Slow path: every field is copied into one buffer, then sliced.
	buf := p.unquoted[:0]
	ends := p.ends[:0]
	for {
		rest := trimLeftSpace(line)
		if len(rest) > 0 && rest[0] == '"' {
			i := 1
			for {
				if i >= len(rest) {
					return nil, "unterminated quoted field"
				}
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						buf = append(buf, '"')
						i += 2
						continue
					}
					break
				}
				buf = append(buf, rest[i])
				i++
			}
			ends = append(ends, len(buf))
			rest = trimLeftSpace(rest[i+1:])
			if len(rest) == 0 {
				break
			}
			if rest[0] != ',' {
				return nil, "unexpected character after quoted field"
			}
			line = rest[1:]
			continue
		}
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			i = len(line)
		}
		if bytes.IndexByte(line[:i], '"') >= 0 {
			return nil, "bare quote in unquoted field"
		}
		buf = append(buf, trimSpace(line[:i])...)
		ends = append(ends, len(buf))
		if i == len(line) {
			break
		}
		line = line[i+1:]
	}
	p.unquoted, p.ends = buf, ends
	start := 0
	for _, end := range ends {
		fields = append(fields, buf[start:end:end])
		start = end
	}
	return fields, ""
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func (p *parser) parseCSVLine(line []byte) (Sample, string) {
	fields, reason := p.splitCSV(line)
	if reason != "" {
		return Sample{}, reason
	}
	if len(fields) != len(columns) {
		return Sample{}, fmt.Sprintf("wrong number of fields: got %d, want %d", len(fields), len(columns))
	}
	t, reason := p.parseTime(fields[p.cols[0]])
	if reason != "" {
		return Sample{}, reason
	}
	return p.buildSample(t, fields[p.cols[1]], fields[p.cols[2]], fields[p.cols[3]], fields[p.cols[4]])
}

// buildSample validates the names and the value of a sample whose time is
// already parsed.
func (p *parser) buildSample(t time.Time, box, component, metric, value []byte) (Sample, string) {
	if reason := checkBox(box); reason != "" {
		return Sample{}, reason
	}
	if reason := checkComponent(component); reason != "" {
		return Sample{}, reason
	}
	if reason := checkMetric(metric); reason != "" {
		return Sample{}, reason
	}
	v, reason := parseValue(value)
	if reason != "" {
		return Sample{}, reason
	}
	return Sample{
		Time:      t,
		Box:       p.str(box),
		Component: p.str(component),
		Metric:    p.str(metric),
		Value:     v,
	}, ""
}

// str returns b as a string, sharing one copy between repeats of the same name.
func (p *parser) str(b []byte) string {
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	if len(p.intern) >= 1<<16 {
		clear(p.intern)
	}
	s := string(b)
	p.intern[s] = s
	return s
}

func (p *parser) reject(reason string) {
	p.res.Rejected++
	if len(p.res.Errors) < p.maxErrors {
		p.res.Errors = append(p.res.Errors, LineError{File: p.name, Line: p.lineNo, Reason: reason})
	}
}

func (p *parser) accept(s Sample) error {
	p.res.Accepted++
	if p.res.First.IsZero() || s.Time.Before(p.res.First) {
		p.res.First = s.Time
	}
	if s.Time.After(p.res.Last) {
		p.res.Last = s.Time
	}
	if _, ok := p.boxes[s.Box]; !ok {
		if len(p.boxes) < p.maxBoxes {
			p.boxes[s.Box] = struct{}{}
		} else {
			p.res.BoxesTruncated = true
		}
	}
	if p.chunk == nil {
		p.chunk = make([]Sample, 0, p.chunkSize)
	}
	p.chunk = append(p.chunk, s)
	if len(p.chunk) >= p.chunkSize {
		return p.flush()
	}
	return nil
}

// flush hands the pending chunk to emit.
func (p *parser) flush() error {
	if len(p.chunk) == 0 {
		return nil
	}
	chunk := p.chunk
	p.chunk = nil
	if p.emit == nil {
		p.chunk = chunk[:0] // nobody keeps it: reuse
		return nil
	}
	if err := p.emit(chunk); err != nil {
		return fmt.Errorf("emit samples of %s: %w", p.name, err)
	}
	return nil
}

// parseTime accepts RFC 3339 with an optional fraction, and unix seconds as
// an integer or a decimal, and checks the time is plausible.
func (p *parser) parseTime(b []byte) (time.Time, string) {
	t, ok := parseUnix(b)
	if !ok {
		var err error
		t, err = time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			return time.Time{}, fmt.Sprintf("time %s is not RFC 3339 or unix seconds", quote(b))
		}
	}
	t = t.UTC()
	if t.Before(minTime) {
		return time.Time{}, fmt.Sprintf("time %s is before 2000", t.Format(time.RFC3339Nano))
	}
	if t.After(p.now.Add(p.skew)) {
		return time.Time{}, fmt.Sprintf("time %s is more than %s in the future", t.Format(time.RFC3339Nano), p.skew)
	}
	return t, ""
}

// parseUnix parses unix seconds: digits, optionally followed by a dot and
// more digits (fractions finer than a nanosecond are truncated).
func parseUnix(b []byte) (time.Time, bool) {
	intPart, frac, hasDot := bytes.Cut(b, []byte{'.'})
	if len(intPart) == 0 || len(intPart) > 12 || (hasDot && len(frac) == 0) {
		return time.Time{}, false
	}
	var sec, nsec int64
	for _, c := range intPart {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		sec = sec*10 + int64(c-'0')
	}
	scale := int64(1e8)
	for _, c := range frac {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		nsec += int64(c-'0') * scale
		scale /= 10
	}
	return time.Unix(sec, nsec), true
}

func checkBox(b []byte) string {
	if len(b) == 0 {
		return "empty box"
	}
	ok := len(b) <= MaxNameBytes
	for _, c := range b {
		if !ok {
			break
		}
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-'
	}
	if !ok {
		return fmt.Sprintf("box %s is not 1 to 128 of A-Z a-z 0-9 . _ : -", quote(b))
	}
	return ""
}

func checkMetric(b []byte) string {
	if len(b) == 0 {
		return "empty metric"
	}
	ok := len(b) <= MaxNameBytes
	for _, c := range b {
		if !ok {
			break
		}
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_'
	}
	if !ok {
		return fmt.Sprintf("metric %s is not 1 to 128 of a-z 0-9 . _", quote(b))
	}
	return ""
}

func checkComponent(b []byte) string {
	if len(b) == 0 {
		return "empty component"
	}
	if len(b) > MaxNameBytes {
		return fmt.Sprintf("component is longer than %d bytes", MaxNameBytes)
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return fmt.Sprintf("component %s has whitespace or control characters", quote(b))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Sprintf("component %s is not valid UTF-8", quote(b))
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Sprintf("component %s has whitespace or control characters", quote(b))
		}
		i += size
	}
	return ""
}

// parseValue accepts a finite decimal number.
func parseValue(b []byte) (float64, string) {
	decimal := len(b) > 0
	for _, c := range b {
		if !('0' <= c && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			decimal = false
			break
		}
	}
	if !decimal {
		switch strings.ToLower(strings.TrimLeft(string(b), "+-")) {
		case "nan", "inf", "infinity":
			return 0, fmt.Sprintf("value %s is not finite", quote(b))
		}
		return 0, fmt.Sprintf("value %s is not a number", quote(b))
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Sprintf("value %s is out of range", quote(b))
		}
		return 0, fmt.Sprintf("value %s is not a number", quote(b))
	}
	return v, ""
}

// quote returns a short excerpt of b for an error message: quoteString.
func quote(b []byte) string {
	if len(b) > ExcerptBytes {
		// Only the bytes quoteString may keep are copied, and one more
		// so that it still sees the value was cut.
		return quoteString(string(b[:min(len(b), ExcerptBytes+1)]))
	}
	return strconv.Quote(string(b))
}

// ExcerptBytes bounds how much of a rejected value or line an error quotes.
const ExcerptBytes = 32

// quoteString is quote for a string: at most ExcerptBytes of s (cut at a
// character boundary), Go-quoted so that control and non-printable
// characters are escaped, with "..." when cut.
func quoteString(s string) string {
	if len(s) <= ExcerptBytes {
		return strconv.Quote(s)
	}
	cut := ExcerptBytes
	for cut > ExcerptBytes-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
