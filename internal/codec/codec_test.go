package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// testKey returns a key whose bytes are all b, and its "id:base64" line.
func testKey(id string, b byte, n int) (Key, string) {
	secret := bytes.Repeat([]byte{b}, n)
	return Key{ID: id, Secret: secret}, id + ":" + base64.StdEncoding.EncodeToString(secret)
}

func mustCodec(t *testing.T, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys)
	require.NoError(t, err)
	return c
}

func payload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func TestParseKeys(t *testing.T) {
	k1, l1 := testKey("k1", 1, 32)
	k2, l2 := testKey("2024-06.b", 2, 32)
	_, short := testKey("short", 3, 16)
	_, long := testKey("long", 4, 33)
	for _, tc := range []struct {
		name    string
		data    string
		sep     byte
		want    []Key
		wantErr string
	}{
		{name: "file with comments and blank lines", sep: '\n', data: "# current first\n" + l2 + "\n\n  " + l1 + "  \n", want: []Key{k2, k1}},
		{name: "comma separated", sep: ',', data: l1 + ", " + l2, want: []Key{k1, k2}},
		{name: "16-byte key", sep: '\n', data: l1 + "\n" + short + "\n",
			wantErr: "key \"short\" (line 2): is 16 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)"},
		{name: "33-byte key", sep: ',', data: long,
			wantErr: "key \"long\" (entry 1): is 33 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)"},
		{name: "no id", sep: '\n', data: strings.TrimPrefix(l1, "k1"), wantErr: "key at line 1: has an empty id"},
		{name: "no colon", sep: '\n', data: "justsomething", wantErr: `key at line 1: must be "id:base64-key"`},
		{name: "bad id", sep: '\n', data: "k 1:" + strings.TrimPrefix(l1, "k1:"), wantErr: "key at line 1: id must be 1-32 of A-Z a-z 0-9 . _ -"},
		{name: "long id", sep: '\n', data: strings.Repeat("a", 33) + ":" + strings.TrimPrefix(l1, "k1:"), wantErr: "key at line 1: id must be 1-32 of A-Z a-z 0-9 . _ -"},
		{name: "duplicate id", sep: '\n', data: l1 + "\n" + l1, wantErr: `key "k1" (line 2): id is used by an earlier key`},
		{name: "not base64", sep: '\n', data: "k1:not*base64", wantErr: `key "k1" (line 1): is not standard base64`},
		{name: "only comments", sep: '\n', data: "# nothing\n\n", wantErr: `holds no keys (one "id:base64-of-32-bytes" per line)`},
		{name: "two errors", sep: ',', data: short + "," + long,
			wantErr: "key \"short\" (entry 1): is 16 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)\n" +
				"key \"long\" (entry 2): is 33 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tc.data), tc.sep)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				// The error names ids, never key material.
				for _, line := range strings.FieldsFunc(tc.data, func(r rune) bool { return r == '\n' || r == ',' }) {
					if _, b64, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && len(b64) > 8 {
						require.NotContains(t, err.Error(), b64)
					}
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	k1, l1 := testKey("k1", 1, 32)
	_, short := testKey("old", 5, 24)
	good := filepath.Join(dir, "good.keys")
	require.NoError(t, os.WriteFile(good, []byte(l1+"\n"), 0o600))
	bad := filepath.Join(dir, "bad.keys")
	require.NoError(t, os.WriteFile(bad, []byte(l1+"\n"+short+"\n"), 0o600))
	for _, tc := range []struct {
		name, file, keys string
		want             []Key
		wantErr          string
	}{
		{name: "file", file: good, want: []Key{k1}},
		{name: "env", keys: l1, want: []Key{k1}},
		{name: "none", wantErr: ErrNoKeys.Error()},
		{name: "both", file: good, keys: l1, wantErr: "codec keys: set codec.keys_file or SANWATCH_CODEC_KEYS, not both"},
		{name: "wrong length in file", file: bad,
			wantErr: "codec key file " + bad + ": key \"old\" (line 2): is 24 bytes, must be 32 (AES-256; make one with `openssl rand -base64 32`)"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "read codec key file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.file, tc.keys)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestKeyPrintsNoSecret(t *testing.T) {
	k, line := testKey("k1", 7, 32)
	b64 := strings.TrimPrefix(line, "k1:")
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%s", k)} {
		require.NotContains(t, s, b64)
		require.NotContains(t, s, string(k.Secret))
		require.Contains(t, s, "k1")
	}
}

func TestNewRejects(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	short, _ := testKey("short", 1, 31)
	for _, tc := range []struct {
		name    string
		keys    []Key
		wantErr string
	}{
		{name: "none", wantErr: ErrNoKeys.Error()},
		{name: "short", keys: []Key{k1, short}, wantErr: `key "short" (codec): is 31 bytes, must be 32 (AES-256)`},
		{name: "duplicate", keys: []Key{k1, k1}, wantErr: `key "k1" (codec): id is used by an earlier key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.keys)
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	secret := map[string]string{"to": "owner@example.com", "note": "secret-note-xyz"}
	in := []*commonpb.Payload{payload(t, secret), payload(t, nil), payload(t, []byte("raw bytes"))}
	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, len(in))
	for _, p := range enc {
		require.Equal(t, EncodingEncrypted, string(p.Metadata[MetadataEncoding]))
		require.Equal(t, "k1", string(p.Metadata[MetadataKeyID]))
		require.Len(t, p.Metadata, 2, "the original metadata (json/plain ...) is sealed too")
		require.NotContains(t, string(p.Data), "owner@example.com")
		require.NotContains(t, string(p.Data), "json/plain")
	}
	dec, err := c.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		require.True(t, in[i].Equal(dec[i]), "payload %d differs after the round trip", i)
	}
	var got map[string]string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &got))
	require.Equal(t, secret, got)

	// A fresh nonce each time: the same payload never seals the same.
	again, err := c.Encode(in[:1])
	require.NoError(t, err)
	require.NotEqual(t, enc[0].Data, again[0].Data)
}

// TestDataConverter goes through the SDK's CodecDataConverter, as clients do.
func TestDataConverter(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), mustCodec(t, k1))
	ps, err := dc.ToPayloads("owner@example.com", 42)
	require.NoError(t, err)
	for _, p := range ps.Payloads {
		require.Equal(t, EncodingEncrypted, string(p.Metadata[MetadataEncoding]))
	}
	var s string
	var n int
	require.NoError(t, dc.FromPayloads(ps, &s, &n))
	require.Equal(t, "owner@example.com", s)
	require.Equal(t, 42, n)
}

func TestRotation(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	k2, _ := testKey("k2", 2, 32)
	old := mustCodec(t, k1)
	sealedOld, err := old.Encode([]*commonpb.Payload{payload(t, "sealed with k1")})
	require.NoError(t, err)

	rotated := mustCodec(t, k2, k1) // the new key on top, the retired one kept
	sealedNew, err := rotated.Encode([]*commonpb.Payload{payload(t, "sealed with k2")})
	require.NoError(t, err)
	require.Equal(t, "k2", string(sealedNew[0].Metadata[MetadataKeyID]), "the first key encrypts")
	require.Equal(t, []string{"k2", "k1"}, rotated.KeyIDs())

	for _, tc := range []struct {
		name  string
		codec *Codec
		in    *commonpb.Payload
		want  string
	}{
		{name: "retired key still decodes", codec: rotated, in: sealedOld[0], want: "sealed with k1"},
		{name: "current key decodes", codec: rotated, in: sealedNew[0], want: "sealed with k2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := tc.codec.Decode([]*commonpb.Payload{tc.in})
			require.NoError(t, err)
			var got string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &got))
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	k2, _ := testKey("k2", 2, 32)
	k1other, _ := testKey("k1", 9, 32) // another key under the same id
	both := mustCodec(t, k1, k2)
	seal := func(c *Codec) *commonpb.Payload {
		out, err := c.Encode([]*commonpb.Payload{payload(t, "owner@example.com")})
		require.NoError(t, err)
		return out[0]
	}
	flip := func(p *commonpb.Payload, i int) *commonpb.Payload {
		q := &commonpb.Payload{Metadata: p.Metadata, Data: append([]byte(nil), p.Data...)}
		q.Data[i] ^= 0x01
		return q
	}
	relabel := func(p *commonpb.Payload, id string) *commonpb.Payload {
		return &commonpb.Payload{Metadata: map[string][]byte{MetadataEncoding: []byte(EncodingEncrypted), MetadataKeyID: []byte(id)}, Data: p.Data}
	}
	sealed := seal(both)
	for _, tc := range []struct {
		name    string
		codec   *Codec
		in      *commonpb.Payload
		is      error
		wantErr string
	}{
		{name: "unknown key id", codec: mustCodec(t, k2), in: sealed, is: ErrUnknownKey,
			wantErr: `decode payload: unknown encryption key id "k1" (configured: k2): add the retired key to the codec keys`},
		{name: "no key id", codec: both, in: relabel(sealed, ""), is: ErrUnknownKey,
			wantErr: `decode payload: unknown encryption key id "" (configured: k1, k2): add the retired key to the codec keys`},
		{name: "ciphertext bit flipped", codec: both, in: flip(sealed, len(sealed.Data)-20), is: ErrTampered},
		{name: "nonce bit flipped", codec: both, in: flip(sealed, 0), is: ErrTampered},
		{name: "tag bit flipped", codec: both, in: flip(sealed, len(sealed.Data)-1), is: ErrTampered},
		{name: "relabelled to another key", codec: both, in: relabel(sealed, "k2"), is: ErrTampered},
		{name: "another key under the same id", codec: mustCodec(t, k1other), in: sealed, is: ErrTampered},
		{name: "truncated", codec: both, in: &commonpb.Payload{Metadata: sealed.Metadata, Data: sealed.Data[:20]}, is: ErrTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.codec.Decode([]*commonpb.Payload{tc.in})
			require.Error(t, err)
			require.True(t, errors.Is(err, tc.is), "error %q is not %v", err, tc.is)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
			}
		})
	}
}

func TestDecodePassesUnencrypted(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	for _, tc := range []struct {
		name string
		in   *commonpb.Payload
	}{
		{name: "json", in: payload(t, map[string]int{"a": 1})},
		{name: "nil", in: payload(t, nil)},
		{name: "binary", in: payload(t, []byte{1, 2, 3})},
		{name: "no metadata", in: &commonpb.Payload{Data: []byte("x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Decode([]*commonpb.Payload{tc.in})
			require.NoError(t, err)
			require.Same(t, tc.in, out[0])
		})
	}
}

// With RequireEncrypted, a clear-text payload (a signal sent without the
// key, a result written into the database) is refused, not read.
func TestDecodeRequireEncrypted(t *testing.T) {
	k1, _ := testKey("k1", 1, 32)
	c := mustCodec(t, k1)
	c.RequireEncrypted = true
	clear := payload(t, map[string]string{"present": "false"})
	_, err := c.Decode([]*commonpb.Payload{clear})
	require.ErrorIs(t, err, ErrNotEncrypted)
	require.Contains(t, err.Error(), `(encoding "json/plain")`)
	sealed, err := c.Encode([]*commonpb.Payload{clear})
	require.NoError(t, err)
	out, err := c.Decode(sealed)
	require.NoError(t, err)
	require.Equal(t, clear.GetData(), out[0].GetData())
}
