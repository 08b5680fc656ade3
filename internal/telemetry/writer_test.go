package telemetry

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		want    Format
		wantStr string
		wantExt string
		wantErr string
	}{
		{name: "csv", path: "a/batch.csv", want: Format{Kind: KindCSV}, wantStr: "csv", wantExt: ".csv"},
		{name: "jsonl", path: "batch.jsonl", want: Format{Kind: KindJSONL}, wantStr: "jsonl", wantExt: ".jsonl"},
		{name: "csv gzip", path: "batch.csv.gz", want: Format{Kind: KindCSV, Gzip: true}, wantStr: "csv+gzip", wantExt: ".csv.gz"},
		{name: "jsonl gzip upper case", path: "BATCH.JSONL.GZ", want: Format{Kind: KindJSONL, Gzip: true}, wantStr: "jsonl+gzip", wantExt: ".jsonl.gz"},
		{name: "unknown", path: "batch.txt", wantErr: `detect format of "batch.txt": extension is not .csv, .jsonl, .csv.gz or .jsonl.gz`},
		{name: "bare gz", path: "batch.gz", wantErr: `detect format of "batch.gz": extension is not .csv, .jsonl, .csv.gz or .jsonl.gz`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FormatForPath(tt.path)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantStr, got.String())
			require.Equal(t, tt.wantExt, got.Ext())
			again, err := FormatForPath("x" + got.Ext())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

var writerSamples = []Sample{
	{Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), Box: "array-01", Component: "pool/ssd_r6", Metric: PoolUsedBytes, Value: 5e12},
	{Time: time.Date(2024, 5, 1, 14, 0, 0, 250_000_000, time.FixedZone("CEST", 2*3600)), Box: "array-01", Component: "port/0:1:1", Metric: PortCRCErrors, Value: 0.125},
	{Time: time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC), Box: "b2", Component: `vol,"x"`, Metric: "custom.metric", Value: -1e-9},
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		want string
	}{
		{
			name: "csv",
			f:    Format{Kind: KindCSV},
			want: "time,box,component,metric,value\n" +
				"2024-05-01T12:00:00Z,array-01,pool/ssd_r6,pool.used_bytes,5000000000000\n" +
				"2024-05-01T12:00:00.25Z,array-01,port/0:1:1,port.crc_errors,0.125\n" +
				"2024-05-01T12:00:01Z,b2,\"vol,\"\"x\"\"\",custom.metric,-1e-09\n",
		},
		{
			name: "jsonl",
			f:    Format{Kind: KindJSONL},
			want: `{"time":"2024-05-01T12:00:00Z","box":"array-01","component":"pool/ssd_r6","metric":"pool.used_bytes","value":5000000000000}` + "\n" +
				`{"time":"2024-05-01T12:00:00.25Z","box":"array-01","component":"port/0:1:1","metric":"port.crc_errors","value":0.125}` + "\n" +
				`{"time":"2024-05-01T12:00:01Z","box":"b2","component":"vol,\"x\"","metric":"custom.metric","value":-1e-09}` + "\n",
		},
	}
	for _, tt := range tests {
		for _, gz := range []bool{false, true} {
			f := tt.f
			f.Gzip = gz
			t.Run(f.String(), func(t *testing.T) {
				var buf bytes.Buffer
				w := NewWriter(&buf, f)
				for _, s := range writerSamples {
					require.NoError(t, w.Write(s))
				}
				require.NoError(t, w.Close())
				require.NoError(t, w.Close(), "second Close")
				require.EqualError(t, w.Write(writerSamples[0]), "write sample: writer is closed")
				out := buf.Bytes()
				if gz {
					require.Equal(t, []byte{0x1f, 0x8b}, out[:2])
					zr, err := gzip.NewReader(bytes.NewReader(out))
					require.NoError(t, err)
					out, err = io.ReadAll(zr)
					require.NoError(t, err)
				}
				require.Equal(t, tt.want, string(out))
			})
		}
	}
}

type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterErrors(t *testing.T) {
	t.Run("close leaves the underlying writer open", func(t *testing.T) {
		var rec closeRecorder
		w := NewWriter(&rec, Format{Kind: KindJSONL, Gzip: true})
		require.NoError(t, w.Write(writerSamples[0]))
		require.NoError(t, w.Close())
		require.False(t, rec.closed)
		require.NotZero(t, rec.Len())
	})
	t.Run("non-finite values are refused", func(t *testing.T) {
		for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			w := NewWriter(io.Discard, Format{Kind: KindCSV})
			s := writerSamples[0]
			s.Value = v
			require.EqualError(t, w.Write(s), "write sample: value "+formatValue(v)+" is not finite")
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		w := NewWriter(io.Discard, Format{Kind: "xml"})
		require.EqualError(t, w.Write(writerSamples[0]), `create writer: unknown format kind "xml", want csv or jsonl`)
		require.EqualError(t, w.Close(), `create writer: unknown format kind "xml", want csv or jsonl`)
	})
	t.Run("write error is reported by close", func(t *testing.T) {
		w := NewWriter(failingWriter{}, Format{Kind: KindCSV})
		require.NoError(t, w.Write(writerSamples[0]), "buffered")
		require.EqualError(t, w.Close(), "flush batch: disk full")
	})
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v > 0:
		return "+Inf"
	default:
		return "-Inf"
	}
}

func TestRoundTrip(t *testing.T) {
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	var want []Sample
	for i := range 12_345 {
		want = append(want, Sample{
			Time:      time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 1_000_000_123),
			Box:       []string{"array-01", "b.2", "site:x_3"}[i%3],
			Component: []string{"pool/ssd_r6", "disk/12", "port/0:1:1", "volume/ünïcode", `q"uote,comma`}[i%5],
			Metric:    Catalogue[i%len(Catalogue)],
			Value:     float64(i)*1.5 - 1000 + 1e-7*float64(i%7),
		})
	}
	for _, f := range []Format{{Kind: KindCSV}, {Kind: KindJSONL}, {Kind: KindCSV, Gzip: true}, {Kind: KindJSONL, Gzip: true}} {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, f)
			for _, s := range want {
				require.NoError(t, w.Write(s))
			}
			require.NoError(t, w.Close())
			var got []Sample
			res, err := Parse(&buf, Options{Name: "rt" + f.Ext(), Now: now}, func(chunk []Sample) error {
				got = append(got, chunk...)
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, f, res.Format)
			require.Equal(t, int64(len(want)), res.Accepted)
			require.Zero(t, res.Rejected, "%v", res.Errors)
			require.Equal(t, want, got)
			require.Equal(t, []string{"array-01", "b.2", "site:x_3"}, res.Boxes)
			require.Equal(t, want[0].Time, res.First)
			require.Equal(t, want[len(want)-1].Time, res.Last)
		})
	}
}

func TestRoundTripEscapes(t *testing.T) {
	s := Sample{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Box: "b", Component: "a\\b\"c/\u00e9", Metric: "m", Value: 1}
	var buf bytes.Buffer
	w := NewWriter(&buf, Format{Kind: KindJSONL})
	require.NoError(t, w.Write(s))
	require.NoError(t, w.Close())
	require.Equal(t, `{"time":"2024-01-01T00:00:00Z","box":"b","component":"a\\b\"c/é","metric":"m","value":1}`+"\n", buf.String())
	var got []Sample
	_, err := Parse(strings.NewReader(buf.String()), Options{Now: s.Time}, func(c []Sample) error { got = append(got, c...); return nil })
	require.NoError(t, err)
	require.Equal(t, []Sample{s}, got)
}
