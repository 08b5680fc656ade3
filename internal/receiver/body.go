package receiver

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// validated is a body that passed validation, written to a temporary file.
type validated struct {
	id   string // hex sha256 of the bytes as sent
	size int64  // bytes as sent
	res  telemetry.Result
}

var (
	errBodyTooLarge     = errors.New("body too large")
	errInflatedTooLarge = errors.New("inflated body too large")
)

// limitReader reads at most n bytes of r and fails with err on the next one:
// unlike io.LimitReader it tells a body that ends at the limit from one that
// goes on past it.
type limitReader struct {
	r   io.Reader
	n   int64 // bytes still allowed
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, l.err
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		// Read one byte past the limit: the body is too large.
		return n - 1, l.err
	}
	return n, err
}

// spoolWriter writes to the temporary file and the hash, and keeps the
// file's error apart: a full disk is the receiver's failure, not the body's.
type spoolWriter struct {
	f    *os.File
	h    io.Writer
	n    int64
	ferr error
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.ferr != nil {
		return 0, w.ferr
	}
	if _, err := w.f.Write(p); err != nil {
		w.ferr = err
		return 0, err
	}
	_, _ = w.h.Write(p)
	w.n += int64(len(p))
	return len(p), nil
}

// wrongBoxError stops the parse at the first sample of another box.
type wrongBoxError struct{ box string }

func (e *wrongBoxError) Error() string { return "sample of box " + e.box }

// validate reads body into f while hashing it, and checks it: not larger
// than the limits, telemetry that the parser accepts, every sample of
// src.Box (when set), not mostly bad lines.
func (in *Intake) validate(src Source, body io.Reader, f *os.File) (validated, error) {
	h := sha256.New()
	spool := &spoolWriter{f: f, h: h}
	lim := &limitReader{r: body, n: in.Limits.MaxBody, err: errBodyTooLarge}
	raw := bufio.NewReaderSize(io.TeeReader(lim, spool), 64*1024)
	name := src.Name
	if src.Kind == store.SourceHTTP || name == "" {
		name = "body"
	}
	opts := telemetry.Options{
		Name: name, Now: in.now(), MaxFutureSkew: in.Limits.MaxFutureSkew, MaxErrors: in.Limits.MaxErrors,
	}
	emit := func(chunk []telemetry.Sample) error {
		if src.Box == "" {
			return nil
		}
		for _, s := range chunk {
			if s.Box != src.Box {
				return &wrongBoxError{box: s.Box}
			}
		}
		return nil
	}
	res, err := in.parse(src, raw, opts, emit)
	if err == nil {
		// Hash (and keep) whatever the parser did not need to read.
		_, err = io.Copy(io.Discard, raw)
	}
	if spool.ferr != nil {
		return validated{}, in.unavailable("cannot take the body: temporary file", spool.ferr)
	}
	if err != nil {
		return validated{}, in.classify(src, err)
	}
	if res.Lines == 0 {
		return validated{}, reject(http.StatusUnprocessableEntity, "%s: no samples, only a header", name)
	}
	if ratio := res.RejectRatio(); ratio > in.Limits.MaxRejectRatio {
		return validated{}, reject(http.StatusUnprocessableEntity,
			"%s: %d of %d lines rejected (%.0f%% > %.0f%% allowed); first: %s",
			name, res.Rejected, res.Lines, ratio*100, in.Limits.MaxRejectRatio*100, firstErrors(res, 3))
	}
	return validated{id: hex.EncodeToString(h.Sum(nil)), size: spool.n, res: res}, nil
}

// parse runs the telemetry parser over the body, gunzipping it first when
// it is gzip so that the inflated size is bounded.
func (in *Intake) parse(src Source, raw *bufio.Reader, opts telemetry.Options, emit func([]telemetry.Sample) error) (telemetry.Result, error) {
	magic, _ := raw.Peek(2)
	isGzip := len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	if src.Gzip && !isGzip {
		if _, err := raw.Peek(1); err != nil && !errors.Is(err, io.EOF) {
			return telemetry.Result{}, err
		}
		return telemetry.Result{}, reject(http.StatusBadRequest, "%s: Content-Encoding is gzip, but the body is not gzip", opts.Name)
	}
	if !isGzip {
		return telemetry.Parse(raw, opts, emit)
	}
	gz, err := gzip.NewReader(raw)
	if err != nil {
		return telemetry.Result{}, err
	}
	defer gz.Close()
	inflated := bufio.NewReaderSize(&limitReader{r: gz, n: in.Limits.MaxInflated, err: errInflatedTooLarge}, 64*1024)
	if m, _ := inflated.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		return telemetry.Result{}, reject(http.StatusUnsupportedMediaType, "unsupported format: %s: gzip inside gzip", opts.Name)
	}
	res, err := telemetry.Parse(inflated, opts, emit)
	if err == nil {
		// Read the gzip stream to its end, so that its checksum is verified.
		_, err = io.Copy(io.Discard, inflated)
	}
	res.Format.Gzip = true
	return res, err
}

// classify turns an error of reading or parsing a body into the answer.
func (in *Intake) classify(src Source, err error) error {
	var rej *RejectError
	var wrong *wrongBoxError
	var flateErr flate.CorruptInputError
	var netErr net.Error
	switch {
	case errors.As(err, &rej):
		return rej
	case errors.Is(err, errBodyTooLarge):
		return reject(http.StatusRequestEntityTooLarge, "body too large: more than %d bytes (receiver.max_body)", in.Limits.MaxBody)
	case errors.Is(err, errInflatedTooLarge):
		return reject(http.StatusRequestEntityTooLarge, "body too large once gunzipped: more than %d bytes (receiver.max_inflated)", in.Limits.MaxInflated)
	case errors.As(err, &wrong):
		return reject(http.StatusForbidden, "wrong box: the body has samples of box %q; this credential is for box %q", wrong.box, src.Box)
	case errors.Is(err, telemetry.ErrNotTelemetry):
		return reject(http.StatusUnsupportedMediaType, "unsupported format: %v (CSV or JSON Lines, gzip or not)", err)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &flateErr):
		return reject(http.StatusBadRequest, "corrupt gzip stream: %v", err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return reject(http.StatusRequestTimeout, "body not received in time: %v", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return reject(http.StatusBadRequest, "body truncated: %v", err)
	}
	return reject(http.StatusBadRequest, "read body: %v", err)
}

func firstErrors(res telemetry.Result, n int) string {
	var s []string
	for i, e := range res.Errors {
		if i == n {
			break
		}
		s = append(s, e.Error())
	}
	return strings.Join(s, "; ")
}

// String names a source in logs.
func (s Source) String() string {
	if s.Box == "" {
		return fmt.Sprintf("%s %s", s.Kind, s.Name)
	}
	return fmt.Sprintf("%s %s (box %s)", s.Kind, s.Name, s.Box)
}
