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
// roots and the time, and an entry is only served inside the window in
// which every certificate of the verified chain is valid (the latest
// NotBefore to the earliest NotAfter, root included) and for the same
// roots pool; outside it the chain is verified afresh. Roots are matched
// by pool (a *x509.CertPool can only gain certificates, and more roots
// never make a verified chain fail). Failures are never cached. Should
// VerifyEndpoint ever consult revocation, the cache must too.
//
// An entry is keyed on the leaf (and the roots pool), and holds the chain
// that actually verified: it is served only when the peer presents that
// leaf with nothing but certificates of that chain besides it, and with
// every intermediate of it. Certificates the peer adds that are not part
// of the verified chain are never part of a key: a peer that sends a new
// junk intermediate on each connection is verified afresh each time (its
// own handshake's cost) but makes no new entry, so it can neither grow
// the cache nor evict the entries of other peers (issue 11 §3).
//
// A Host shares one cache among all its endpoints (the peers of a
// gateway's devices are largely the same); a standalone endpoint has its
// own.
//
// The zero value is not usable; NewVerifyCache. Safe for concurrent use.
type VerifyCache struct {
	max int
	mu  sync.Mutex
	m   map[verifyKey]verified
}

type digest = [sha256.Size]byte

type verifyKey struct {
	roots *x509.CertPool
	leaf  digest
}

type verified struct {
	id   Identity
	leaf *x509.Certificate
	// chain holds the digests of the verified chain's certificates after
	// the leaf, root last; the intermediates (all but the root) must each
	// be presented for a hit.
	chain       []digest
	from, until time.Time
}

// NewVerifyCache returns a cache of at most max chains (when full, the
// entries past their window go first, then an arbitrary one).
func NewVerifyCache(max int) *VerifyCache {
	return &VerifyCache{max: max, m: make(map[verifyKey]verified)}
}

// Len returns how many chains the cache holds.
func (c *VerifyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Verify is VerifyEndpoint(rawCerts, roots, now) with the cache.
func (c *VerifyCache) Verify(rawCerts [][]byte, roots *x509.CertPool, now time.Time) (Identity, *x509.Certificate, error) {
	if c == nil || len(rawCerts) == 0 {
		return VerifyEndpoint(rawCerts, roots, now)
	}
	k := verifyKey{roots: roots, leaf: sha256.Sum256(rawCerts[0])}
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	if ok && !now.Before(v.from) && !now.After(v.until) && v.matches(rawCerts[1:]) {
		return v.id, v.leaf, nil
	}
	id, leaf, chains, err := verifyEndpoint(rawCerts, roots, now)
	if err != nil {
		return id, leaf, err
	}
	// Of several chains, the one with the widest window is what
	// VerifyEndpoint would accept the longest.
	best := -1
	for i, ch := range chains {
		from, until := window(ch)
		if best < 0 || until.Sub(from) > v.until.Sub(v.from) {
			best = i
			v.from, v.until = from, until
		}
	}
	v.id, v.leaf = id, leaf
	v.chain = make([]digest, 0, len(chains[best])-1)
	for _, cert := range chains[best][1:] {
		v.chain = append(v.chain, sha256.Sum256(cert.Raw))
	}
	// Filed under the leaf with the chain that verified, whatever else
	// the peer sent: what it adds never makes a key of its own.
	c.mu.Lock()
	if _, had := c.m[k]; !had && len(c.m) >= c.max {
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

// matches reports whether rest (the presented certificates after the
// leaf) holds every intermediate of v's chain and nothing outside the
// chain: then VerifyEndpoint finds that same chain among them and no
// other certificate it would parse.
func (v *verified) matches(rest [][]byte) bool {
	inter := v.chain[:len(v.chain)-1] // the root comes from the pool
	if len(rest) < len(inter) || len(inter) > 64 {
		return false
	}
	var seen uint64 // bit i: inter[i] presented (chains are short)
	for _, r := range rest {
		d := sha256.Sum256(r)
		in := false
		for i, cd := range v.chain {
			if d == cd {
				in = true
				if i < len(inter) {
					seen |= 1 << i
				}
			}
		}
		if !in {
			return false
		}
	}
	return seen == 1<<len(inter)-1
}

// window is the span in which every certificate of ch is valid.
func window(ch []*x509.Certificate) (from, until time.Time) {
	for j, cert := range ch {
		if j == 0 || cert.NotBefore.After(from) {
			from = cert.NotBefore
		}
		if j == 0 || cert.NotAfter.Before(until) {
			until = cert.NotAfter
		}
	}
	return from, until
}
