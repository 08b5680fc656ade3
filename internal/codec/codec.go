// Package codec encrypts what sanwatch hands to Temporal: a PayloadCodec that
// seals every payload with AES-256-GCM under a named key, so that workflow
// histories on the Temporal server hold no owner address, ack note or
// telemetry in the clear, and the HTTP handler of the codec server that lets
// the Temporal UI and CLI show them to those who hold the key.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Metadata of an encrypted payload.
const (
	// MetadataEncoding is the standard encoding key of payload metadata.
	MetadataEncoding = converter.MetadataEncoding
	// EncodingEncrypted is the encoding of a payload this codec sealed.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
)

// nonceSize is GCM's standard nonce length; a fresh random nonce is used for
// every payload.
const nonceSize = 12

// Errors of Decode, for errors.Is.
var (
	// ErrUnknownKey is a payload sealed with a key id that is not configured.
	ErrUnknownKey = errors.New("unknown encryption key id")
	// ErrNotEncrypted is a clear-text payload where encryption is required.
	ErrNotEncrypted = errors.New("payload is not encrypted")
	// ErrTampered is a payload that fails authentication: altered, truncated,
	// or sealed with another key of the same id.
	ErrTampered = errors.New("payload failed authentication (tampered, truncated, or another key under that id)")
)

// Codec is an AES-256-GCM converter.PayloadCodec. The first key encrypts;
// every key decrypts, chosen by the key id stored in the payload.
type Codec struct {
	// RequireEncrypted refuses payloads that are not encrypted (codec.require_encryption):
	// nobody without the key can then slip a clear-text signal, update or
	// result past the workers. Off while histories from before encryption
	// may still be read.
	RequireEncrypted bool

	current string
	aeads   map[string]cipher.AEAD
	ids     []string // in configuration order
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec over keys: keys[0] encrypts, all decrypt.
func New(keys []Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	c := &Codec{current: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if len(k.Secret) != KeySize {
			return nil, &KeyError{Source: "codec", ID: k.ID, Reason: fmt.Sprintf("is %d bytes, must be %d (AES-256)", len(k.Secret), KeySize)}
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, &KeyError{Source: "codec", ID: k.ID, Reason: "id is used by an earlier key"}
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("create cipher for key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("create GCM for key %q: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
		c.ids = append(c.ids, k.ID)
	}
	return c, nil
}

// KeyIDs returns the configured key ids, the encrypting one first.
func (c *Codec) KeyIDs() []string { return append([]string(nil), c.ids...) }

// Encode seals each payload (its protobuf encoding, metadata included) with
// the current key and a fresh random nonce. The key id is bound to the
// ciphertext as additional data, so relabelling a payload makes it fail.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := p.Marshal()
		if err != nil {
			return payloads, fmt.Errorf("encode payload: marshal: %w", err)
		}
		sealed := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
		if _, err := rand.Read(sealed); err != nil {
			return payloads, fmt.Errorf("encode payload: read nonce: %w", err)
		}
		sealed = aead.Seal(sealed, sealed[:nonceSize], plain, []byte(c.current))
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(c.current),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode opens each payload this codec's format sealed, with the key its id
// names. Payloads of another encoding pass through unchanged: histories
// written before encryption was turned on stay readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingEncrypted {
			if c.RequireEncrypted {
				return payloads, fmt.Errorf("decode payload: %w (encoding %q); codec.require_encryption is on, so clear-text input is refused: send it with the codec (temporal --codec-endpoint)",
					ErrNotEncrypted, string(p.GetMetadata()[MetadataEncoding]))
			}
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			known := append([]string(nil), c.ids...)
			sort.Strings(known)
			return payloads, fmt.Errorf("decode payload: %w %q (configured: %s): add the retired key to the codec keys",
				ErrUnknownKey, id, strings.Join(known, ", "))
		}
		data := p.GetData()
		if len(data) < nonceSize+aead.Overhead() {
			return payloads, fmt.Errorf("decode payload sealed with key %q: %w", id, ErrTampered)
		}
		plain, err := aead.Open(nil, data[:nonceSize], data[nonceSize:], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("decode payload sealed with key %q: %w", id, ErrTampered)
		}
		var dp commonpb.Payload
		if err := dp.Unmarshal(plain); err != nil {
			return payloads, fmt.Errorf("decode payload sealed with key %q: unmarshal: %w", id, err)
		}
		out[i] = &dp
	}
	return out, nil
}
