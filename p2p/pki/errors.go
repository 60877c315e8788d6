package pki

import "errors"

// Sentinel errors. Returned errors wrap them with detail.
var (
	// ErrNoIdentity means a certificate carries no Baton identity.
	ErrNoIdentity = errors.New("pki: certificate has no baton identity")
	// ErrInvalidIdentity means a string is not a valid "user/device".
	ErrInvalidIdentity = errors.New("pki: invalid identity")
	// ErrIdentityMismatch means the peer proved an identity other than the
	// one expected (a peer presenting another user's identity).
	ErrIdentityMismatch = errors.New("pki: peer identity mismatch")
	// ErrUntrusted means a peer certificate does not chain to the access CA,
	// is expired, or is not yet valid.
	ErrUntrusted = errors.New("pki: untrusted peer certificate")
	// ErrCAFile means the CA files in the data directory are unusable.
	ErrCAFile = errors.New("pki: bad CA file")
)
