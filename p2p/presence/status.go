// Package presence is the access server's view of which endpoints are
// online, away or offline, and where they accept signaling. The Store
// interface is the contract every presence backend implements: Memory, the
// embedded default, and out-of-process backends (a Redis plugin lets several
// access servers share one presence space). The conformance suite in
// presence/storetest holds every backend to the same contract.
package presence

import "github.com/baton-voice/baton/p2p/wire"

// Status is an endpoint's presence status.
type Status uint8

// Presence statuses. The zero value is StatusUnknown, which a Store never
// holds: a device it knows is offline, online or away.
const (
	StatusUnknown Status = iota
	StatusOffline
	StatusOnline
	StatusAway
)

func (s Status) String() string {
	switch s {
	case StatusOffline:
		return "offline"
	case StatusOnline:
		return "online"
	case StatusAway:
		return "away"
	}
	return "unknown"
}

// Reachable reports whether an endpoint with this status accepts direct
// signaling, so its address is worth publishing.
func (s Status) Reachable() bool { return s == StatusOnline || s == StatusAway }

// Wire returns the status as carried on the wire; StatusUnknown has no wire
// form and maps to "".
func (s Status) Wire() wire.Status {
	switch s {
	case StatusOffline:
		return wire.StatusOffline
	case StatusOnline:
		return wire.StatusOnline
	case StatusAway:
		return wire.StatusAway
	}
	return ""
}

// StatusFromWire converts a wire status; anything unknown is StatusUnknown.
func StatusFromWire(s wire.Status) Status {
	switch s {
	case wire.StatusOffline:
		return StatusOffline
	case wire.StatusOnline:
		return StatusOnline
	case wire.StatusAway:
		return StatusAway
	}
	return StatusUnknown
}
