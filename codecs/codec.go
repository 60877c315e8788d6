// Package codecs holds Baton's audio codec contract, an ordered codec registry,
// and the built-in G.711 codecs (PCMU and PCMA).
//
// The shape follows baresip's aucodec (a descriptor separate from the hooks) and
// pion/webrtc's media engine (registration order is preference, duplicates are
// errors). Registries are values built by the caller; there is no global state.
package codecs

import "time"

// Descriptor describes a codec independently of its implementation.
type Descriptor struct {
	// Name is the SDP encoding name, e.g. "PCMU" (RFC 3551 §4.5.14).
	Name string
	// PayloadType is the RTP payload type; static types are 0..95,
	// dynamic ones 96..127 (RFC 3551 §6).
	PayloadType uint8
	// SampleRate is the rate of the PCM samples the codec consumes, in Hz.
	SampleRate int
	// ClockRate is the RTP timestamp clock rate in Hz. For G.711 it equals
	// SampleRate; for some codecs (G.722) it does not (RFC 3551 §4.5.2).
	ClockRate int
	// Channels is the channel count signalled in SDP's rtpmap (1 for every
	// built-in codec; 2 for Opus, which RFC 7587 §7 always signals as
	// "opus/48000/2"). The PCM exchanged with Encode and Decode is mono.
	Channels int
	// Fmtp is the SDP format parameter string, empty when none.
	Fmtp string
	// FrameDuration is the only packet time the codec works with (Opus in
	// Baton: 20 ms); zero means any ptime (G.711).
	FrameDuration time.Duration
}

// SamplesPerFrame returns how many PCM samples (per channel) one frame of
// duration ptime holds, e.g. 160 for G.711 at 20 ms.
func (d Descriptor) SamplesPerFrame(ptime time.Duration) int {
	return int(int64(d.SampleRate) * int64(ptime) / int64(time.Second))
}

// TimestampStep returns how far the RTP timestamp advances per frame of
// duration ptime; it counts ClockRate ticks, not samples (RFC 3550 §5.1).
func (d Descriptor) TimestampStep(ptime time.Duration) uint32 {
	return uint32(int64(d.ClockRate) * int64(ptime) / int64(time.Second))
}

// Codec encodes and decodes one codec's frames. Implementations must be safe
// for concurrent use by several calls. A codec with per-call state also
// implements Stateful; callers get a call's state with NewEncoder and
// NewDecoder (state.go), which for the stateless G.711 codecs return the
// codec itself.
//
// The per-frame methods write into caller-provided buffers and must not
// allocate on the steady path.
type Codec interface {
	// Descriptor returns the codec's static description.
	Descriptor() Descriptor
	// Encode encodes 16-bit linear PCM samples into dst and returns the number
	// of bytes written. It returns ErrShortBuffer when dst is too small.
	Encode(dst []byte, pcm []int16) (int, error)
	// Decode decodes one payload into dst and returns the number of samples
	// written. It returns ErrShortBuffer when dst is too small.
	Decode(dst []int16, payload []byte) (int, error)
}
