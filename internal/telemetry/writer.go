package telemetry

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Format kinds.
const (
	KindCSV   = "csv"
	KindJSONL = "jsonl"
)

// CSVHeader is the header line of a CSV batch, in the order the Writer uses.
const CSVHeader = "time,box,component,metric,value"

// Format says how a batch is encoded: Kind is KindCSV or KindJSONL, and Gzip
// says whether the stream is gzip-compressed.
type Format struct {
	Kind string `json:"kind"`
	Gzip bool   `json:"gzip"`
}

// String returns "csv", "jsonl", "csv+gzip" or "jsonl+gzip".
func (f Format) String() string {
	if f.Gzip {
		return f.Kind + "+gzip"
	}
	return f.Kind
}

// Ext returns the file name extension of the format: ".csv", ".jsonl",
// ".csv.gz" or ".jsonl.gz".
func (f Format) Ext() string {
	if f.Gzip {
		return "." + f.Kind + ".gz"
	}
	return "." + f.Kind
}

// FormatForPath returns the format named by the extension of path (.csv,
// .jsonl, .csv.gz or .jsonl.gz, any case).
func FormatForPath(path string) (Format, error) {
	p := strings.ToLower(path)
	switch {
	case strings.HasSuffix(p, ".csv.gz"):
		return Format{Kind: KindCSV, Gzip: true}, nil
	case strings.HasSuffix(p, ".jsonl.gz"):
		return Format{Kind: KindJSONL, Gzip: true}, nil
	case strings.HasSuffix(p, ".csv"):
		return Format{Kind: KindCSV}, nil
	case strings.HasSuffix(p, ".jsonl"):
		return Format{Kind: KindJSONL}, nil
	}
	return Format{}, fmt.Errorf("detect format of %q: extension is not .csv, .jsonl, .csv.gz or .jsonl.gz", path)
}

// Writer encodes samples as a batch in one Format. It buffers; call Close to
// flush. It is not safe for concurrent use.
type Writer struct {
	f   Format
	gz  *gzip.Writer
	bw  *bufio.Writer
	buf []byte
	err error
}

// NewWriter returns a Writer that encodes samples to w in format f. A CSV
// batch starts with the header time,box,component,metric,value; a JSON Lines
// batch has one object {"time":...,"box":...,"component":...,"metric":...,
// "value":...} per line. Times are RFC 3339 in UTC, with a fraction only when
// it is not zero. With f.Gzip the stream is gzip-compressed. An unknown
// f.Kind makes every Write and Close fail.
func NewWriter(w io.Writer, f Format) *Writer {
	wr := &Writer{f: f, buf: make([]byte, 0, 256)}
	if f.Kind != KindCSV && f.Kind != KindJSONL {
		wr.err = fmt.Errorf("create writer: unknown format kind %q, want csv or jsonl", f.Kind)
		return wr
	}
	dst := w
	if f.Gzip {
		wr.gz = gzip.NewWriter(w)
		dst = wr.gz
	}
	wr.bw = bufio.NewWriterSize(dst, 64*1024)
	if f.Kind == KindCSV {
		_, _ = wr.bw.WriteString(CSVHeader + "\n") // a write error sticks in bw and is returned later
	}
	return wr
}

// Write encodes one sample. A value that is NaN or infinite is refused, since
// no parser would accept it back.
func (w *Writer) Write(s Sample) error {
	if w.err != nil {
		return w.err
	}
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return fmt.Errorf("write sample: value %v is not finite", s.Value)
	}
	b := w.buf[:0]
	if w.f.Kind == KindCSV {
		b = s.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ',')
		b = appendCSVField(b, s.Box)
		b = append(b, ',')
		b = appendCSVField(b, s.Component)
		b = append(b, ',')
		b = appendCSVField(b, s.Metric)
		b = append(b, ',')
		b = appendFloat(b, s.Value)
	} else {
		b = append(b, `{"time":"`...)
		b = s.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","box":`...)
		b = appendJSONString(b, s.Box)
		b = append(b, `,"component":`...)
		b = appendJSONString(b, s.Component)
		b = append(b, `,"metric":`...)
		b = appendJSONString(b, s.Metric)
		b = append(b, `,"value":`...)
		b = appendFloat(b, s.Value)
		b = append(b, '}')
	}
	b = append(b, '\n')
	w.buf = b
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write sample: %w", err)
		return w.err
	}
	return nil
}

// Close flushes buffered data and ends the gzip stream, if any. It does not
// close the underlying writer. Calling Close again returns the first result.
func (w *Writer) Close() error {
	if w.err != nil {
		if errors.Is(w.err, errWriterClosed) {
			return nil
		}
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("flush batch: %w", err)
		return w.err
	}
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			w.err = fmt.Errorf("close gzip stream: %w", err)
			return w.err
		}
	}
	w.err = errWriterClosed
	return nil
}

var errWriterClosed = errors.New("write sample: writer is closed")

// appendFloat formats v the way encoding/json does: plain decimal for
// ordinary magnitudes, exponent form for very large or small ones.
func appendFloat(b []byte, v float64) []byte {
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendCSVField appends s, quoted when it holds a comma, a quote, a line
// break or leading/trailing spaces.
func appendCSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") && strings.TrimSpace(s) == s {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as in encoding/json.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
