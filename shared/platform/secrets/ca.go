package secrets

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// CAName is the secret holding the PEM bundle of the CA that signed the
// store's and NATS' certificates, when that is a private CA (stack.yml
// lists it for every function).
const CAName = "pulsevault-ca"

// TrustCA makes this process trust the CA bundle in secret CAName: when the
// secret holds at least one certificate and SSL_CERT_FILE is unset, it sets
// SSL_CERT_FILE to it, which Go's TLS clients (S3, NATS, JWKS) read besides
// the system's certificate directories (/etc/ssl/certs). It must run before
// the first TLS connection. It returns the file it set, or "" when there is
// no such secret, it holds no certificate (the local stack's placeholder)
// or SSL_CERT_FILE is already set.
func TrustCA() (string, error) {
	if os.Getenv("SSL_CERT_FILE") != "" {
		return "", nil
	}
	path := filepath.Join(Dir(), CAName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return "", nil
	}
	return path, os.Setenv("SSL_CERT_FILE", path)
}
