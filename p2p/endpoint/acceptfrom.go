package endpoint

import (
	"fmt"
	"strings"

	"github.com/baton-voice/baton/p2p/pki"
)

// AcceptFrom says whose invites an endpoint answers. Whatever it says,
// the user's own other devices are always accepted (a handoff between
// them is the product's core), and outgoing calls reach only buddies and
// own devices: the access server gives an endpoint no address for anyone
// else.
type AcceptFrom int

const (
	// AcceptUnknown is the zero value; Config turns it into AcceptBuddies.
	AcceptUnknown AcceptFrom = iota
	// AcceptBuddies answers only buddies and the user's own devices, the
	// same rule as for outgoing calls. The default.
	AcceptBuddies
	// AcceptAnyone answers any user the access server authenticated.
	AcceptAnyone
)

// String returns the flag spelling: "buddies", "anyone".
func (a AcceptFrom) String() string {
	switch a {
	case AcceptBuddies:
		return "buddies"
	case AcceptAnyone:
		return "anyone"
	}
	return "unknown"
}

// ParseAcceptFrom parses "buddies" or "anyone".
func ParseAcceptFrom(s string) (AcceptFrom, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "buddies":
		return AcceptBuddies, nil
	case "anyone":
		return AcceptAnyone, nil
	}
	return AcceptUnknown, fmt.Errorf("%w: accept-from %q: want buddies or anyone", ErrInvalidConfig, s)
}

// isBuddy reports whether user is the endpoint's own user or one of its
// buddies (from the login profile, or a buddy whose presence arrived
// since).
func (e *Endpoint) isBuddy(user string) bool {
	if user == e.id.User {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.profile.Buddies {
		if b.User == user {
			return true
		}
	}
	for id := range e.presence {
		if id.User == user {
			return true
		}
	}
	return false
}

// mayCall applies AcceptFrom to an incoming invite from peer.
func (e *Endpoint) mayCall(peer pki.Identity) bool {
	return e.cfg.AcceptFrom == AcceptAnyone || e.isBuddy(peer.User)
}
