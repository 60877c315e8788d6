package wire

import "errors"

// Sentinel errors returned by the frame codec and Conn. Callers match them
// with errors.Is; the returned errors wrap them with detail.
var (
	// ErrBadMagic means the bytes on the stream are not a Baton frame.
	ErrBadMagic = errors.New("wire: not a baton frame (bad magic)")
	// ErrVersion means the peer speaks a protocol version this build does not.
	ErrVersion = errors.New("wire: unsupported protocol version")
	// ErrTooLarge means a frame's declared payload exceeds the receiver's limit.
	ErrTooLarge = errors.New("wire: frame too large")
	// ErrTruncated means the stream ended inside a frame.
	ErrTruncated = errors.New("wire: truncated frame")
	// ErrSequence means a frame's sequence number is not the next one expected:
	// a replayed, reordered, dropped or injected frame.
	ErrSequence = errors.New("wire: out-of-sequence frame (replay or injection)")
	// ErrUnknownType means the frame carries a message type this build does
	// not know.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrMalformed means a payload could not be decoded or failed validation.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrUnexpected means a well-formed message arrived where another was
	// required (for example anything but a login request first).
	ErrUnexpected = errors.New("wire: unexpected message")
)

// RemoteError is an Error message received from the peer, returned as a Go
// error so callers can inspect its code with errors.As.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "remote error: " + string(e.Code)
	}
	return "remote error: " + string(e.Code) + ": " + e.Message
}
