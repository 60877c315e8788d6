package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// VerifyCache remembers the endpoint chains VerifyEndpoint accepted, so
// that an endpoint that signals with the same peers again and again (a
// gateway's devices, one TLS connection per call) does not re-check the
// CA's signature on each connection. It is exact, not a weaker check:
// what VerifyEndpoint decides depends only on the chain's bytes, the
// roots and the time, and an entry holds for the same chain bytes and
// roots pool only, and only inside the window in which every certificate
// of the verified chain is valid (the latest NotBefore to the earliest
// NotAfter, root included); outside it the chain is verified afresh.
// Roots are matched by pool (a *x509.CertPool can only gain certificates,
// and more roots never make a verified chain fail). Failures are never
// cached. Should VerifyEndpoint ever consult revocation, the cache must
// too.
//
// The zero value is not usable; NewVerifyCache. Safe for concurrent use.
type VerifyCache struct {
	max int
	mu  sync.Mutex
	m   map[verifyKey]verified
}

type verifyKey struct {
	roots *x509.CertPool
	chain [sha256.Size]byte
}

type verified struct {
	id          Identity
	leaf        *x509.Certificate
	from, until time.Time
}

// NewVerifyCache returns a cache of at most max chains (when full, the
// entries past their window go first, then an arbitrary one).
func NewVerifyCache(max int) *VerifyCache {
	return &VerifyCache{max: max, m: make(map[verifyKey]verified)}
}

// Verify is VerifyEndpoint(rawCerts, roots, now) with the cache.
func (c *VerifyCache) Verify(rawCerts [][]byte, roots *x509.CertPool, now time.Time) (Identity, *x509.Certificate, error) {
	if c == nil {
		return VerifyEndpoint(rawCerts, roots, now)
	}
	h := sha256.New()
	for _, r := range rawCerts {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(r)>>24), byte(len(r)>>16), byte(len(r)>>8), byte(len(r))
		h.Write(n[:]) // length-prefixed: no two chains hash the same bytes
		h.Write(r)
	}
	k := verifyKey{roots: roots}
	h.Sum(k.chain[:0])
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	if ok && !now.Before(v.from) && !now.After(v.until) {
		return v.id, v.leaf, nil
	}
	id, leaf, chains, err := verifyEndpoint(rawCerts, roots, now)
	if err != nil {
		return id, leaf, err
	}
	v = verified{id: id, leaf: leaf}
	for i, ch := range chains {
		// The window in which this chain is valid; of several chains, the
		// widest is what VerifyEndpoint would accept.
		var from, until time.Time
		for j, cert := range ch {
			if j == 0 || cert.NotBefore.After(from) {
				from = cert.NotBefore
			}
			if j == 0 || cert.NotAfter.Before(until) {
				until = cert.NotAfter
			}
		}
		if i == 0 || until.Sub(from) > v.until.Sub(v.from) {
			v.from, v.until = from, until
		}
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		for key, old := range c.m {
			if now.After(old.until) || now.Before(old.from) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = v
	c.mu.Unlock()
	return id, leaf, nil
}
