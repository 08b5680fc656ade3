// Package pemfile reads the PEM files sanwatch's TLS settings name: CA
// bundles that verify servers (Temporal, SMTP, a samples engine, a
// receiver) or clients (the receiver's boxes).
package pemfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads the CA bundle at path into a pool. A file without a
// single PEM certificate is an error, not an empty pool (which would make
// every peer fail verification with a less clear message).
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}
