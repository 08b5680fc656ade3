package codec

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// MaxKeyIDLen is the longest key id accepted: the id is stored in the
// metadata of every payload, so it is kept short.
const MaxKeyIDLen = 32

// keyID is what a key id may hold.
var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Key is one AES-256 key and the id stored with the payloads it encrypts.
type Key struct {
	ID     string
	Secret []byte // KeySize bytes
}

// String returns the key id only, so that a key printed by mistake shows no
// secret.
func (k Key) String() string { return "key " + k.ID }

// GoString returns what String does, for %#v.
func (k Key) GoString() string { return k.String() }

// ErrNoKeys is returned by Load when neither a key file nor keys are given.
var ErrNoKeys = errors.New("no codec keys configured")

// KeyError is a key that cannot be used, named by its id (or its position
// when it has none) and never by its value.
type KeyError struct {
	Source string // "line 3" of a key file, or "entry 2" of a comma-separated list
	ID     string // the key id, empty when the entry has none
	Reason string
}

// Error returns `key "k1" (line 3): 16 bytes, must be 32 (AES-256)`.
func (e *KeyError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("key at %s: %s", e.Source, e.Reason)
	}
	return fmt.Sprintf("key %q (%s): %s", e.ID, e.Source, e.Reason)
}

// ParseKeys parses keys, one "id:base64-of-32-bytes" per entry. Entries are
// separated by newlines (a key file: blank lines and lines starting with #
// are skipped) or, with sep ',', by commas (the SANWATCH_CODEC_KEYS form).
// The first key encrypts; all of them decrypt. Errors name the key id and
// what is wrong, never the key.
func ParseKeys(data []byte, sep byte) ([]Key, error) {
	var entries []string
	unit := "line"
	if sep == '\n' {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			entries = append(entries, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read keys: %w", err)
		}
	} else {
		unit = "entry"
		entries = strings.Split(string(data), string(sep))
	}
	var keys []Key
	var errs []error
	seen := map[string]bool{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || sep == '\n' && strings.HasPrefix(e, "#") {
			continue
		}
		src := fmt.Sprintf("%s %d", unit, i+1)
		id, b64, ok := strings.Cut(e, ":")
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		switch {
		case !ok:
			errs = append(errs, &KeyError{Source: src, Reason: `must be "id:base64-key"`})
			continue
		case id == "":
			errs = append(errs, &KeyError{Source: src, Reason: "has an empty id"})
			continue
		case len(id) > MaxKeyIDLen || !keyID.MatchString(id):
			errs = append(errs, &KeyError{Source: src, Reason: fmt.Sprintf("id must be 1-%d of A-Z a-z 0-9 . _ -", MaxKeyIDLen)})
			continue
		case seen[id]:
			errs = append(errs, &KeyError{Source: src, ID: id, Reason: "id is used by an earlier key"})
			continue
		}
		seen[id] = true
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			// Not wrapped: base64's error names a byte offset only, but keep
			// the message fixed so nothing of the key can show.
			errs = append(errs, &KeyError{Source: src, ID: id, Reason: "is not standard base64"})
			continue
		}
		if len(secret) != KeySize {
			errs = append(errs, &KeyError{Source: src, ID: id,
				Reason: fmt.Sprintf("is %d bytes, must be %d (AES-256; make one with `openssl rand -base64 32`)", len(secret), KeySize)})
			continue
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(keys) == 0 {
		return nil, errors.New(`holds no keys (one "id:base64-of-32-bytes" per line)`)
	}
	return keys, nil
}

// Load returns the keys of keysFile (a path) or, when it is empty, of keys
// (comma-separated). Both empty: ErrNoKeys. Both set is an error, since it
// would be unclear which key encrypts.
func Load(keysFile, keys string) ([]Key, error) {
	switch {
	case keysFile != "" && strings.TrimSpace(keys) != "":
		return nil, errors.New("codec keys: set codec.keys_file or SANWATCH_CODEC_KEYS, not both")
	case keysFile != "":
		data, err := os.ReadFile(keysFile)
		if err != nil {
			return nil, fmt.Errorf("read codec key file: %w", err)
		}
		ks, err := ParseKeys(data, '\n')
		if err != nil {
			return nil, fmt.Errorf("codec key file %s: %w", keysFile, err)
		}
		return ks, nil
	case strings.TrimSpace(keys) != "":
		ks, err := ParseKeys([]byte(keys), ',')
		if err != nil {
			return nil, fmt.Errorf("codec keys (SANWATCH_CODEC_KEYS): %w", err)
		}
		return ks, nil
	}
	return nil, ErrNoKeys
}
