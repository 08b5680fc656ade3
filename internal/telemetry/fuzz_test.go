package telemetry

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics, that every data line is either
// accepted or rejected, and that emitted samples match the accepted count.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		CSVHeader + "\n2024-01-01T00:00:00Z,b1,pool/x,pool.used_bytes,5\n",
		"value,metric,component,box,time\n1,m,c,b,1704067200.5\n\"x\n,,,,\n",
		`{"time":"2024-01-01T00:00:00Z","box":"b1","component":"c","metric":"m","value":1}` + "\n{\"a\":[{}]}\n{\n",
		`{"time":1704067200,"box":"b\u0031","component":"c","metric":"m","value":-0.5e3,"box":1}`,
		"[1,2]",
		"\x1f\x8b\x08\x00",
		"time,box\x00",
	}
	for _, s := range seeds {
		f.Add([]byte(s), 3)
	}
	f.Add(gzipBytes(f, []byte(CSVHeader+"\n2024-01-01T00:00:00Z,b1,c,m,1\nbad\n")), 1)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		emitted := int64(0)
		res, _ := Parse(bytes.NewReader(in), Options{Now: testNow, ChunkSize: chunk % 8, MaxErrors: 4}, func(c []Sample) error {
			if len(c) == 0 {
				t.Fatal("empty chunk emitted")
			}
			emitted += int64(len(c))
			return nil
		})
		if res.Accepted+res.Rejected != res.Lines {
			t.Fatalf("accepted %d + rejected %d != lines %d", res.Accepted, res.Rejected, res.Lines)
		}
		if emitted != res.Accepted {
			t.Fatalf("emitted %d samples, accepted %d", emitted, res.Accepted)
		}
		if len(res.Errors) > 4 || int64(len(res.Errors)) > res.Rejected {
			t.Fatalf("%d errors kept for %d rejected", len(res.Errors), res.Rejected)
		}
	})
}
