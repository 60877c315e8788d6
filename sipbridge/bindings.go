package sipbridge

import (
	"sync"
	"time"
)

// Bindings holds the contacts registered per address-of-record (RFC 3261
// §10.3) with their expiry. OnChange is called, under no lock, when an AOR
// goes from no live contact to some (online) or back (offline).
type Bindings struct {
	Now      func() time.Time
	OnChange func(aor string, online bool)

	mu   sync.Mutex
	aors map[string]map[string]time.Time // aor -> contact URI -> expiry
}

// Set adds or refreshes a contact; expires 0 removes it (RFC 3261 §10.2.2).
func (b *Bindings) Set(aor, contact string, expires time.Duration) {
	b.change(aor, func(m map[string]time.Time) {
		if expires <= 0 {
			delete(m, contact)
			return
		}
		m[contact] = b.Now().Add(expires)
	})
}

// RemoveAll removes every contact of aor (Contact: * with Expires: 0).
func (b *Bindings) RemoveAll(aor string) {
	b.change(aor, func(m map[string]time.Time) { clear(m) })
}

// Expire drops contacts whose expiry has passed; the owner calls it from a
// ticker.
func (b *Bindings) Expire() {
	b.mu.Lock()
	aors := make([]string, 0, len(b.aors))
	for aor := range b.aors {
		aors = append(aors, aor)
	}
	b.mu.Unlock()
	now := b.Now()
	for _, aor := range aors {
		b.change(aor, func(m map[string]time.Time) {
			for c, exp := range m {
				if !now.Before(exp) {
					delete(m, c)
				}
			}
		})
	}
}

// Contacts returns the live contacts of aor.
func (b *Bindings) Contacts(aor string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.Now()
	var out []string
	for c, exp := range b.aors[aor] {
		if now.Before(exp) {
			out = append(out, c)
		}
	}
	return out
}

func (b *Bindings) change(aor string, f func(map[string]time.Time)) {
	b.mu.Lock()
	if b.aors == nil {
		b.aors = map[string]map[string]time.Time{}
	}
	m := b.aors[aor]
	if m == nil {
		m = map[string]time.Time{}
		b.aors[aor] = m
	}
	before := len(m) > 0
	f(m)
	after := len(m) > 0
	if !after {
		delete(b.aors, aor)
	}
	cb := b.OnChange
	b.mu.Unlock()
	if before != after && cb != nil {
		cb(aor, after)
	}
}

// ExpiresIn is how long the contact of aor stays registered (0 when it is
// not), for the Contact expires parameter of a 200 to REGISTER.
func (b *Bindings) ExpiresIn(aor, contact string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	exp, ok := b.aors[aor][contact]
	if !ok {
		return 0
	}
	if d := exp.Sub(b.Now()); d > 0 {
		return d.Round(time.Second)
	}
	return 0
}
