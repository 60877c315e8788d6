package sdp

import "errors"

var (
	// ErrNoCommonCodec means the offer lists none of our preferred codecs;
	// the answerer rejects the call (RFC 3264 §6: 488 Not Acceptable Here).
	ErrNoCommonCodec = errors.New("sipbridge/sdp: no common codec")
	// ErrNoAudio means the description has no audio m= line.
	ErrNoAudio = errors.New("sipbridge/sdp: no audio media")
	// ErrInvalid means the description is malformed or uses a value this
	// package refuses (bad address, port, payload type or rtpmap).
	ErrInvalid = errors.New("sipbridge/sdp: invalid description")
	// ErrUnknownCodec means a preference names a codec this package cannot
	// offer (no static or default dynamic payload type known for it).
	ErrUnknownCodec = errors.New("sipbridge/sdp: unknown codec")
)
