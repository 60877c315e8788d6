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
	// ErrCrypto means an a=crypto attribute is malformed (RFC 4568 §9.1);
	// it comes wrapped with ErrInvalid and the attribute quoted.
	ErrCrypto = errors.New("sipbridge/sdp: bad crypto attribute")
	// ErrSRTPRequired means the far side's description is plain RTP (no
	// usable a=crypto) while our policy is SRTPRequired: 488.
	ErrSRTPRequired = errors.New("sipbridge/sdp: SRTP required, the description offers plain RTP")
	// ErrSRTPOff means the offer is RTP/SAVP while our policy is SRTPOff:
	// we cannot answer the profile (RFC 3264 §6), 488.
	ErrSRTPOff = errors.New("sipbridge/sdp: RTP/SAVP offered, SRTP is off")
	// ErrNoUsableCrypto means an RTP/SAVP description has no a=crypto we
	// can key (unknown suites, MKI or session parameters): 488.
	ErrNoUsableCrypto = errors.New("sipbridge/sdp: no usable crypto attribute")
)
