package media

import "errors"

// Sentinel errors returned (wrapped, with details) by this package. Test for
// them with errors.Is.
var (
	// ErrClosed means the Session was used after Close.
	ErrClosed = errors.New("session closed")

	// ErrNoCodec means Config.Codec is nil.
	ErrNoCodec = errors.New("no codec")

	// ErrInvalidCodec means the codec's Descriptor cannot drive a media
	// session: non-positive sample or clock rate, or a payload type outside
	// 0..127 (RFC 3550 §5.1 gives the field 7 bits).
	ErrInvalidCodec = errors.New("invalid codec descriptor")

	// ErrInvalidPtime means Config.Ptime is outside the range this package
	// supports, or too short to hold one sample / one timestamp tick.
	ErrInvalidPtime = errors.New("invalid packet time")

	// ErrInvalidJitterDelay means Config.JitterDelay is negative or larger
	// than MaxJitterDelay.
	ErrInvalidJitterDelay = errors.New("invalid jitter delay")

	// ErrInvalidStaleTimeout means Config.StaleSourceTimeout is negative.
	ErrInvalidStaleTimeout = errors.New("invalid stale source timeout")

	// ErrInvalidAddress means a local address to bind is not a valid
	// IP:port.
	ErrInvalidAddress = errors.New("invalid address")

	// ErrKeysMismatch means exactly one of Config.SendKeys and
	// Config.RecvKeys is set: a session is either plain RTP both ways or
	// SRTP both ways.
	ErrKeysMismatch = errors.New("send and receive keys must both be set or both be nil")

	// ErrInvalidKeys means a byte string is not an SRTP master key and salt
	// (KeysLen bytes).
	ErrInvalidKeys = errors.New("invalid srtp keys")
)
