package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names inside the access server's data directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// clockSkew back-dates certificates so a peer whose clock is slightly behind
// still accepts them.
const clockSkew = 5 * time.Minute

// CA is the access server's certificate authority.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// NewKey generates an endpoint or server key pair (ECDSA P-256).
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

func serial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s, nil
}

// LoadOrCreateCA loads the CA from dir, or creates it (and dir) on first run.
// The key file is written with mode 0600.
func LoadOrCreateCA(dir string, now time.Time) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certPEM, errC := os.ReadFile(certPath)
	keyPEM, errK := os.ReadFile(keyPath)
	switch {
	case errC == nil && errK == nil:
		return parseCA(certPEM, keyPEM, certPath, keyPath)
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
	case errC != nil && !errors.Is(errC, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s: %w", ErrCAFile, certPath, errC)
	case errK != nil && !errors.Is(errK, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s: %w", ErrCAFile, keyPath, errK)
	default:
		return nil, fmt.Errorf("%w: only one of %s and %s exists", ErrCAFile, certPath, keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create data dir: %w", err)
	}
	ca, keyDER, err := newCA(now)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("pki: write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, ca.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("pki: write %s: %w", certPath, err)
	}
	return ca, nil
}

func newCA(now time.Time) (*CA, []byte, error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Baton access CA", Organization: []string{"Baton"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: marshal CA key: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, keyDER, nil
}

func parseCA(certPEM, keyPEM []byte, certPath, keyPath string) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: %s: no CERTIFICATE block", ErrCAFile, certPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCAFile, certPath, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%w: %s: no PEM block", ErrCAFile, keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCAFile, keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: key cannot sign", ErrCAFile, keyPath)
	}
	// A key of another CA would only fail at the first issue: refuse it now.
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s: key does not match %s", ErrCAFile, keyPath, certPath)
	}
	return &CA{cert: cert, certPEM: certPEM, key: signer}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM: what endpoints trust.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Fingerprint returns the SHA-256 of the CA certificate, hex encoded.
func (ca *CA) Fingerprint() string {
	s := sha256.Sum256(ca.cert.Raw)
	return hex.EncodeToString(s[:])
}

// IssueEndpoint issues a certificate binding id to pub, valid from now for
// ttl (back-dated a little for clock skew). It is good for TLS client and
// server authentication, since endpoints both dial and accept signaling.
func (ca *CA) IssueEndpoint(pub crypto.PublicKey, id Identity, now time.Time, ttl time.Duration) ([]byte, time.Time, error) {
	return ca.issueEndpoint(pub, id, "", now, ttl)
}

// IssueBridged is IssueEndpoint for a device a gateway bridges (a SIP
// phone): the certificate also says so, with the URI SAN
// baton-gateway:NAME and the subject's organizational unit, so a peer can
// show "alice/desk (SIP, via gateway gw1)" (BridgedBy).
func (ca *CA) IssueBridged(pub crypto.PublicKey, id Identity, gateway string, now time.Time, ttl time.Duration) ([]byte, time.Time, error) {
	if !ValidName(gateway) {
		return nil, time.Time{}, fmt.Errorf("%w: gateway %q: want 1-64 of [a-z0-9._-]", ErrInvalidIdentity, gateway)
	}
	return ca.issueEndpoint(pub, id, gateway, now, ttl)
}

func (ca *CA) issueEndpoint(pub crypto.PublicKey, id Identity, gateway string, now time.Time, ttl time.Duration) ([]byte, time.Time, error) {
	if err := id.Validate(); err != nil {
		return nil, time.Time{}, err
	}
	sn, err := serial()
	if err != nil {
		return nil, time.Time{}, err
	}
	// Certificates store whole seconds; report the same instant.
	notAfter := now.Add(ttl).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: id.String(), Organization: []string{"Baton endpoint"}},
		URIs:         []*url.URL{id.uri()},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if gateway != "" {
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: gatewayURIScheme, Opaque: gateway})
		tmpl.Subject.OrganizationalUnit = []string{bridgedOU + gateway}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("pki: issue %s: %w", id, err)
	}
	return der, notAfter, nil
}

// IssueServer issues the access server's own TLS certificate for names
// (DNS names or IP addresses).
func (ca *CA) IssueServer(pub crypto.PublicKey, names []string, now time.Time, ttl time.Duration) ([]byte, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "Baton access server"},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue server certificate: %w", err)
	}
	return der, nil
}

// LoadCAFile reads a PEM CA certificate (the access server's ca.crt) into a
// pool that trusts only it.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s: no PEM certificate in it", ErrCAFile, path)
	}
	return p, nil
}
