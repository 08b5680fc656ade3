package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
