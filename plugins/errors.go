package plugins

import "errors"

// Sentinel errors returned (wrapped, with the plugin's name and path) by
// the host. Test for them with errors.Is.
var (
	// ErrNotPlugin means the binary did not answer the go-plugin handshake:
	// it exited (or crashed) before it, or is not a Baton plugin at all.
	ErrNotPlugin = errors.New("not a Baton plugin, or it crashed at start")

	// ErrStdoutBeforeHandshake means the binary wrote something else than
	// the handshake line to stdout first. Plugins must log to stderr.
	ErrStdoutBeforeHandshake = errors.New("plugin wrote to stdout before its handshake")

	// ErrVersion means the plugin speaks no protocol version the host
	// speaks for its kind.
	ErrVersion = errors.New("incompatible plugin protocol version")

	// ErrWrongKind means the plugin serves another kind than configured.
	ErrWrongKind = errors.New("plugin is of another kind")

	// ErrChecksum means the binary's sha256 is not the configured (or, on
	// restart, the pinned) one.
	ErrChecksum = errors.New("plugin binary checksum mismatch")

	// ErrStartTimeout means the plugin did not complete its handshake
	// within the start timeout.
	ErrStartTimeout = errors.New("plugin start timed out")

	// ErrUnavailable means the plugin is not running (it died, hangs, or is
	// being restarted). Callers apply their fail mode.
	ErrUnavailable = errors.New("plugin unavailable")

	// ErrUnhealthy means the plugin answered its health check with an
	// error, or not within the health deadline.
	ErrUnhealthy = errors.New("plugin unhealthy")

	// ErrSelfTest means the plugin's self-test failed.
	ErrSelfTest = errors.New("plugin self-test failed")

	// ErrClosed means the plugin client was closed.
	ErrClosed = errors.New("plugin closed")

	// ErrConfig means a plugin configuration is invalid.
	ErrConfig = errors.New("invalid plugin configuration")
)
