package codecs

// Per-call codec state. Real codecs (Opus, G.722, AMR) keep encoder and
// decoder state from frame to frame, so a call asks its codec for its own
// Encoder and Decoder when its media starts and closes them when it ends
// (baresip's aucodec encupdh/decupdh do the same). G.711 has no state: its
// Encoder and Decoder are the codec value itself, so the per-frame call is
// exactly the stateless one and costs nothing more.

// Encoder is one call's encoder: one direction of one call, used by one
// goroutine at a time (the call's media goroutine).
type Encoder interface {
	// Encode encodes one frame of 16-bit linear PCM (mono, at the
	// descriptor's SampleRate) into dst and returns the number of bytes
	// written. It returns ErrShortBuffer when dst is too small.
	Encode(dst []byte, pcm []int16) (int, error)
	// Close releases the encoder's state. It is idempotent; Encode after
	// Close returns an error wrapping ErrClosed.
	Close() error
}

// Decoder is one call's decoder, used by one goroutine at a time.
type Decoder interface {
	// Decode decodes one payload into dst and returns the number of
	// samples written. It returns ErrShortBuffer when dst is too small.
	Decode(dst []int16, payload []byte) (int, error)
	// Close releases the decoder's state. It is idempotent; Decode after
	// Close returns an error wrapping ErrClosed.
	Close() error
}

// Concealer is the packet-loss-concealment hook: a Decoder that can
// synthesize the audio of a lost frame from its state implements it
// (Opus: opus_decode with no data, RFC 6716 §4.4). The media engine calls
// Conceal instead of Decode for a frame that did not arrive in time; a
// decoder without it gets Baton's generic concealment (the last frame,
// fading out).
type Concealer interface {
	// Conceal writes one frame (len(dst) samples at most) for a lost
	// packet and returns the number of samples written.
	Conceal(dst []int16) (int, error)
}

// Stateful is a Codec with per-call state. Its NewEncoder and NewDecoder
// are called once per call; its stateless Encode and Decode (the Codec
// methods) may return an error wrapping ErrStateful.
type Stateful interface {
	Codec
	NewEncoder() (Encoder, error)
	NewDecoder() (Decoder, error)
}

// NewEncoder returns the per-call encoder of c: c's own when c is
// Stateful, else c itself when c already is an Encoder (the built-in
// G.711 codecs: no state, no indirection), else a stateless adapter.
func NewEncoder(c Codec) (Encoder, error) {
	switch c := c.(type) {
	case nil:
		return nil, ErrInvalidDescriptor
	case Stateful:
		return c.NewEncoder()
	case Encoder:
		return c, nil
	}
	return statelessEncoder{c}, nil
}

// NewDecoder is NewEncoder's counterpart for the receiving direction.
func NewDecoder(c Codec) (Decoder, error) {
	switch c := c.(type) {
	case nil:
		return nil, ErrInvalidDescriptor
	case Stateful:
		return c.NewDecoder()
	case Decoder:
		return c, nil
	}
	return statelessDecoder{c}, nil
}

// statelessEncoder adapts a stateless Codec that does not implement
// Close itself.
type statelessEncoder struct{ c Codec }

func (e statelessEncoder) Encode(dst []byte, pcm []int16) (int, error) { return e.c.Encode(dst, pcm) }
func (statelessEncoder) Close() error                                  { return nil }

type statelessDecoder struct{ c Codec }

func (d statelessDecoder) Decode(dst []int16, payload []byte) (int, error) {
	return d.c.Decode(dst, payload)
}
func (statelessDecoder) Close() error { return nil }
