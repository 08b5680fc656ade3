package telemetry

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// collect parses in and returns the result, the error and every emitted sample.
func collect(t testing.TB, in []byte, opts Options) (Result, error, []Sample) {
	t.Helper()
	var got []Sample
	res, err := Parse(bytes.NewReader(in), opts, func(c []Sample) error {
		got = append(got, c...)
		return nil
	})
	return res, err, got
}

func TestParseFormats(t *testing.T) {
	t1 := time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC)
	t2 := time.Date(2024, 12, 31, 23, 0, 1, 500_000_000, time.UTC)
	want := []Sample{
		{Time: t1, Box: "array-02", Component: "pool/ssd_r6", Metric: PoolUsedBytes, Value: 1.5e12},
		{Time: t2, Box: "array-01", Component: "disk/12", Metric: DiskWearPct, Value: 42},
	}
	csv := "time,box,component,metric,value\r\n" +
		"2024-12-31T23:00:00Z,array-02,pool/ssd_r6,pool.used_bytes,1.5e12\r\n" +
		"\r\n" +
		"1735686001.5, array-01 ,\"disk/12\",disk.wear_pct,42\n"
	jsonl := "\n  " + `{"time":"2024-12-31T23:00:00Z","box":"array-02","component":"pool/ssd_r6","metric":"pool.used_bytes","value":1.5e12}` + "\n" +
		"   \n" +
		`{ "value" : 42, "metric":"disk.wear_pct", "component":"disk\/12", "box":"array-01", "time": 1735686001.5 }`
	tests := []struct {
		name string
		in   []byte
		want Format
	}{
		{name: "csv", in: []byte(csv), want: Format{Kind: KindCSV}},
		{name: "csv with BOM", in: []byte("\ufeff" + csv), want: Format{Kind: KindCSV}},
		{name: "csv gzip", in: gzipBytes(t, []byte(csv)), want: Format{Kind: KindCSV, Gzip: true}},
		{name: "jsonl", in: []byte(jsonl), want: Format{Kind: KindJSONL}},
		{name: "jsonl gzip", in: gzipBytes(t, []byte(jsonl)), want: Format{Kind: KindJSONL, Gzip: true}},
		{name: "jsonl gzip multistream", in: append(gzipBytes(t, []byte(jsonl[:strings.Index(jsonl, "   \n")])), gzipBytes(t, []byte(jsonl[strings.Index(jsonl, "   \n"):]))...), want: Format{Kind: KindJSONL, Gzip: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err, got := collect(t, tt.in, Options{Name: "b", Now: testNow})
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, Result{
				Format: tt.want, Lines: 2, Accepted: 2,
				First: t1, Last: t2, Boxes: []string{"array-01", "array-02"},
			}, res)
			require.Zero(t, res.RejectRatio())
		})
	}
}

func TestParseHeaderPermutations(t *testing.T) {
	tests := []struct {
		name   string
		header string
		line   string
	}{
		{name: "canonical", header: "time,box,component,metric,value", line: "2024-01-01T00:00:00Z,b1,node/0,node.cpu_busy_pct,7"},
		{name: "reversed", header: "value,metric,component,box,time", line: "7,node.cpu_busy_pct,node/0,b1,2024-01-01T00:00:00Z"},
		{name: "shuffled", header: "box,value,time,metric,component", line: "b1,7,2024-01-01T00:00:00Z,node.cpu_busy_pct,node/0"},
		{name: "spaces and case", header: " Box , VALUE,time ,metric, component", line: "b1,7,2024-01-01T00:00:00Z,node.cpu_busy_pct,node/0"},
		{name: "quoted names", header: `"metric","time","value","box","component"`, line: "node.cpu_busy_pct,2024-01-01T00:00:00Z,7,b1,node/0"},
	}
	want := []Sample{{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Box: "b1", Component: "node/0", Metric: NodeCPUBusyPct, Value: 7}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err, got := collect(t, []byte(tt.header+"\n"+tt.line+"\n"), Options{Now: testNow})
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Accepted, "%v", res.Errors)
			require.Equal(t, want, got)
		})
	}
}

func TestParseRejectsLines(t *testing.T) {
	long := strings.Repeat("x", 129)
	tests := []struct {
		name  string
		csv   string // a data line of a CSV batch, after the canonical header
		jsonl string // or a line of a JSON Lines batch
		want  string
	}{
		{name: "too few fields", csv: "2024-01-01T00:00:00Z,b1,node/0,7", want: "wrong number of fields: got 4, want 5"},
		{name: "too many fields", csv: "2024-01-01T00:00:00Z,b1,node/0,m,7,8", want: "wrong number of fields: got 6, want 5"},
		{name: "unterminated quote", csv: `2024-01-01T00:00:00Z,b1,"node/0,m,7`, want: "unterminated quoted field"},
		{name: "bare quote", csv: `2024-01-01T00:00:00Z,b1,no"de,m,7`, want: "bare quote in unquoted field"},
		{name: "text after quote", csv: `2024-01-01T00:00:00Z,b1,"node"x,m,7`, want: "unexpected character after quoted field"},
		{name: "non-numeric value", csv: "2024-01-01T00:00:00Z,b1,node/0,m,seven", want: `value "seven" is not a number`},
		{name: "malformed number", csv: "2024-01-01T00:00:00Z,b1,node/0,m,1.2.3", want: `value "1.2.3" is not a number`},
		{name: "empty value", csv: "2024-01-01T00:00:00Z,b1,node/0,m,", want: `value "" is not a number`},
		{name: "hex value", csv: "2024-01-01T00:00:00Z,b1,node/0,m,0x10", want: `value "0x10" is not a number`},
		{name: "NaN", csv: "2024-01-01T00:00:00Z,b1,node/0,m,NaN", want: `value "NaN" is not finite`},
		{name: "Inf", csv: "2024-01-01T00:00:00Z,b1,node/0,m,-Inf", want: `value "-Inf" is not finite`},
		{name: "infinity", csv: "2024-01-01T00:00:00Z,b1,node/0,m,+infinity", want: `value "+infinity" is not finite`},
		{name: "overflow", csv: "2024-01-01T00:00:00Z,b1,node/0,m,1e999", want: `value "1e999" is out of range`},
		{name: "bad time", csv: "yesterday,b1,node/0,m,1", want: `time "yesterday" is not RFC 3339 or unix seconds`},
		{name: "time without zone", csv: "2024-01-01T00:00:00,b1,node/0,m,1", want: `time "2024-01-01T00:00:00" is not RFC 3339 or unix seconds`},
		{name: "negative unix", csv: "-5,b1,node/0,m,1", want: `time "-5" is not RFC 3339 or unix seconds`},
		{name: "unix with trailing dot", csv: "1700000000.,b1,node/0,m,1", want: `time "1700000000." is not RFC 3339 or unix seconds`},
		{name: "empty time", csv: ",b1,node/0,m,1", want: `time "" is not RFC 3339 or unix seconds`},
		{name: "far future", csv: "2025-01-01T01:00:01Z,b1,node/0,m,1", want: "time 2025-01-01T01:00:01Z is more than 1h0m0s in the future"},
		{name: "far future unix", csv: "1735693201,b1,node/0,m,1", want: "time 2025-01-01T01:00:01Z is more than 1h0m0s in the future"},
		{name: "before 2000", csv: "1999-12-31T23:59:59.5Z,b1,node/0,m,1", want: "time 1999-12-31T23:59:59.5Z is before 2000"},
		{name: "before 2000 unix", csv: "946684799,b1,node/0,m,1", want: "time 1999-12-31T23:59:59Z is before 2000"},
		{name: "empty box", csv: "2024-01-01T00:00:00Z, ,node/0,m,1", want: "empty box"},
		{name: "box with slash", csv: "2024-01-01T00:00:00Z,site/b1,node/0,m,1", want: `box "site/b1" is not 1 to 128 of A-Z a-z 0-9 . _ : -`},
		{name: "box too long", csv: "2024-01-01T00:00:00Z," + long + ",node/0,m,1", want: `box "` + long[:32] + `"... is not 1 to 128 of A-Z a-z 0-9 . _ : -`},
		{name: "empty component", csv: "2024-01-01T00:00:00Z,b1,,m,1", want: "empty component"},
		{name: "component with space", csv: `2024-01-01T00:00:00Z,b1,"disk 1",m,1`, want: `component "disk 1" has whitespace or control characters`},
		{name: "component with tab", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1","component":"disk\t1","metric":"m","value":1}`, want: `component "disk\t1" has whitespace or control characters`},
		{name: "component with unicode space", csv: "2024-01-01T00:00:00Z,b1,disk\u00a01,m,1", want: `component "disk\u00a01" has whitespace or control characters`},
		{name: "component invalid utf-8", csv: "2024-01-01T00:00:00Z,b1,disk\xff,m,1", want: `component "disk\xff" is not valid UTF-8`},
		{name: "component too long", csv: "2024-01-01T00:00:00Z,b1," + long + ",m,1", want: "component is longer than 128 bytes"},
		{name: "empty metric", csv: "2024-01-01T00:00:00Z,b1,node/0,,1", want: "empty metric"},
		{name: "metric upper case", csv: "2024-01-01T00:00:00Z,b1,node/0,Node.CPU,1", want: `metric "Node.CPU" is not 1 to 128 of a-z 0-9 . _`},
		{name: "metric too long", csv: "2024-01-01T00:00:00Z,b1,node/0," + long + ",1", want: `metric "` + long[:32] + `"... is not 1 to 128 of a-z 0-9 . _`},
		{name: "line too long", csv: "2024-01-01T00:00:00Z,b1," + strings.Repeat("c", MaxLineBytes) + ",m,1", want: "line longer than 65536 bytes"},
		{name: "line far too long", jsonl: `{"box":"` + strings.Repeat("b", 1<<20) + `"}`, want: "line longer than 65536 bytes"},
		{name: "json not an object", jsonl: `[1,2]`, want: "line is an array, not a JSON object"},
		{name: "json string line", jsonl: `"x"`, want: "line is a string, not a JSON object"},
		{name: "json truncated", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1"`, want: "invalid JSON at column 42: want ',' or '}'"},
		{name: "json bad token", jsonl: `{"time":x}`, want: `invalid JSON at column 9: unexpected "x"`},
		{name: "json trailing data", jsonl: `{"time":1} {}`, want: "invalid JSON at column 12: unexpected data after the object"},
		{name: "json bad number", jsonl: `{"value":-}`, want: "invalid JSON at column 11: bad number"},
		{name: "json bad escape", jsonl: `{"box":"a\qb"}`, want: `invalid JSON at column 11: bad escape "\\q"`},
		{name: "json too deep", jsonl: `{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, want: "invalid JSON at column 70: nested deeper than 64"},
		{name: "json missing field", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1","component":"c","metric":"m"}`, want: `missing field "value"`},
		{name: "json unknown field", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1","component":"c","metric":"m","value":1,"unit":"ms"}`, want: `unknown field "unit"`},
		{name: "json unknown field holding a secret", jsonl: `{"time":1,"box":"b","component":"c","metric":"m","value":1,"password=hunter2-0123456789abcdefghijklmnopqrstuvwxyz\u0007":1}`,
			want: `unknown field "password=hunter2-0123456789abcde"...`},
		{name: "json unknown field with control characters", jsonl: `{"time":1,"box":"b","component":"c","metric":"m","value":1,"\u001b[2J":1}`,
			want: `unknown field "\x1b[2J"`},
		{name: "time holding a secret", csv: "token=ghp_0123456789abcdefghijklmnopqrstuvwxyz,b1,node/0,m,1",
			want: `time "token=ghp_0123456789abcdefghijkl"... is not RFC 3339 or unix seconds`},
		{name: "json duplicate field", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1","box":"b2","component":"c","metric":"m","value":1}`, want: `duplicate field "box"`},
		{name: "json value is a string", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b1","component":"c","metric":"m","value":"1"}`, want: `field "value" is a string, want a number`},
		{name: "json box is a number", jsonl: `{"time":"2024-01-01T00:00:00Z","box":1,"component":"c","metric":"m","value":1}`, want: `field "box" is a number, want a string`},
		{name: "json metric is null", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b","component":"c","metric":null,"value":1}`, want: `field "metric" is null, want a string`},
		{name: "json time is a bool", jsonl: `{"time":true,"box":"b","component":"c","metric":"m","value":1}`, want: `field "time" is a boolean, want a string or a number`},
		{name: "json component is an object", jsonl: `{"time":1,"box":"b","component":{"a":[1]},"metric":"m","value":1}`, want: `field "component" is an object, want a string`},
		{name: "json bad time", jsonl: `{"time":"2024-13-01T00:00:00Z","box":"b","component":"c","metric":"m","value":1}`, want: `time "2024-13-01T00:00:00Z" is not RFC 3339 or unix seconds`},
		{name: "json value overflow", jsonl: `{"time":"2024-01-01T00:00:00Z","box":"b","component":"c","metric":"m","value":2e308}`, want: `value "2e308" is out of range`},
	}
	good := map[string]string{
		KindCSV:   "2024-01-01T00:00:00Z,b1,node/0,node.cpu_busy_pct,7",
		KindJSONL: `{"time":"2024-01-01T00:00:00Z","box":"b1","component":"node/0","metric":"node.cpu_busy_pct","value":7}`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, in, line := KindCSV, "time,box,component,metric,value\n"+good[KindCSV]+"\n"+tt.csv+"\n"+good[KindCSV]+"\n", 3
			if tt.jsonl != "" {
				kind, in, line = KindJSONL, good[KindJSONL]+"\n"+tt.jsonl+"\n"+good[KindJSONL]+"\n", 2
			}
			res, err, got := collect(t, []byte(in), Options{Name: "batch" + Format{Kind: kind}.Ext(), Now: testNow})
			require.NoError(t, err)
			require.Equal(t, kind, res.Format.Kind)
			require.Len(t, got, 2, "good lines kept")
			require.Equal(t, int64(3), res.Lines)
			require.Equal(t, int64(2), res.Accepted)
			require.Equal(t, int64(1), res.Rejected)
			require.InDelta(t, 1.0/3, res.RejectRatio(), 1e-9)
			require.Len(t, res.Errors, 1)
			require.Equal(t, LineError{File: "batch" + Format{Kind: kind}.Ext(), Line: line, Reason: tt.want}, res.Errors[0])
			require.Equal(t, res.Errors[0].File+":"+itoa(line)+": "+tt.want, res.Errors[0].Error())
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Sample
	}{
		{name: "offset time", line: "2024-01-01T02:00:00.123456789+02:00,b1,c,m,1", want: Sample{Time: time.Date(2024, 1, 1, 0, 0, 0, 123456789, time.UTC), Box: "b1", Component: "c", Metric: "m", Value: 1}},
		{name: "unix integer", line: "1704067200,b1,c,m,-0.5", want: Sample{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Box: "b1", Component: "c", Metric: "m", Value: -0.5}},
		{name: "unix fraction truncated to ns", line: "1704067200.1234567899,b1,c,m,+3", want: Sample{Time: time.Date(2024, 1, 1, 0, 0, 0, 123456789, time.UTC), Box: "b1", Component: "c", Metric: "m", Value: 3}},
		{name: "just within skew", line: "2025-01-01T01:00:00Z,A-z.0_9:x,c,m,1e-3", want: Sample{Time: time.Date(2025, 1, 1, 1, 0, 0, 0, time.UTC), Box: "A-z.0_9:x", Component: "c", Metric: "m", Value: 0.001}},
		{name: "year 2000", line: "946684800,b1,volume/日本,unknown.metric_2,0", want: Sample{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Box: "b1", Component: "volume/日本", Metric: "unknown.metric_2", Value: 0}},
		{name: "quoted with comma and quote", line: `2024-01-01T00:00:00Z,b1,"vol,""a""",m,1`, want: Sample{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Box: "b1", Component: `vol,"a"`, Metric: "m", Value: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err, got := collect(t, []byte(CSVHeader+"\n"+tt.line), Options{Now: testNow})
			require.NoError(t, err)
			require.Empty(t, res.Errors)
			require.Equal(t, []Sample{tt.want}, got)
		})
	}
}

func TestParseOptions(t *testing.T) {
	in := []byte(CSVHeader + "\n2025-01-01T05:00:00Z,b1,c,m,1\nx\ny\nz\n")
	t.Run("skew and max errors", func(t *testing.T) {
		res, err, got := collect(t, in, Options{Name: "o.csv", Now: testNow, MaxFutureSkew: 6 * time.Hour, MaxErrors: 2})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, int64(3), res.Rejected)
		require.Equal(t, []LineError{
			{File: "o.csv", Line: 3, Reason: "wrong number of fields: got 1, want 5"},
			{File: "o.csv", Line: 4, Reason: "wrong number of fields: got 1, want 5"},
		}, res.Errors)
	})
	t.Run("defaults", func(t *testing.T) {
		soon := time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)
		late := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
		in := CSVHeader + "\n" + soon + ",b1,c,m,1\n" + late.Format(time.RFC3339) + ",b1,c,m,1\n"
		res, err, got := collect(t, []byte(in), Options{})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "input:3: time "+late.Format(time.RFC3339)+" is more than 1h0m0s in the future", res.Errors[0].Error())
	})
	t.Run("max boxes", func(t *testing.T) {
		in := CSVHeader + "\n"
		for _, b := range []string{"b3", "b1", "b2", "b1", "b4"} {
			in += "2024-01-01T00:00:00Z," + b + ",c,m,1\n"
		}
		res, err, got := collect(t, []byte(in), Options{Now: testNow, MaxBoxes: 2})
		require.NoError(t, err)
		require.Len(t, got, 5)
		require.Equal(t, []string{"b1", "b3"}, res.Boxes)
		require.True(t, res.BoxesTruncated)
	})
}

func TestParseRejectsFile(t *testing.T) {
	valid := []byte(CSVHeader + "\n2024-01-01T00:00:00Z,b1,c,m,1\n2024-01-01T00:00:01Z,b1,c,m,2\n")
	gz := gzipBytes(t, bytes.Repeat(valid[len(CSVHeader)+1:], 2000))
	gz = append(gzipBytes(t, valid), gz...)
	corrupt := gzipBytes(t, valid)
	corrupt[len(corrupt)-5] ^= 0xff // the stored length no longer matches
	tests := []struct {
		name         string
		in           []byte
		want         string
		notTelemetry bool
		wantLines    int64 // data lines counted before the error
	}{
		{name: "empty", in: nil, want: "empty.csv: empty file", notTelemetry: true},
		{name: "blank lines only", in: []byte(" \n\r\n\t\n"), want: "empty.csv: empty file", notTelemetry: true},
		{name: "empty gzip", in: gzipBytes(t, nil), want: "empty.csv: empty file", notTelemetry: true},
		{name: "binary", in: []byte("GIF\x00\x01\x02"), want: "empty.csv: binary data (NUL byte at offset 3), not CSV or JSON Lines", notTelemetry: true},
		{name: "binary in gzip", in: gzipBytes(t, append([]byte("time,box\n"), 0)), want: "empty.csv: binary data (NUL byte at offset 9), not CSV or JSON Lines", notTelemetry: true},
		{name: "wrong header", in: []byte("a,b,c\n1,2,3\n"), want: `empty.csv:1: header is not time,box,component,metric,value: 3 columns, want 5`, notTelemetry: true},
		{name: "header after blank lines", in: []byte("\n\ntime,box,component,metric\n"), want: `empty.csv:3: header is not time,box,component,metric,value: 4 columns, want 5`, notTelemetry: true},
		{name: "duplicate header column", in: []byte("time,box,box,metric,value\n"), want: `empty.csv:1: header is not time,box,component,metric,value: column 3 "box" repeats`, notTelemetry: true},
		{name: "data without header", in: []byte("2024-01-01T00:00:00Z,b1,c,m,1\n"), want: `empty.csv:1: header is not time,box,component,metric,value: column 1 "2024-01-01T00:00:00Z" is unknown`, notTelemetry: true},
		// A file that is not telemetry, such as a credentials file, is not echoed: only
		// the line, the reason and at most 32 escaped bytes of one column.
		{name: "secret header, one column", in: []byte("Authorization: Bearer sk_live_51HqLyjWDarjtT1zdp7dc0123456789abcdef\n"),
			want: `empty.csv:1: header is not time,box,component,metric,value: 1 columns, want 5`, notTelemetry: true},
		{name: "secret header, five columns", in: []byte("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,b,c,d,e\n"),
			want: `empty.csv:1: header is not time,box,component,metric,value: column 1 "aws_secret_access_key=wJalrXUtnF"... is unknown`, notTelemetry: true},
		{name: "header with control characters", in: []byte("\x1b]0;pwned\x07time,box,component,metric,value\n"),
			want: `empty.csv:1: header is not time,box,component,metric,value: column 1 "\x1b]0;pwned\atime" is unknown`, notTelemetry: true},
		{name: "header with a bad quote", in: []byte(`ti"me,box,component,metric,value` + "\n"),
			want: `empty.csv:1: header is not time,box,component,metric,value: bare quote in unquoted field`, notTelemetry: true},
		{name: "header cut inside a character", in: []byte(strings.Repeat("x", 31) + "é-secret-tail,b,c,d,e\n"),
			want: `empty.csv:1: header is not time,box,component,metric,value: column 1 "` + strings.Repeat("x", 31) + `"... is unknown`, notTelemetry: true},
		{name: "header too long", in: []byte(strings.Repeat("t", MaxLineBytes+1)), want: "empty.csv:1: header line is longer than 65536 bytes", notTelemetry: true},
		{name: "json array", in: []byte(` [{"time":1}]`), want: "empty.csv: a JSON array, not JSON Lines (one object per line)", notTelemetry: true},
		{name: "pretty-printed json", in: []byte("{\n  \"time\": 1,\n  \"box\": \"b\"\n}\n"), want: "empty.csv: no line is a JSON object (line 1: invalid JSON at column 2: want a field name)", notTelemetry: true, wantLines: 4},
		{name: "gzip bad header", in: []byte{0x1f, 0x8b, 0, 0}, want: "open gzip stream of empty.csv: unexpected EOF"},
		{name: "gzip truncated", in: gz[:len(gz)-200], want: "read gzip stream of empty.csv: unexpected EOF", wantLines: -1},
		{name: "gzip corrupt", in: corrupt, want: "read gzip stream of empty.csv: gzip: invalid checksum", wantLines: 2},
		{name: "read error before any data", in: nil, want: "read empty.csv: connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Sample
			var r io.Reader = bytes.NewReader(tt.in)
			if strings.HasPrefix(tt.name, "read error") {
				r = &errReader{data: tt.in, err: errors.New("connection reset")}
			}
			res, err := Parse(r, Options{Name: "empty.csv", Now: testNow}, func(c []Sample) error {
				got = append(got, c...)
				return nil
			})
			require.EqualError(t, err, tt.want)
			require.Equal(t, tt.notTelemetry, errors.Is(err, ErrNotTelemetry))
			switch {
			case tt.wantLines < 0: // truncated: some lines before the cut are counted and emitted
				require.Greater(t, res.Accepted, int64(2))
				require.Zero(t, res.Rejected)
				require.Len(t, got, int(res.Accepted))
			default:
				require.Equal(t, tt.wantLines, res.Lines)
				require.Len(t, got, int(res.Accepted))
			}
		})
	}
	t.Run("truncated gzip wraps the gzip error", func(t *testing.T) {
		_, err := Parse(bytes.NewReader(gz[:len(gz)/2]), Options{Now: testNow}, nil)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}

type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestParseReadError(t *testing.T) {
	in := CSVHeader + "\n2024-01-01T00:00:00Z,b1,c,m,1\n2024-01-01T00:00:00Z,b1,c,m,"
	res, err := Parse(&errReader{data: []byte(in), err: errors.New("connection reset")}, Options{Name: "net.csv", Now: testNow}, nil)
	require.EqualError(t, err, "read net.csv: connection reset")
	require.Equal(t, int64(1), res.Accepted, "the partial last line is dropped, not rejected")
	require.Equal(t, int64(1), res.Lines)
}

func TestParseChunks(t *testing.T) {
	var in strings.Builder
	in.WriteString(CSVHeader + "\n")
	for i := range 10 {
		in.WriteString("2024-01-01T00:00:0" + itoa(i) + "Z,b1,c,m," + itoa(i) + "\n")
		if i == 4 {
			in.WriteString("bad line\n")
		}
	}
	tests := []struct {
		name      string
		chunkSize int
		want      []int
	}{
		{name: "default", chunkSize: 0, want: []int{10}},
		{name: "three", chunkSize: 3, want: []int{3, 3, 3, 1}},
		{name: "five", chunkSize: 5, want: []int{5, 5}},
		{name: "one", chunkSize: 1, want: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sizes []int
			var values []float64
			var chunks [][]Sample
			res, err := Parse(strings.NewReader(in.String()), Options{Now: testNow, ChunkSize: tt.chunkSize}, func(c []Sample) error {
				sizes = append(sizes, len(c))
				chunks = append(chunks, c)
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Rejected)
			require.Equal(t, tt.want, sizes)
			for _, c := range chunks { // chunks are not reused, so kept ones stay intact
				for _, s := range c {
					values = append(values, s.Value)
				}
			}
			require.Equal(t, []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, values)
		})
	}
	t.Run("emit error stops the parse", func(t *testing.T) {
		calls := 0
		res, err := Parse(strings.NewReader(in.String()), Options{Name: "c.csv", Now: testNow, ChunkSize: 2}, func([]Sample) error {
			calls++
			if calls == 2 {
				return errors.New("database is locked")
			}
			return nil
		})
		require.EqualError(t, err, "emit samples of c.csv: database is locked")
		require.Equal(t, 2, calls)
		require.Equal(t, int64(4), res.Accepted)
	})
	t.Run("nil emit validates only", func(t *testing.T) {
		res, err := Parse(strings.NewReader(in.String()), Options{Now: testNow, ChunkSize: 2}, nil)
		require.NoError(t, err)
		require.Equal(t, int64(10), res.Accepted)
		require.Equal(t, []string{"b1"}, res.Boxes)
	})
}

func TestParseProgressCountsEveryLine(t *testing.T) {
	good := "2024-01-01T00:00:00Z,b1,c,m,1\n"
	tests := []struct {
		name string
		body string
		want []int
	}{
		{"all bad lines", strings.Repeat("bad line\n", 3*ProgressLines+5), []int{ProgressLines, 2 * ProgressLines, 3 * ProgressLines}},
		{"good and bad", strings.Repeat(good+"bad line\n", ProgressLines), []int{ProgressLines, 2 * ProgressLines}},
		{"too long lines", strings.Repeat(strings.Repeat("x", MaxLineBytes+10)+"\n", ProgressLines), []int{ProgressLines}},
		{"fewer lines than one report", good, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			// The header is line 1, so reports come at multiples of ProgressLines lines read.
			_, _ = Parse(strings.NewReader(CSVHeader+"\n"+tt.body), Options{Now: testNow, Progress: func(n int) { got = append(got, n) }}, nil)
			require.Equal(t, tt.want, got)
		})
	}
}
