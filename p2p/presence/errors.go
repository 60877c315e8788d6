package presence

import "errors"

// Sentinel errors returned (usually wrapped) by stores. Test for them with
// errors.Is; every Store implementation returns these, so callers do not
// depend on the backend.
var (
	// ErrClosed means the store has been closed; no operation succeeds after
	// Close.
	ErrClosed = errors.New("presence store closed")

	// ErrInvalidEntry means an entry passed to Put cannot be stored: a user
	// or device name that is not a valid name (pki.ValidName), or an
	// unknown status.
	ErrInvalidEntry = errors.New("invalid presence entry")
)
