package telemetry

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// repeatReader yields header once, then block over and over until size bytes
// of blocks were produced. It generates the stream on the fly.
type repeatReader struct {
	header, block []byte
	left          int64 // bytes of blocks still to produce
	off           int   // offset in header, then in block
	inHeader      bool
}

func newRepeatReader(header, block []byte, blocks int64) *repeatReader {
	return &repeatReader{header: header, block: block, left: blocks * int64(len(block)), inHeader: len(header) > 0}
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.inHeader {
			c := copy(p[n:], r.header[r.off:])
			n += c
			r.off += c
			if r.off == len(r.header) {
				r.inHeader, r.off = false, 0
			}
			continue
		}
		if r.left == 0 {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		src := r.block[r.off:]
		if int64(len(src)) > r.left {
			src = src[:r.left]
		}
		c := copy(p[n:], src)
		n += c
		r.off = (r.off + c) % len(r.block)
		r.left -= int64(c)
	}
	return n, nil
}

// TestParseLargeStream parses streams of hundreds of MB generated on the fly
// (never on disk) and checks that the heap stays bounded.
func TestParseLargeStream(t *testing.T) {
	tests := []struct {
		name  string
		f     Format
		total int // bytes of (uncompressed) data lines
	}{
		{name: "csv 200 MB", f: Format{Kind: KindCSV}, total: 200 << 20},
		// Each block is its own gzip member: a multistream file. Smaller, to
		// keep the test fast; still well above the heap limit if samples were held.
		{name: "jsonl gzip 100 MB", f: Format{Kind: KindJSONL, Gzip: true}, total: 100 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
			var buf bytes.Buffer
			w := NewWriter(&buf, Format{Kind: tt.f.Kind})
			good := 0
			for i := range 2000 {
				s := Sample{
					Time:      base.Add(time.Duration(i) * time.Second),
					Box:       fmt.Sprintf("array-%04d", i%250),
					Component: fmt.Sprintf("disk/%d", i%24),
					Metric:    Catalogue[i%len(Catalogue)],
					Value:     float64(i) * 0.25,
				}
				require.NoError(t, w.Write(s))
				good++
			}
			require.NoError(t, w.Close())
			header, block := []byte(nil), buf.Bytes()
			if tt.f.Kind == KindCSV {
				header, block = block[:len(CSVHeader)+1], block[len(CSVHeader)+1:]
				block = append(block, "2024-06-01T00:00:00Z,array-0001,disk/1,disk.wear_pct,oops\n"...)
			} else {
				block = append(block, `{"time":"2024-06-01T00:00:00Z","box":"array-0001","component":"disk/1","metric":"disk.wear_pct","value":"oops"}`+"\n"...)
			}
			blocks := int64(tt.total / len(block))
			size := blocks * int64(len(block))
			if tt.f.Gzip {
				block = gzipBytes(t, block)
			}

			runtime.GC()
			var ms runtime.MemStats
			var maxHeap uint64
			calls := 0
			start := time.Now()
			res, err := Parse(newRepeatReader(header, block, blocks), Options{Name: "big" + tt.f.Ext(), Now: base}, func(c []Sample) error {
				calls++
				if calls%20 == 1 {
					runtime.ReadMemStats(&ms)
					maxHeap = max(maxHeap, ms.HeapInuse)
				}
				return nil
			})
			elapsed := time.Since(start)
			require.NoError(t, err)
			require.Equal(t, tt.f, res.Format)
			require.Equal(t, blocks*int64(good), res.Accepted)
			require.Equal(t, blocks, res.Rejected)
			require.Equal(t, res.Accepted+res.Rejected, res.Lines)
			require.Len(t, res.Boxes, 250)
			require.Len(t, res.Errors, DefaultMaxErrors)
			require.Less(t, maxHeap, uint64(64<<20), "heap in use")
			require.Greater(t, calls, 100, "heap sampled often enough")
			t.Logf("%d MB, %d samples in %v (%.0f MB/s), max heap in use %d MB",
				size>>20, res.Accepted, elapsed, float64(size)/1e6/elapsed.Seconds(), maxHeap>>20)
		})
	}
}
