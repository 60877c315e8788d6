package codecs

import "errors"

// Sentinel errors returned (usually wrapped) by this package. Test for them
// with errors.Is.
var (
	// ErrShortBuffer means the destination buffer passed to Encode or Decode
	// cannot hold the whole result. Nothing useful was written; the caller
	// should size dst from the input length (one byte per sample and one
	// sample per byte for G.711).
	ErrShortBuffer = errors.New("short buffer")

	// ErrDuplicate means a registry already holds a codec with the same name
	// (compared case-insensitively, as SDP encoding names are; RFC 4566 §6)
	// or the same RTP payload type.
	ErrDuplicate = errors.New("duplicate codec")

	// ErrUnknownCodec means a name or payload type is not in the registry,
	// or that negotiation found no codec in common with an offer.
	ErrUnknownCodec = errors.New("unknown codec")

	// ErrInvalidDescriptor means a codec's Descriptor cannot be used: empty
	// or malformed name, payload type outside 0..127, non-positive rates or
	// channel count.
	ErrInvalidDescriptor = errors.New("invalid codec descriptor")

	// ErrStateful means a stateless Encode or Decode was called on a codec
	// that keeps per-call state: use NewEncoder and NewDecoder.
	ErrStateful = errors.New("codec keeps per-call state; use NewEncoder/NewDecoder")

	// ErrClosed means an Encoder or Decoder was used after Close.
	ErrClosed = errors.New("codec state closed")

	// ErrBadJob means a batch Job cannot be done as given: an unknown op,
	// a missing encoder or decoder, a state of another codec, or a state
	// that already has a frame in flight.
	ErrBadJob = errors.New("invalid codec job")
)
