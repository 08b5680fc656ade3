package store

import (
	"cmp"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/telemetry"
)

// Samples are kept in two tiers (schema version 9). A run of a series'
// samples that arrives together (minChunkPoints or more in one append, as
// a batch file carries them) is written as one compressed chunk row in
// sample_chunks; the odd sample (a box posting every few minutes) is a row
// of samples. SealSamples later merges each closed UTC day of a series,
// chunks and rows, into one sealed chunk. A row takes precedence over a
// chunk at the same time: a chunk is only written where its series has
// nothing stored in the chunk's time range, and samples appended over a
// stored chunk go to rows.
//
// The encoding is written here rather than taken from a library:
// Prometheus' XOR chunks (tsdb/chunkenc) keep millisecond timestamps where
// sanwatch keeps nanoseconds, and pulling in the Prometheus module upgrades
// the Kubernetes and OpenTelemetry modules that the in-process Temporal
// server is built against (tried with v0.316.0). VictoriaMetrics' encoding
// package has the same cost.
//
// Chunk layout (version 1):
//
//	byte    version (1)
//	byte    time unit: 0 ns, 1 µs, 2 ms, 3 s (every time is a multiple of it)
//	byte    value mode: 0 XOR of float bits; 1+k decimal with k digits
//	uvarint n, the number of samples (>= 1)
//	varint  first time in units, then n-1 delta-of-deltas
//	values  mode 0: the first value's 8 bytes, then per value a control
//	        byte, 0 for the same bits as the previous value, else
//	        0x80 | leading zero bytes << 3 | trailing zero bytes of the XOR
//	        with the previous value, followed by its middle bytes;
//	        mode 1+k: varint of the first value × 10^k, then varint deltas
//
// A regular series costs one byte per time, and a value with a few decimal
// digits one to three bytes.

// chunkVersion is the version byte of the layout above.
const chunkVersion = 1

// minChunkPoints is the fewest samples of one series and day in one append
// that are written as a chunk rather than as rows.
const minChunkPoints = 4

// dayNanos is one UTC day in nanoseconds; chunks never span two.
const dayNanos = int64(24 * 60 * 60 * 1e9)

// dayOf returns the start of the UTC day holding ts (unix nanoseconds).
func dayOf(ts int64) int64 {
	d := ts / dayNanos
	if ts%dayNanos < 0 {
		d--
	}
	return d * dayNanos
}

// chunkFloor returns the earliest start of a chunk that can hold samples at
// or after from: a chunk starts in the day of its samples.
func chunkFloor(from int64) int64 {
	if from < math.MinInt64+dayNanos {
		return math.MinInt64
	}
	return dayOf(from)
}

// latestOf returns the later of a box's newest row and newest chunk end,
// or ErrNotFound when it has neither.
func latestOf(box string, row, chunk sql.NullInt64) (time.Time, error) {
	switch {
	case !row.Valid && !chunk.Valid:
		return time.Time{}, fmt.Errorf("latest sample of %s: %w", box, ErrNotFound)
	case !row.Valid:
		return fromNanos(chunk.Int64), nil
	case !chunk.Valid:
		return fromNanos(row.Int64), nil
	}
	return fromNanos(max(row.Int64, chunk.Int64)), nil
}

// timeUnits are the units a chunk's times may be kept in, coarsest last.
var timeUnits = [...]int64{1, 1e3, 1e6, 1e9}

// maxDecimals is the most decimal digits the decimal value mode keeps.
const maxDecimals = 9

// decimalLimit bounds |value × 10^k| in decimal mode: every integer up to
// 2^53 is exact as a float64, so the division back is exact too.
const decimalLimit = 1 << 53

// errCorruptChunk is returned when a chunk cannot be decoded.
var errCorruptChunk = errors.New("corrupt sample chunk")

// encodeChunk encodes len(ts) >= 1 samples, ts strictly increasing.
func encodeChunk(ts []int64, vs []float64) []byte {
	unit := 0
	for u := len(timeUnits) - 1; u > 0; u-- {
		ok := true
		for _, t := range ts {
			if t%timeUnits[u] != 0 {
				ok = false
				break
			}
		}
		if ok {
			unit = u
			break
		}
	}
	k, scaled := decimalValues(vs)
	mode := byte(0)
	if k >= 0 {
		mode = byte(1 + k)
	}
	buf := make([]byte, 0, 16+2*len(ts)+3*len(vs))
	buf = append(buf, chunkVersion, byte(unit), mode)
	buf = binary.AppendUvarint(buf, uint64(len(ts)))
	div := timeUnits[unit]
	prev, prevDelta := ts[0]/div, int64(0)
	buf = binary.AppendVarint(buf, prev)
	for _, t := range ts[1:] {
		t /= div
		d := t - prev
		buf = binary.AppendVarint(buf, d-prevDelta)
		prev, prevDelta = t, d
	}
	if k >= 0 {
		last := int64(0)
		for _, s := range scaled {
			buf = binary.AppendVarint(buf, s-last)
			last = s
		}
		return buf
	}
	prevBits := math.Float64bits(vs[0])
	buf = binary.BigEndian.AppendUint64(buf, prevBits)
	for _, v := range vs[1:] {
		b := math.Float64bits(v)
		x := b ^ prevBits
		prevBits = b
		if x == 0 {
			buf = append(buf, 0)
			continue
		}
		lead, trail := bits.LeadingZeros64(x)/8, bits.TrailingZeros64(x)/8
		buf = append(buf, 0x80|byte(lead)<<3|byte(trail))
		for i := 7 - lead; i >= trail; i-- {
			buf = append(buf, byte(x>>(8*i)))
		}
	}
	return buf
}

// decimalValues returns the fewest decimal digits k that keep every value
// exactly as value × 10^k, an integer, and those integers; k is -1 when no
// k up to maxDecimals does (noisy measurements, NaN, infinities, -0).
func decimalValues(vs []float64) (int, []int64) {
	k := 0
	for _, v := range vs {
		for ; k <= maxDecimals; k++ {
			if _, ok := scaleExact(v, k); ok {
				break
			}
		}
		if k > maxDecimals {
			return -1, nil
		}
	}
	out := make([]int64, len(vs))
	for i, v := range vs {
		s, ok := scaleExact(v, k)
		if !ok { // exact at fewer digits yet not at k: keep the bits
			return -1, nil
		}
		out[i] = s
	}
	return k, out
}

// scaleExact returns v × 10^k as an integer when dividing it by 10^k gives
// back exactly v.
func scaleExact(v float64, k int) (int64, bool) {
	if v == 0 && math.Signbit(v) { // -0 would come back as 0
		return 0, false
	}
	p := math.Pow10(k)
	r := math.Round(v * p)
	if math.IsNaN(r) || math.Abs(r) > decimalLimit {
		return 0, false
	}
	if math.Float64bits(r/p) != math.Float64bits(v) {
		return 0, false
	}
	return int64(r), true
}

// decodeChunk returns the times and values of a chunk.
func decodeChunk(data []byte) ([]int64, []float64, error) {
	if len(data) < 4 || data[0] != chunkVersion || int(data[1]) >= len(timeUnits) || data[2] > 1+maxDecimals {
		return nil, nil, fmt.Errorf("%w: bad header", errCorruptChunk)
	}
	div, mode := timeUnits[data[1]], data[2]
	p := data[3:]
	n, w := binary.Uvarint(p)
	// Every sample takes at least two bytes, one time and one value.
	if w <= 0 || n == 0 || n > uint64(len(p)) {
		return nil, nil, fmt.Errorf("%w: bad count", errCorruptChunk)
	}
	p = p[w:]
	ts := make([]int64, n)
	vs := make([]float64, n)
	var prev, delta int64
	for i := range ts {
		d, w := binary.Varint(p)
		if w <= 0 {
			return nil, nil, fmt.Errorf("%w: time %d", errCorruptChunk, i)
		}
		p = p[w:]
		if i == 0 {
			prev = d
		} else {
			delta += d
			prev += delta
		}
		ts[i] = prev * div
	}
	if mode > 0 {
		scale := math.Pow10(int(mode - 1))
		var s int64
		for i := range vs {
			d, w := binary.Varint(p)
			if w <= 0 {
				return nil, nil, fmt.Errorf("%w: value %d", errCorruptChunk, i)
			}
			p = p[w:]
			s += d
			vs[i] = float64(s) / scale
		}
		return ts, vs, nil
	}
	if len(p) < 8 {
		return nil, nil, fmt.Errorf("%w: first value", errCorruptChunk)
	}
	prevBits := binary.BigEndian.Uint64(p)
	p = p[8:]
	vs[0] = math.Float64frombits(prevBits)
	for i := 1; i < len(vs); i++ {
		if len(p) == 0 {
			return nil, nil, fmt.Errorf("%w: value %d", errCorruptChunk, i)
		}
		c := p[0]
		p = p[1:]
		if c != 0 {
			lead, trail := int(c>>3&7), int(c&7)
			if c&0x80 == 0 || lead+trail > 7 || len(p) < 8-lead-trail {
				return nil, nil, fmt.Errorf("%w: value %d", errCorruptChunk, i)
			}
			var x uint64
			for j := 7 - lead; j >= trail; j-- {
				x |= uint64(p[0]) << (8 * j)
				p = p[1:]
			}
			prevBits ^= x
		}
		vs[i] = math.Float64frombits(prevBits)
	}
	return ts, vs, nil
}

// chunkRun is rows[lo:hi] of a prepared append: one series and UTC day,
// to be written as one chunk.
type chunkRun struct {
	series     int // index of the series in the append's keys
	lo, hi     int
	tMin, tMax int64
	data       []byte
}

// planChunks splits prepared rows (sorted by series and time, of[i] the
// series of row i) into runs of one series and UTC day. Runs of at least
// minChunkPoints become chunks; the indexes of the other rows are returned
// in rest, in order.
func planChunks(rows []telemetry.Sample, ts []int64, of []int) (chunks []chunkRun, rest []int) {
	for lo := 0; lo < len(rows); {
		day := dayOf(ts[lo])
		hi := lo + 1
		for hi < len(rows) && of[hi] == of[lo] && ts[hi] < day+dayNanos {
			hi++
		}
		if hi-lo < minChunkPoints {
			for i := lo; i < hi; i++ {
				rest = append(rest, i)
			}
			lo = hi
			continue
		}
		vs := make([]float64, hi-lo)
		for i := lo; i < hi; i++ {
			vs[i-lo] = rows[i].Value
		}
		chunks = append(chunks, chunkRun{series: of[lo], lo: lo, hi: hi, tMin: ts[lo], tMax: ts[hi-1], data: encodeChunk(ts[lo:hi], vs)})
		lo = hi
	}
	return chunks, rest
}

// unchunk returns rest with the rows of the given chunks added, in order:
// chunks that found their range taken go to rows instead.
func unchunk(rest []int, chunks []chunkRun) []int {
	if len(chunks) == 0 {
		return rest
	}
	for _, c := range chunks {
		for i := c.lo; i < c.hi; i++ {
			rest = append(rest, i)
		}
	}
	slices.Sort(rest)
	return rest
}

// appendDecoded decodes a chunk of box/component/metric and appends its
// samples with from <= time < to (unix nanoseconds) to out.
func appendDecoded(out []telemetry.Sample, data []byte, box, component, metric string, from, to int64) ([]telemetry.Sample, error) {
	ts, vs, err := decodeChunk(data)
	if err != nil {
		return out, fmt.Errorf("%s %s %s: %w", box, component, metric, err)
	}
	for i, t := range ts {
		if t >= from && t < to {
			out = append(out, telemetry.Sample{Box: box, Component: component, Metric: metric, Time: fromNanos(t), Value: vs[i]})
		}
	}
	return out, nil
}

// windowRows is what the window reads of both stores scan: *sql.Rows and
// pgx.Rows alike.
type windowRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanWindowRows reads box's rows (component, metric, ts, value).
func scanWindowRows(box string, rows windowRows) ([]telemetry.Sample, error) {
	var out []telemetry.Sample
	for rows.Next() {
		smp := telemetry.Sample{Box: box}
		var ts int64
		if err := rows.Scan(&smp.Component, &smp.Metric, &ts, &smp.Value); err != nil {
			return nil, fmt.Errorf("query window of %s: %w", box, err)
		}
		smp.Time = fromNanos(ts)
		out = append(out, smp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query window of %s: %w", box, err)
	}
	return out, nil
}

// scanWindowChunks reads box's chunks (component, metric, data) and
// returns their samples in [from, to).
func scanWindowChunks(box string, rows windowRows, from, to int64) ([]telemetry.Sample, error) {
	var out []telemetry.Sample
	for rows.Next() {
		var c, m string
		var data []byte
		if err := rows.Scan(&c, &m, &data); err != nil {
			return nil, fmt.Errorf("query window chunks of %s: %w", box, err)
		}
		var err error
		if out, err = appendDecoded(out, data, box, c, m, from, to); err != nil {
			return nil, fmt.Errorf("query window of %s: %w", box, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query window chunks of %s: %w", box, err)
	}
	return out, nil
}

// compareSamples orders samples of one box by component, metric and time.
func compareSamples(a, b telemetry.Sample) int {
	return cmp.Or(strings.Compare(a.Component, b.Component), strings.Compare(a.Metric, b.Metric), a.Time.Compare(b.Time))
}

// mergeTiers merges the rows of a window (sorted by component, metric,
// time) with the samples decoded from its chunks (in order of component,
// metric and chunk start). A row wins over a chunk's sample with the same
// key, and of two chunks holding one key (two writers on PostgreSQL racing
// to chunk the same range) the later-starting one.
func mergeTiers(rows, chunked []telemetry.Sample) []telemetry.Sample {
	if len(chunked) == 0 {
		return rows
	}
	sorted := true
	for i := 1; i < len(chunked); i++ {
		if compareSamples(chunked[i-1], chunked[i]) >= 0 {
			sorted = false
			break
		}
	}
	if !sorted {
		slices.SortStableFunc(chunked, compareSamples)
		kept := chunked[:0]
		for i, s := range chunked {
			if i+1 < len(chunked) && compareSamples(s, chunked[i+1]) == 0 {
				continue // the later one wins
			}
			kept = append(kept, s)
		}
		chunked = kept
	}
	if len(rows) == 0 {
		return chunked
	}
	out := make([]telemetry.Sample, 0, len(rows)+len(chunked))
	i, j := 0, 0
	for i < len(rows) && j < len(chunked) {
		switch c := compareSamples(rows[i], chunked[j]); {
		case c < 0:
			out = append(out, rows[i])
			i++
		case c > 0:
			out = append(out, chunked[j])
			j++
		default:
			out = append(out, rows[i])
			i++
			j++
		}
	}
	out = append(out, rows[i:]...)
	return append(out, chunked[j:]...)
}

// sealedDay merges the chunks and rows of one series and day as reads
// would see them and returns the chunk that replaces them all.
func sealedDay(chunks [][]byte, rows []telemetry.Sample) (tMin, tMax int64, n int, data []byte, err error) {
	var chunked []telemetry.Sample
	for _, c := range chunks {
		if chunked, err = appendDecoded(chunked, c, "", "", "", math.MinInt64, math.MaxInt64); err != nil {
			return 0, 0, 0, nil, err
		}
	}
	all := mergeTiers(rows, chunked)
	if len(all) == 0 {
		return 0, 0, 0, nil, nil
	}
	ts := make([]int64, len(all))
	vs := make([]float64, len(all))
	for i, s := range all {
		ts[i], vs[i] = s.Time.UnixNano(), s.Value
	}
	return ts[0], ts[len(ts)-1], len(ts), encodeChunk(ts, vs), nil
}
