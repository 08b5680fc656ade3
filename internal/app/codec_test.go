package app

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/codec"
)

func TestFailureMessage(t *testing.T) {
	pc, err := codec.New([]codec.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, codec.KeySize)}})
	require.NoError(t, err)
	opts := WithCodec(client.Options{}, pc)
	const msg = "send email: permanent failure (smtp 550): owner@example.com: no such mailbox"
	encoded := opts.FailureConverter.ErrorToFailure(errors.New(msg))
	require.Equal(t, "Encoded failure", encoded.GetMessage(), "the message is stored encrypted")
	plain := temporal.GetDefaultFailureConverter().ErrorToFailure(errors.New(msg))
	for _, tc := range []struct {
		name string
		dc   converter.DataConverter
		in   *failurepb.Failure
		want string
	}{
		{name: "encrypted, with the key", dc: opts.DataConverter, in: encoded, want: msg},
		{name: "not encrypted", dc: opts.DataConverter, in: plain, want: msg},
		{name: "encrypted, without the key", dc: converter.GetDefaultDataConverter(), in: encoded,
			want: "Encoded failure (encrypted; set the codec keys to read it: encoding binary/encrypted: payload encoding is not supported)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, FailureMessage(tc.dc, tc.in))
		})
	}
}

func TestCodecFromConfig(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "codec.keys")
	line := "k2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)) + "\nk1:" +
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + "\n"
	require.NoError(t, os.WriteFile(keys, []byte(line), 0o600))
	for _, tc := range []struct {
		name    string
		codec   config.Codec
		wantIDs []string // nil: no codec
	}{
		{name: "none"},
		{name: "file", codec: config.Codec{KeysFile: keys}, wantIDs: []string{"k2", "k1"}},
		{name: "env", codec: config.Codec{Keys: strings.ReplaceAll(strings.TrimSpace(line), "\n", ",")}, wantIDs: []string{"k2", "k1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Codec = tc.codec
			pc, err := Codec(cfg)
			require.NoError(t, err)
			if tc.wantIDs == nil {
				require.Nil(t, pc)
				opts, err := ClientOptions(cfg, slog.New(slog.DiscardHandler), nil)
				require.NoError(t, err)
				require.Nil(t, opts.DataConverter, "no keys: the SDK default")
				return
			}
			require.Equal(t, tc.wantIDs, pc.KeyIDs())
			opts, err := ClientOptions(cfg, slog.New(slog.DiscardHandler), nil)
			require.NoError(t, err)
			p, err := opts.DataConverter.ToPayload("owner@example.com")
			require.NoError(t, err)
			require.Equal(t, "k2", string(p.Metadata[codec.MetadataKeyID]))
			require.NotNil(t, opts.FailureConverter)
		})
	}
}
