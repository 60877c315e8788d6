package presence

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// Entry is the presence of one device of one user.
type Entry struct {
	User   string
	Device string
	Status Status
	// SignalAddr is where the device accepts direct signaling. It is
	// meaningful only while the device is online or away; offline entries
	// carry the zero value.
	SignalAddr netip.AddrPort
	// Since is when the device entered Status.
	Since time.Time
}

// Validate checks what a Store relies on: valid names and a known status.
func (e Entry) Validate() error {
	if !pki.ValidName(e.User) {
		return fmt.Errorf("%w: user %q: want 1-64 of [a-z0-9._-]", ErrInvalidEntry, e.User)
	}
	if !pki.ValidName(e.Device) {
		return fmt.Errorf("%w: device %q: want 1-64 of [a-z0-9._-]", ErrInvalidEntry, e.Device)
	}
	switch e.Status {
	case StatusOffline, StatusOnline, StatusAway:
	default:
		return fmt.Errorf("%w: %s/%s: status %s", ErrInvalidEntry, e.User, e.Device, e.Status)
	}
	return nil
}

// Wire returns the entry as carried in profiles and presence pushes. The
// signaling address is published only while the device is reachable, so an
// offline device's stale address never reaches another endpoint.
func (e Entry) Wire() wire.Device {
	d := wire.Device{User: e.User, Device: e.Device, Status: e.Status.Wire()}
	if e.Status.Reachable() && e.SignalAddr.IsValid() {
		d.SignalAddr = e.SignalAddr.String()
	}
	if !e.Since.IsZero() {
		d.SinceUnix = e.Since.Unix()
	}
	return d
}

// Store holds presence and tells watchers about every change. It is the
// contract of every presence backend; implementations must be safe for
// concurrent use, and nothing in it assumes the store lives in the same
// process as its callers (several access servers may share one store).
//
// Offline entries are kept: after Delete, Get reports the device as offline
// and ListUser still lists it, which is how a profile can name a user's
// devices that are not online. A backend may forget offline entries after a
// retention period it documents (Memory keeps them until Close).
type Store interface {
	// Put sets or replaces the entry for e.User/e.Device and notifies
	// watchers with e. A zero Since is set to the store's clock; an offline
	// entry is stored without a SignalAddr. Invalid entries fail with
	// ErrInvalidEntry and change nothing.
	Put(ctx context.Context, e Entry) error

	// Delete takes a device offline: its entry becomes StatusOffline, with
	// no SignalAddr and Since set to the store's clock, and watchers are
	// notified with that entry. Deleting a device that is unknown or
	// already offline is a no-op and notifies nobody.
	Delete(ctx context.Context, user, device string) error

	// Get returns the entry for user/device and whether the store knows
	// the device.
	Get(ctx context.Context, user, device string) (Entry, bool, error)

	// ListUser returns every device the store knows for user, any status,
	// sorted by device name. An unknown user has no entries (and no error).
	ListUser(ctx context.Context, user string) ([]Entry, error)

	// Watch returns a channel that receives every change made after Watch
	// returns (by Put and Delete, from any client of the store), in the
	// order the store applied them; every watcher sees the same order.
	//
	// The channel is closed when ctx ends, when the store is closed, or
	// when the backend can no longer deliver every change (for example a
	// dropped subscription to a remote store). A watcher is never silently
	// skipped over a change: either it receives every change in order, or
	// its channel is closed and it must call Watch again and re-read the
	// state it cares about. Put and Delete never block on a slow watcher;
	// Memory gives each watcher an unbounded queue, a remote backend may
	// instead close a watcher that falls too far behind.
	Watch(ctx context.Context) (<-chan Entry, error)

	// Close releases the store and closes every watcher's channel. It is
	// idempotent; afterwards every method returns ErrClosed.
	Close() error
}
