package sipbridge

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
)

// HA1 is MD5(user ":" realm ":" password) in hex (RFC 2617 §3.2.2.2), the
// only form in which account secrets are stored.
func HA1(user, realm, password string) string {
	sum := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(sum[:])
}

// Verifier issues digest challenges and checks credentials (RFC 3261 §22,
// RFC 7616 with qop=auth, MD5). Nonces are base64(timestamp || HMAC(key,
// timestamp)), so they need no server state to validate and they expire;
// the last nonce count seen per nonce is kept to refuse replays.
type Verifier struct {
	Realm    string
	NonceTTL time.Duration
	Now      func() time.Time
	Lookup   func(user string) (ha1 string, ok bool)

	key   [32]byte
	dummy string // HA1 compared against when the user is unknown

	mu      sync.Mutex
	nc      map[string]int // nonce -> highest nc accepted
	pruneAt int            // table size at which expired nonces are dropped
}

// NewVerifier returns a Verifier with a random nonce key.
func NewVerifier(realm string, ttl time.Duration, now func() time.Time, lookup func(string) (string, bool)) *Verifier {
	v := &Verifier{Realm: realm, NonceTTL: ttl, Now: now, Lookup: lookup, nc: map[string]int{}, pruneAt: 1024}
	_, _ = rand.Read(v.key[:])
	v.dummy = HA1("\x00dummy", realm, base64.StdEncoding.EncodeToString(v.key[:8]))
	return v
}

func (v *Verifier) nonceAt(t time.Time) string {
	// 8 bytes issue time, 8 random bytes so that clients never share a
	// nonce (and so its nc sequence), then the HMAC of both.
	var ts [16]byte
	binary.BigEndian.PutUint64(ts[:8], uint64(t.Unix()))
	_, _ = rand.Read(ts[8:])
	m := hmac.New(sha256.New, v.key[:])
	m.Write(ts[:])
	return base64.RawURLEncoding.EncodeToString(append(ts[:], m.Sum(nil)...))
}

// Challenge returns a WWW-Authenticate value with a fresh nonce.
func (v *Verifier) Challenge(stale bool) string {
	c := digest.Challenge{Realm: v.Realm, Nonce: v.nonceAt(v.Now()), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

// checkNonce reports whether the nonce is ours and whether it has expired.
func (v *Verifier) checkNonce(n string) (ours, expired bool) {
	raw, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(raw) != 16+sha256.Size {
		return false, false
	}
	m := hmac.New(sha256.New, v.key[:])
	m.Write(raw[:16])
	if !hmac.Equal(m.Sum(nil), raw[16:]) {
		return false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return true, v.Now().Sub(issued) > v.NonceTTL
}

// pruneLocked forgets the nonce counts of expired nonces (they are refused
// as stale before their count is looked at), so the table holds only the
// nonces of the last NonceTTL.
func (v *Verifier) pruneLocked() {
	for n := range v.nc {
		if _, expired := v.checkNonce(n); expired {
			delete(v.nc, n)
		}
	}
	v.pruneAt = max(1024, 2*len(v.nc))
}

// Verify checks an Authorization header for method. It returns the user on
// success; ErrStaleNonce for right credentials on an expired nonce; ErrReplay
// for a repeated nc; otherwise ErrAuthFailed. An unknown user is checked
// against a dummy HA1 so it costs the same work as a wrong password.
func (v *Verifier) Verify(header, method string) (string, error) {
	cred, err := digest.ParseCredentials(header)
	if err != nil {
		return "", fmt.Errorf("sipbridge: digest: %w", ErrAuthFailed)
	}
	ha1, known := v.Lookup(cred.Username)
	if !known {
		ha1 = v.dummy
	}
	a2 := md5hex(method + ":" + cred.URI)
	var want string
	if strings.EqualFold(cred.QOP, "auth") {
		want = md5hex(fmt.Sprintf("%s:%s:%08x:%s:auth:%s", ha1, cred.Nonce, cred.Nc, cred.Cnonce, a2))
	} else {
		want = md5hex(ha1 + ":" + cred.Nonce + ":" + a2)
	}
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cred.Response))) == 1
	ours, expired := v.checkNonce(cred.Nonce)
	if !known || !match || !ours || cred.Realm != v.Realm || !strings.EqualFold(cred.QOP, "auth") {
		return "", fmt.Errorf("sipbridge: digest: %w", ErrAuthFailed)
	}
	if expired {
		return "", fmt.Errorf("sipbridge: digest: %w", ErrStaleNonce)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if cred.Nc <= v.nc[cred.Nonce] {
		return "", fmt.Errorf("sipbridge: digest nc %d: %w", cred.Nc, ErrReplay)
	}
	v.nc[cred.Nonce] = cred.Nc
	if len(v.nc) >= v.pruneAt {
		v.pruneLocked()
	}
	return cred.Username, nil
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
