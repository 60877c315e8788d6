// Package pki is the access server's certificate authority and the TLS
// settings endpoints use to authenticate each other with the credentials it
// issues. An endpoint certificate binds user + device + public key; the
// private key is generated on the endpoint and never leaves it.
package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	"github.com/baton-voice/baton/p2p/wire"
)

// uriScheme is the scheme of the URI SAN that carries a Baton identity:
// baton:user/device.
const uriScheme = "baton"

// gatewayURIScheme is the scheme of the URI SAN that marks a bridged
// device's certificate with the gateway bridging it: baton-gateway:gw1.
// bridgedOU is the same said for people, in the subject.
const (
	gatewayURIScheme = "baton-gateway"
	bridgedOU        = "bridged SIP device via gateway "
)

// Identity names one device of one user.
type Identity struct {
	User   string
	Device string
}

// String returns "user/device".
func (id Identity) String() string { return id.User + "/" + id.Device }

// IsZero reports whether id is empty.
func (id Identity) IsZero() bool { return id.User == "" && id.Device == "" }

// ValidName reports whether s is a valid user or device name:
// 1-64 characters of [a-z0-9._-], starting with a letter or digit. The
// rule is the wire protocol's (wire.ValidName).
func ValidName(s string) bool { return wire.ValidName(s) }

// Validate checks both names.
func (id Identity) Validate() error {
	if !ValidName(id.User) {
		return fmt.Errorf("%w: user %q: want 1-64 of [a-z0-9._-]", ErrInvalidIdentity, id.User)
	}
	if !ValidName(id.Device) {
		return fmt.Errorf("%w: device %q: want 1-64 of [a-z0-9._-]", ErrInvalidIdentity, id.Device)
	}
	return nil
}

// ParseIdentity parses "user/device".
func ParseIdentity(s string) (Identity, error) {
	u, d, ok := strings.Cut(s, "/")
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q: want user/device", ErrInvalidIdentity, s)
	}
	id := Identity{User: u, Device: d}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

func (id Identity) uri() *url.URL {
	return &url.URL{Scheme: uriScheme, Opaque: id.String()}
}

// IdentityFromCert extracts the identity bound into an endpoint certificate.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	for _, u := range c.URIs {
		if u.Scheme == uriScheme {
			return ParseIdentity(u.Opaque)
		}
	}
	return Identity{}, ErrNoIdentity
}

// BridgedBy returns the gateway named in a bridged device's certificate
// (IssueBridged), or "" for an ordinary endpoint's. Only a certificate
// that verified against the access CA says anything: the CA alone writes
// the marker, when a gateway credential logs the device in.
func BridgedBy(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	for _, u := range c.URIs {
		if u.Scheme == gatewayURIScheme && ValidName(u.Opaque) {
			return u.Opaque
		}
	}
	return ""
}
