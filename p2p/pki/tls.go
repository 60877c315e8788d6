package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// serverNameSuffix ends every endpoint server name. ".invalid" is reserved
// (RFC 6761 §6.4): the name is a routing key for a Host, never a DNS name.
const serverNameSuffix = ".ep.baton.invalid"

// ServerName is the TLS server name (SNI, RFC 6066 §3) a dialer sends to
// reach the endpoint id: a Host serving many endpoints on one listener
// picks the endpoint by it. It is a digest of the identity, not the
// identity: user and device names may hold characters and lengths a host
// name may not (an "_", a 64-character label, ".."), and SNI travels in
// clear in the ClientHello, where the callee's name need not be shown.
// The form is 32 lowercase hex digits, one DNS label, then
// ".ep.baton.invalid". It is only a routing key: who the peer is is still
// proved by its certificate (EndpointClientConfig's check).
func ServerName(id Identity) string {
	sum := sha256.Sum256([]byte("baton endpoint server name\x00" + id.String()))
	return hex.EncodeToString(sum[:16]) + serverNameSuffix
}

// IsServerName reports whether name has the form ServerName makes.
func IsServerName(name string) bool {
	label, ok := strings.CutSuffix(name, serverNameSuffix)
	if !ok || len(label) != 32 {
		return false
	}
	for _, r := range label {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// VerifyEndpoint checks that chain[0] (raw DER certificates as presented in
// a TLS handshake) is an endpoint certificate issued by roots and valid at
// now, and returns the identity it binds.
func VerifyEndpoint(rawCerts [][]byte, roots *x509.CertPool, now time.Time) (Identity, *x509.Certificate, error) {
	id, leaf, _, err := verifyEndpoint(rawCerts, roots, now)
	return id, leaf, err
}

// verifyEndpoint is VerifyEndpoint, also returning the verified chains.
func verifyEndpoint(rawCerts [][]byte, roots *x509.CertPool, now time.Time) (Identity, *x509.Certificate, [][]*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return Identity{}, nil, nil, fmt.Errorf("%w: no certificate presented", ErrUntrusted)
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, r := range rawCerts {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return Identity{}, nil, nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return Identity{}, nil, nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	id, err := IdentityFromCert(certs[0])
	if err != nil {
		return Identity{}, nil, nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return id, certs[0], chains, nil
}

// PeerIdentity returns the verified identity of the peer of a completed
// handshake whose config came from EndpointServerConfig or
// EndpointClientConfig.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: no peer certificate", ErrUntrusted)
	}
	return IdentityFromCert(cs.PeerCertificates[0])
}

// EndpointServerConfig is the TLS 1.3 configuration an endpoint uses to
// accept direct signaling: the dialer must present a certificate issued by
// the access CA. getCert returns the endpoint's current certificate (it is
// renewed while the endpoint runs). now is the clock (time.Now in production).
func EndpointServerConfig(getCert func() (*tls.Certificate, error), roots *x509.CertPool, now func() time.Time) *tls.Config {
	return (*VerifyCache)(nil).ServerConfig(getCert, roots, now)
}

// ServerConfig is EndpointServerConfig verifying through the cache c (nil:
// no cache).
func (c *VerifyCache) ServerConfig(getCert func() (*tls.Certificate, error), roots *x509.CertPool, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return getCert()
		},
		// Chain verification is done in VerifyConnection against the access
		// CA only, with endpoint key usages; identities are not DNS names.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			_, _, err := c.Verify(raw, roots, now())
			return err
		},
		Time: now,
	}
}

// EndpointClientConfig is the TLS 1.3 configuration an endpoint uses to dial
// another endpoint directly. The handshake fails unless the peer proves
// exactly the identity expect. It asks for expect by ServerName(expect),
// so a Host with many endpoints on one port routes the connection.
func EndpointClientConfig(getCert func() (*tls.Certificate, error), roots *x509.CertPool, expect Identity, now func() time.Time) *tls.Config {
	return (*VerifyCache)(nil).ClientConfig(getCert, roots, expect, now)
}

// ClientConfig is EndpointClientConfig verifying through the cache c (nil:
// no cache).
func (c *VerifyCache) ClientConfig(getCert func() (*tls.Certificate, error), roots *x509.CertPool, expect Identity, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: ServerName(expect),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return getCert()
		},
		// Verified in VerifyConnection: chain to the access CA and identity.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			id, _, err := c.Verify(raw, roots, now())
			if err != nil {
				return err
			}
			if id != expect {
				return fmt.Errorf("%w: expected %s, peer proved %s", ErrIdentityMismatch, expect, id)
			}
			return nil
		},
		Time: now,
	}
}

// IdentitySessionCache returns a view of cache, for the client config of
// one dial to addr that expects the peer identity expect
// (EndpointClientConfig), that files TLS 1.3 session tickets under that
// identity and that address. crypto/tls itself keys a client's tickets by
// server name alone when ServerName is set (it always is here:
// ServerName(expect)), not by address; the prefix adds the address, so a
// ticket is only ever offered to a peer at the same address that proved
// expect in a full handshake. A peer that moved (another address, a
// gateway's device now behind another host) gets a full handshake: its
// old ticket, an identifier sent in clear in the ClientHello, would
// otherwise link its two addresses for an observer (RFC 8446 §C.4).
//
// Resumption keeps the checks of a full handshake: crypto/tls restores
// the peer's certificates from the ticket and calls VerifyConnection on
// resumed connections too (both sides), so the chain is verified against
// roots at the current time and the identity compared with expect on
// every connection; what a resumed handshake skips is the two
// CertificateVerify signatures, the proof of key possession being the
// PSK that the full, mutually authenticated handshake between the same
// two certificates established (RFC 8446 §2.2, §4.6.1). Resumption is
// psk_dhe_ke only (crypto/tls), so each connection still has a fresh
// (EC)DHE key exchange and forward secrecy.
func IdentitySessionCache(cache tls.ClientSessionCache, expect Identity, addr netip.AddrPort) tls.ClientSessionCache {
	return identityCache{cache: cache, prefix: expect.String() + " " + addr.String() + " "}
}

type identityCache struct {
	cache  tls.ClientSessionCache
	prefix string
}

func (c identityCache) Get(key string) (*tls.ClientSessionState, bool) {
	return c.cache.Get(c.prefix + key)
}

func (c identityCache) Put(key string, cs *tls.ClientSessionState) {
	c.cache.Put(c.prefix+key, cs)
}
