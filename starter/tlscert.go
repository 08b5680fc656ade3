package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// tlsSelfSignedCmd writes a self-signed certificate for a server of the
// stack (the receiver in docker compose), the way codec-keygen writes the
// codec key: only when none is there, so it can run at every start.
func (c *cli) tlsSelfSignedCmd() *cobra.Command {
	var certFile, keyFile, hosts string
	var valid time.Duration
	cmd := &cobra.Command{
		Use:   "tls-selfsigned",
		Short: "Write a self-signed server certificate and key (PEM) unless the certificate exists",
		Long: "Write --cert-file and --key-file (mode 0600): an ECDSA P-256 key and a self-signed certificate for the\n" +
			"--hosts (DNS names and IP addresses), valid for --valid. An existing certificate is kept, so it can run at\n" +
			"every start (the compose stack makes the receiver's this way). Clients must trust this certificate\n" +
			"(curl --cacert cert.pem); for boxes in the field, use a certificate from your CA instead.",
		Args:              cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil }, // no configuration needed
		RunE: func(cmd *cobra.Command, _ []string) error {
			var names []string
			for _, h := range strings.Split(hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					names = append(names, h)
				}
			}
			if len(names) == 0 {
				return errors.New("tls-selfsigned: --hosts names no host")
			}
			if _, err := os.Stat(certFile); err == nil {
				fmt.Fprintf(c.stdout, "tls-selfsigned: %s exists, kept\n", certFile)
				return nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("tls-selfsigned: %w", err)
			}
			certPEM, keyPEM, err := selfSigned(names, time.Now(), valid)
			if err != nil {
				return fmt.Errorf("tls-selfsigned: %w", err)
			}
			// The key first: a certificate without its key is never left.
			if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
				return fmt.Errorf("tls-selfsigned: write key: %w", err)
			}
			if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
				return fmt.Errorf("tls-selfsigned: write certificate: %w", err)
			}
			fmt.Fprintf(c.stdout, "tls-selfsigned: wrote %s and %s for %s, valid until %s\n",
				certFile, keyFile, strings.Join(names, ", "), time.Now().Add(valid).UTC().Format(time.DateOnly))
			return nil
		},
	}
	cmd.Flags().StringVar(&certFile, "cert-file", "", "the certificate to write (required)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the private key to write (required)")
	cmd.Flags().StringVar(&hosts, "hosts", "localhost,127.0.0.1", "comma-separated DNS names and IP addresses the certificate is for")
	cmd.Flags().DurationVar(&valid, "valid", 825*24*time.Hour, "how long the certificate is valid")
	_ = cmd.MarkFlagRequired("cert-file")
	_ = cmd.MarkFlagRequired("key-file")
	return cmd
}

// selfSigned makes a P-256 key and a self-signed server certificate for
// names, valid from now for valid, both PEM-encoded.
func selfSigned(names []string, now time.Time, valid time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"sanwatch (self-signed)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(valid),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Its own CA, so that clients can trust it with --cacert.
		IsCA: true, BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
