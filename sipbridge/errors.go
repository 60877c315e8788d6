package sipbridge

import "errors"

var (
	// ErrAuthFailed means the credentials are missing, malformed, for an
	// unknown user or wrong; callers answer all of these with the same 401.
	ErrAuthFailed = errors.New("sipbridge: authentication failed")
	// ErrStaleNonce means the credentials were right for a nonce that has
	// expired; the 401 carries stale=true (RFC 7616 §3.3).
	ErrStaleNonce = errors.New("sipbridge: stale nonce")
	// ErrReplay means a nonce count did not increase (RFC 7616 §3.3 nc).
	ErrReplay = errors.New("sipbridge: nonce count replayed")
)
