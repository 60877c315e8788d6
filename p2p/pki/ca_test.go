package pki

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNow is the clock of these tests. Certificates carry whole seconds, so
// it has none below the second.
var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// newTestCA creates a CA in a fresh directory.
func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir(), testNow)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	return ca
}

// endpoint is an endpoint's key and its issued certificate.
type endpoint struct {
	id   Identity
	key  *ecdsa.PrivateKey
	der  []byte
	cert *x509.Certificate
}

func (e *endpoint) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{e.der}, PrivateKey: e.key, Leaf: e.cert}
}

// issue creates a key for id and has ca certify it at now for ttl.
func issue(t testing.TB, ca *CA, id Identity, now time.Time, ttl time.Duration) *endpoint {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := ca.IssueEndpoint(&key.PublicKey, id, now, ttl)
	if err != nil {
		t.Fatalf("IssueEndpoint(%s): %v", id, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &endpoint{id: id, key: key, der: der, cert: c}
}

// signRaw has ca sign an arbitrary template, for certificates IssueEndpoint
// would never produce (no identity, wrong key usage, intermediate CA...).
func signRaw(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey any, pub any) []byte {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var (
	alice = Identity{User: "alice", Device: "laptop"}
	bob   = Identity{User: "bob", Device: "mobile"}
)

func TestLoadOrCreateCACreates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "access") // does not exist yet
	ca, err := LoadOrCreateCA(dir, testNow)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := keyInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s mode = %v, want 0600", CAKeyFile, perm)
	}
	dirInfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dirInfo.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data dir mode = %v, want no group/other access", perm)
	}
	certFile, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatalf("cert file: %v", err)
	}
	if !bytes.Equal(certFile, ca.CertPEM()) {
		t.Error("ca.crt differs from CertPEM()")
	}
	keyFile, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyFile); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("ca.key is not a PEM PRIVATE KEY")
	}

	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Error("CA certificate is not a CA")
	}
	// No intermediate may be minted under the access CA.
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen = %d (zero flag %v), want 0", c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA key usage lacks cert sign")
	}
	if !c.NotBefore.Equal(testNow.Add(-clockSkew)) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, testNow.Add(-clockSkew))
	}
	if c.NotAfter.Before(testNow.AddDate(9, 0, 0)) {
		t.Errorf("NotAfter = %v, want about ten years on", c.NotAfter)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if len(ca.Fingerprint()) != 64 {
		t.Errorf("Fingerprint() = %q, want 64 hex digits", ca.Fingerprint())
	}
}

func TestLoadOrCreateCALoadsTheSameCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := LoadOrCreateCA(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	// A later start (any clock) loads the CA; it must not make a new one,
	// which would invalidate every credential already issued.
	second, err := LoadOrCreateCA(dir, testNow.Add(48*time.Hour))
	if err != nil {
		t.Fatalf("second LoadOrCreateCA: %v", err)
	}
	if first.Fingerprint() != second.Fingerprint() {
		t.Errorf("fingerprint changed: %s -> %s", first.Fingerprint(), second.Fingerprint())
	}
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Error("CertPEM changed")
	}
	// The loaded key still signs for the same CA.
	e := issue(t, second, alice, testNow, time.Hour)
	if _, _, err := VerifyEndpoint([][]byte{e.der}, first.Pool(), testNow); err != nil {
		t.Errorf("certificate issued by the reloaded CA does not verify against the original: %v", err)
	}
	other := newTestCA(t)
	if other.Fingerprint() == first.Fingerprint() {
		t.Error("two CAs share a fingerprint")
	}
}

func TestLoadOrCreateCABadFiles(t *testing.T) {
	t.Parallel()
	// Valid material to break in various ways.
	src := t.TempDir()
	if _, err := LoadOrCreateCA(src, testNow); err != nil {
		t.Fatal(err)
	}
	goodCert, err := os.ReadFile(filepath.Join(src, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	goodKey, err := os.ReadFile(filepath.Join(src, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if _, err := LoadOrCreateCA(otherDir, testNow); err != nil {
		t.Fatal(err)
	}
	otherKey, err := os.ReadFile(filepath.Join(otherDir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xDER, err := x509.MarshalPKCS8PrivateKey(xKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	certBlock, _ := pem.Decode(goodCert)

	const absent = "\x00absent" // marker: the file does not exist
	const isDir = "\x00dir"     // marker: a directory in place of the file
	tests := []struct {
		name     string
		cert     string
		key      string
		wantName []string // file names the error must mention
	}{
		{"only the certificate", string(goodCert), absent, []string{CACertFile, CAKeyFile}},
		{"only the key", absent, string(goodKey), []string{CACertFile, CAKeyFile}},
		{"certificate not PEM", "garbage", string(goodKey), []string{CACertFile}},
		{"certificate empty", "", string(goodKey), []string{CACertFile}},
		{"certificate wrong PEM type", string(pemOf("PRIVATE KEY", certBlock.Bytes)), string(goodKey), []string{CACertFile}},
		{"certificate bad DER", string(pemOf("CERTIFICATE", []byte("not DER"))), string(goodKey), []string{CACertFile}},
		{"certificate truncated", string(goodCert[:len(goodCert)/2]), string(goodKey), []string{CACertFile}},
		{"key not PEM", string(goodCert), "garbage", []string{CAKeyFile}},
		{"key empty", string(goodCert), "", []string{CAKeyFile}},
		{"key bad DER", string(goodCert), string(pemOf("PRIVATE KEY", []byte("not DER"))), []string{CAKeyFile}},
		{"key in SEC1 form", string(goodCert), string(pemOf("EC PRIVATE KEY", sec1)), []string{CAKeyFile}},
		{"key that cannot sign", string(goodCert), string(pemOf("PRIVATE KEY", xDER)), []string{CAKeyFile}},
		// A key from another CA loads today and only fails at the first
		// IssueEndpoint, long after startup; it is a corrupt CA pair.
		{"key of another CA", string(goodCert), string(otherKey), []string{CAKeyFile}},
		{"certificate path is a directory", isDir, string(goodKey), []string{CACertFile}},
		{"key path is a directory", string(goodCert), isDir, []string{CAKeyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write := func(name, content string) {
				p := filepath.Join(dir, name)
				switch content {
				case absent:
				case isDir:
					if err := os.Mkdir(p, 0o700); err != nil {
						t.Fatal(err)
					}
				default:
					if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(CACertFile, tt.cert)
			write(CAKeyFile, tt.key)
			before := snapshot(t, dir)

			_, err := LoadOrCreateCA(dir, testNow)
			if !errors.Is(err, ErrCAFile) {
				t.Fatalf("LoadOrCreateCA error = %v, want ErrCAFile", err)
			}
			for _, n := range tt.wantName {
				if !strings.Contains(err.Error(), filepath.Join(dir, n)) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
			// A broken CA is reported, never replaced: replacing it would
			// silently invalidate every credential issued so far.
			if after := snapshot(t, dir); after != before {
				t.Errorf("data dir changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshot describes the files in dir (names and contents).
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		b.WriteString(e.Name())
		if !e.IsDir() {
			c, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("=" + string(c))
		}
		b.WriteString(";")
	}
	return b.String()
}

func TestLoadCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCAFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatalf("LoadCAFile: %v", err)
	}
	e := issue(t, ca, alice, testNow, time.Hour)
	if _, _, err := VerifyEndpoint([][]byte{e.der}, pool, testNow); err != nil {
		t.Errorf("endpoint certificate does not verify against the loaded pool: %v", err)
	}
	// The pool trusts only that CA.
	stranger := issue(t, newTestCA(t), alice, testNow, time.Hour)
	if _, _, err := VerifyEndpoint([][]byte{stranger.der}, pool, testNow); !errors.Is(err, ErrUntrusted) {
		t.Errorf("certificate of another CA: err = %v, want ErrUntrusted", err)
	}

	if _, err := LoadCAFile(filepath.Join(dir, "missing.crt")); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Errorf("LoadCAFile(missing) = %v, want an error naming the file", err)
	}
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAFile(bad); !errors.Is(err, ErrCAFile) || !strings.Contains(err.Error(), "bad.crt") {
		t.Errorf("LoadCAFile(garbage) = %v, want ErrCAFile naming the file", err)
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	k1, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if k1.Curve != elliptic.P256() {
		t.Errorf("curve = %v, want P-256", k1.Curve.Params().Name)
	}
	if k1.Equal(k2) {
		t.Error("two keys are equal")
	}
}

func TestIssueEndpoint(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, notAfter, err := ca.IssueEndpoint(&key.PublicKey, alice, testNow, 12*time.Hour)
	if err != nil {
		t.Fatalf("IssueEndpoint: %v", err)
	}
	if !notAfter.Equal(testNow.Add(12 * time.Hour)) {
		t.Errorf("notAfter = %v, want %v", notAfter, testNow.Add(12*time.Hour))
	}
	id, c, err := VerifyEndpoint([][]byte{der}, ca.Pool(), testNow)
	if err != nil {
		t.Fatalf("VerifyEndpoint: %v", err)
	}
	if id != alice {
		t.Errorf("VerifyEndpoint identity = %v, want %v", id, alice)
	}
	if got, err := IdentityFromCert(c); err != nil || got != alice {
		t.Errorf("IdentityFromCert = %v, %v", got, err)
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		t.Error("certificate public key is not the endpoint's")
	}
	if err := c.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}
	if c.IsCA {
		t.Error("endpoint certificate is a CA")
	}
	if !c.NotAfter.Equal(notAfter) {
		t.Errorf("certificate NotAfter %v differs from the returned %v", c.NotAfter, notAfter)
	}
	if !c.NotBefore.Equal(testNow.Add(-clockSkew)) {
		t.Errorf("NotBefore = %v, want back-dated by %v", c.NotBefore, clockSkew)
	}
	// Endpoints both dial and accept signaling.
	var client, server bool
	for _, u := range c.ExtKeyUsage {
		client = client || u == x509.ExtKeyUsageClientAuth
		server = server || u == x509.ExtKeyUsageServerAuth
	}
	if !client || !server {
		t.Errorf("ExtKeyUsage = %v, want client and server auth", c.ExtKeyUsage)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "baton:alice/laptop" {
		t.Errorf("URIs = %v, want [baton:alice/laptop]", c.URIs)
	}
	// Two certificates never share a serial number.
	other := issue(t, ca, alice, testNow, time.Hour)
	if other.cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("serial number reused")
	}
}

func TestIssueEndpointRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     any
		id      Identity
		wantErr error // nil: any error
	}{
		{"zero identity", &key.PublicKey, Identity{}, ErrInvalidIdentity},
		{"bad user", &key.PublicKey, Identity{User: "Alice", Device: "laptop"}, ErrInvalidIdentity},
		{"bad device", &key.PublicKey, Identity{User: "alice", Device: "lap/top"}, ErrInvalidIdentity},
		{"injection into the URI", &key.PublicKey, Identity{User: "alice", Device: "laptop,baton:bob/mobile"}, ErrInvalidIdentity},
		{"no public key", nil, alice, nil},
		{"unsupported public key", "not a key", alice, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, _, err := ca.IssueEndpoint(tt.pub, tt.id, testNow, time.Hour)
			if err == nil {
				t.Fatal("IssueEndpoint succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if der != nil {
				t.Error("certificate returned with an error")
			}
		})
	}
}

func TestVerifyEndpoint(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	forger := newTestCA(t)
	good := issue(t, ca, alice, testNow, time.Hour)
	forged := issue(t, forger, alice, testNow, time.Hour)

	// Certificates IssueEndpoint would never make, signed by the real CA.
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	base := func(uris ...string) *x509.Certificate {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: "crafted"},
			NotBefore:   testNow.Add(-time.Hour),
			NotAfter:    testNow.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		}
		for _, s := range uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		}
		return tmpl
	}
	noURI := signRaw(t, base(), ca.cert, ca.key, &k.PublicKey)
	badURI := signRaw(t, base("baton:Alice/laptop"), ca.cert, ca.key, &k.PublicKey)
	emailEKU := base("baton:alice/laptop")
	emailEKU.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	wrongEKU := signRaw(t, emailEKU, ca.cert, ca.key, &k.PublicKey)

	// An intermediate CA under the access CA (which has path length 0) and
	// a leaf under it: the chain must not be accepted.
	ik, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	interTmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "rogue intermediate"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	interDER := signRaw(t, interTmpl, ca.cert, ca.key, &ik.PublicKey)
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		t.Fatal(err)
	}
	leafUnderInter := signRaw(t, base("baton:alice/laptop"), inter, ik, &k.PublicKey)

	serverDER, err := ca.IssueServer(&k.PublicKey, []string{"127.0.0.1"}, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		chain   [][]byte
		now     time.Time
		wantErr []error // all must match; nil = valid
	}{
		{"valid", [][]byte{good.der}, testNow, nil},
		{"valid within the clock-skew back-dating", [][]byte{good.der}, testNow.Add(-clockSkew + time.Second), nil},
		{"valid until the last second", [][]byte{good.der}, good.cert.NotAfter, nil},
		{"valid with an extra unrelated certificate", [][]byte{good.der, forged.der}, testNow, nil},
		{"expired", [][]byte{good.der}, good.cert.NotAfter.Add(time.Second), []error{ErrUntrusted}},
		{"not yet valid", [][]byte{good.der}, testNow.Add(-clockSkew - time.Second), []error{ErrUntrusted}},
		{"forged by another CA", [][]byte{forged.der}, testNow, []error{ErrUntrusted}},
		{"no URI SAN", [][]byte{noURI}, testNow, []error{ErrUntrusted, ErrNoIdentity}},
		{"invalid identity in the URI SAN", [][]byte{badURI}, testNow, []error{ErrUntrusted, ErrInvalidIdentity}},
		{"access server certificate", [][]byte{serverDER}, testNow, []error{ErrUntrusted}},
		{"wrong extended key usage", [][]byte{wrongEKU}, testNow, []error{ErrUntrusted}},
		{"the CA certificate itself", [][]byte{ca.cert.Raw}, testNow, []error{ErrUntrusted}},
		{"leaf under a rogue intermediate", [][]byte{leafUnderInter, interDER}, testNow, []error{ErrUntrusted}},
		{"nothing presented", nil, testNow, []error{ErrUntrusted}},
		{"garbage", [][]byte{[]byte("not a certificate")}, testNow, []error{ErrUntrusted}},
		{"garbage intermediate", [][]byte{good.der, {0x30, 0x00}}, testNow, []error{ErrUntrusted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, c, err := VerifyEndpoint(tt.chain, ca.Pool(), tt.now)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyEndpoint: %v", err)
				}
				if id != alice || c == nil || !bytes.Equal(c.Raw, tt.chain[0]) {
					t.Errorf("VerifyEndpoint = %v, %v", id, c)
				}
				return
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("VerifyEndpoint error = %v, want %v", err, want)
				}
			}
			if !id.IsZero() || c != nil {
				t.Errorf("VerifyEndpoint returned %v, %v with an error", id, c)
			}
		})
	}
}

// TestVerifyEndpointExpiredReason checks that an expired credential is
// reported as expired (x509.Expired), so logs say why.
func TestVerifyEndpointExpiredReason(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	e := issue(t, ca, alice, testNow, time.Hour)
	_, _, err := VerifyEndpoint([][]byte{e.der}, ca.Pool(), testNow.Add(2*time.Hour))
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Fatalf("err = %v, want an x509.Expired CertificateInvalidError", err)
	}
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("error %q does not say expired", err)
	}
	_, _, err = VerifyEndpoint([][]byte{issue(t, newTestCA(t), alice, testNow, time.Hour).der}, ca.Pool(), testNow)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("forged: err = %v, want x509.UnknownAuthorityError", err)
	}
}

func BenchmarkIssueEndpoint(b *testing.B) {
	ca, err := LoadOrCreateCA(b.TempDir(), testNow)
	if err != nil {
		b.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ca.IssueEndpoint(&key.PublicKey, alice, testNow, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEndpoint(b *testing.B) {
	ca, err := LoadOrCreateCA(b.TempDir(), testNow)
	if err != nil {
		b.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		b.Fatal(err)
	}
	der, _, err := ca.IssueEndpoint(&key.PublicKey, alice, testNow, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	pool := ca.Pool()
	chain := [][]byte{der}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := VerifyEndpoint(chain, pool, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
