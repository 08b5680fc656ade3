package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sanwatch/sanwatch/internal/app"
	"github.com/sanwatch/sanwatch/internal/codec"
)

func (c *cli) codecServerCmd() *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Serve /encode and /decode with the codec keys, so the Temporal UI and CLI can show encrypted payloads",
		Long: "Serve the codec server protocol (POST /encode and /decode) on codec.server_addr with the keys of " +
			"codec.keys_file or SANWATCH_CODEC_KEYS. Callers send Authorization: Bearer <the token in codec.auth_token_file>; " +
			"without a token file the server listens only on loopback. Browsers from codec.cors_origins (the Temporal UI) " +
			"may call it. Point the UI at it (temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8081) or " +
			"the CLI (temporal workflow show --codec-endpoint http://127.0.0.1:8081 --codec-auth \"Bearer $(cat token)\").",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.serveCodec(cmd.Context(), insecure)
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure-no-auth", false,
		"serve without codec.auth_token_file on a non-loopback address: only for a container whose port is published on the host's loopback")
	return cmd
}

// serveCodec runs the codec server until ctx is done.
func (c *cli) serveCodec(ctx context.Context, insecure bool) error {
	cfg := c.cfg
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	if cfg.Log.Format == "json" {
		logger = slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	}

	pc, err := app.Codec(cfg)
	if err != nil {
		return err
	}
	if pc == nil {
		return errors.New("codec-server: no codec keys: set codec.keys_file or SANWATCH_CODEC_KEYS")
	}
	var token string
	if cfg.Codec.AuthTokenFile != "" {
		if token, err = codec.ReadToken(cfg.Codec.AuthTokenFile); err != nil {
			return err
		}
	}
	if err := codec.CheckListen(cfg.Codec.ServerAddr, token, insecure); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Codec.ServerAddr)
	if err != nil {
		return fmt.Errorf("codec-server: listen on codec.server_addr: %w", err)
	}
	auth := "bearer token from " + cfg.Codec.AuthTokenFile
	switch {
	case token == "" && insecure:
		auth = "none (--insecure-no-auth)"
		logger.Warn("codec server without authentication on a non-loopback address: anyone who reaches it can decrypt payloads",
			"addr", ln.Addr().String())
	case token == "":
		auth = "none (loopback only)"
	}
	logger.Info("codec server listening", "addr", ln.Addr().String(), "auth", auth,
		"encrypt_key", pc.KeyIDs()[0], "keys", strings.Join(pc.KeyIDs(), ","), "cors_origins", strings.Join(cfg.Codec.CORSOrigins, ","))

	srv := &http.Server{
		Handler:           codec.Handler(pc, codec.ServerOptions{Token: token, CORSOrigins: cfg.Codec.CORSOrigins, Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("codec-server: serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("codec server stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("codec-server: shut down: %w", err)
	}
	return nil
}

func (c *cli) codecKeygenCmd() *cobra.Command {
	var keysFile, tokenFile string
	cmd := &cobra.Command{
		Use:   "codec-keygen",
		Short: "Write a new payload encryption key file (and a codec server token) unless they exist",
		Long: "Write --keys-file with one new key, \"<id>:<base64 of 32 random bytes>\", mode 0600, and, with --token-file, " +
			"a random bearer token for the codec server. Existing files are kept as they are, so it can run at every start " +
			"(the compose stack does). To rotate, put a new key line on top of the file by hand and keep the old ones below.",
		Args: cobra.NoArgs,
		// No configuration: codec.keys_file may name the file this makes.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			id := "k" + time.Now().UTC().Format("20060102T150405")
			made, err := writeNew(keysFile, func() (string, error) {
				secret := make([]byte, codec.KeySize)
				if _, err := rand.Read(secret); err != nil {
					return "", err
				}
				return id + ":" + base64.StdEncoding.EncodeToString(secret) + "\n", nil
			})
			if err != nil {
				return fmt.Errorf("codec-keygen: %w", err)
			}
			report(c.stdout, keysFile, made, "key "+id)
			if tokenFile == "" {
				return nil
			}
			made, err = writeNew(tokenFile, func() (string, error) {
				b := make([]byte, 32)
				if _, err := rand.Read(b); err != nil {
					return "", err
				}
				return hex.EncodeToString(b) + "\n", nil
			})
			if err != nil {
				return fmt.Errorf("codec-keygen: %w", err)
			}
			report(c.stdout, tokenFile, made, "token")
			return nil
		},
	}
	cmd.Flags().StringVar(&keysFile, "keys-file", "", "the key file to write (required)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "also write a codec server bearer token here")
	_ = cmd.MarkFlagRequired("keys-file")
	return cmd
}

// writeNew writes what content returns to path, mode 0600, unless path exists.
func writeNew(path string, content func() (string, error)) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	s, err := content()
	if err == nil {
		_, err = f.WriteString(s)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// report says what codec-keygen did with a file, never its content.
func report(w io.Writer, path string, made bool, what string) {
	if made {
		fmt.Fprintf(w, "codec-keygen: wrote %s (%s, mode 0600)\n", path, what)
		return
	}
	fmt.Fprintf(w, "codec-keygen: %s exists, kept\n", path)
}
