package config

import (
	"errors"
	"net/url"
	"strings"

	"github.com/sanwatch/sanwatch/internal/codec"
)

// validateCodec checks codec.*: the key file exists and each of its keys
// (or of SANWATCH_CODEC_KEYS) is "id:base64" of exactly 32 bytes under a
// unique short id. Errors name the key id and its length, never the key.
func validateCodec(c Codec) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	hasKeys := strings.TrimSpace(c.Keys) != ""
	if c.RequireEncryption && !hasKeys && c.KeysFile == "" {
		add(invalid("codec.require_encryption", true, "needs codec.keys_file or "+EnvVar(keyCodecKeys)))
	}
	switch {
	case c.KeysFile != "" && hasKeys:
		add(invalid(keyCodecKeysFile, c.KeysFile, "must not be set together with "+EnvVar(keyCodecKeys)+": keep the keys in one place"))
	case c.KeysFile != "":
		if err := existingFile(keyCodecKeysFile, c.KeysFile); err != nil {
			add(err)
			break
		}
		if _, err := codec.Load(c.KeysFile, ""); err != nil {
			add(invalid(keyCodecKeysFile, c.KeysFile, keysAllowed(strings.TrimPrefix(err.Error(), "codec key file "+c.KeysFile+": "))))
		}
	case hasKeys:
		if _, err := codec.ParseKeys([]byte(c.Keys), ','); err != nil {
			add(invalid(keyCodecKeys, c.Keys, keysAllowed(err.Error())))
		}
	}
	add(hostPort("codec.server_addr", c.ServerAddr, true))
	add(existingFile("codec.auth_token_file", c.AuthTokenFile))
	for _, o := range c.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			add(invalid("codec.cors_origins", o, "must be origins such as http://localhost:8233 (scheme://host[:port], no path)"))
		}
	}
	return errors.Join(errs...)
}

// keysAllowed turns a key-parsing error message into the "allowed" phrase of
// a ValidationError: what is wrong with which key id, on one line.
func keysAllowed(msg string) string {
	return strings.ReplaceAll(msg, "\n", "; ")
}
