package app

import (
	"errors"
	"fmt"

	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/sanwatch/sanwatch/config"
	"github.com/sanwatch/sanwatch/internal/codec"
)

// Codec returns the payload codec of codec.keys_file or SANWATCH_CODEC_KEYS,
// or nil when no keys are configured (payloads are then not encrypted).
func Codec(cfg *config.Config) (*codec.Codec, error) {
	keys, err := codec.Load(cfg.Codec.KeysFile, cfg.Codec.Keys)
	if errors.Is(err, codec.ErrNoKeys) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load payload encryption keys: %w", err)
	}
	c, err := codec.New(keys)
	if err != nil {
		return nil, fmt.Errorf("load payload encryption keys: %w", err)
	}
	c.RequireEncrypted = cfg.Codec.RequireEncryption
	return c, nil
}

// WithCodec sets opts' data converter to encrypt every payload with pc
// (workflow and activity inputs and results, signals, updates, queries,
// memos) and its failure converter to encode failure messages and stack
// traces with it too, so that SMTP errors naming addresses are not stored
// in the clear. Workers built from the client use the same converters.
func WithCodec(opts client.Options, pc converter.PayloadCodec) client.Options {
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), pc)
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: dc, EncodeCommonAttributes: true,
	})
	return opts
}

// DataConverter returns the data converter clients of cfg use: the SDK
// default, or the one WithCodec sets when codec keys are configured.
func DataConverter(cfg *config.Config) (converter.DataConverter, error) {
	pc, err := Codec(cfg)
	if err != nil {
		return nil, err
	}
	if pc == nil {
		return converter.GetDefaultDataConverter(), nil
	}
	return WithCodec(client.Options{}, pc).DataConverter, nil
}

// FailureMessage returns the message of a failure read from the server (a
// pending activity's last failure): with EncodeCommonAttributes the stored
// message is "Encoded failure" and the real one is in the encoded
// attributes, which dc decodes. Without the key it says so.
func FailureMessage(dc converter.DataConverter, f *failurepb.Failure) string {
	if f.GetEncodedAttributes() == nil {
		return f.GetMessage()
	}
	var attrs struct {
		Message string `json:"message"`
	}
	if err := dc.FromPayload(f.GetEncodedAttributes(), &attrs); err != nil {
		return f.GetMessage() + " (encrypted; set the codec keys to read it: " + err.Error() + ")"
	}
	return attrs.Message
}
