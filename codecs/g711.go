package codecs

import "fmt"

//go:generate go run ./internal/g711gen -o g711_tables.go

// G.711 (ITU-T G.711, RTP profile RFC 3551 §4.5.14): 8000 Hz, one byte per
// sample, static payload types 0 (PCMU) and 8 (PCMA). Both codecs are
// stateless lookups into tables generated from github.com/zaf/g711 (see
// g711_tables.go and internal/g711gen), so they are bit-exact with that
// reference, safe for concurrent use, and allocate nothing per frame.

const g711Rate = 8000

var (
	_ Codec   = pcmu{}
	_ Codec   = pcma{}
	_ Encoder = pcmu{}
	_ Decoder = pcmu{}
	_ Encoder = pcma{}
	_ Decoder = pcma{}
)

// PCMU returns the built-in G.711 μ-law codec (payload type 0).
func PCMU() Codec { return pcmu{} }

// PCMA returns the built-in G.711 A-law codec (payload type 8).
func PCMA() Codec { return pcma{} }

type pcmu struct{}

// Close implements Encoder and Decoder: G.711 has no per-call state, so a
// call's encoder and decoder are the codec itself.
func (pcmu) Close() error { return nil }

func (pcmu) Descriptor() Descriptor {
	return Descriptor{Name: "PCMU", PayloadType: 0, SampleRate: g711Rate, ClockRate: g711Rate, Channels: 1}
}

// Encode writes one μ-law byte per sample.
func (pcmu) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < len(pcm) {
		return 0, shortBuffer("PCMU", "encode", len(dst), len(pcm))
	}
	dst = dst[:len(pcm)] // lets the compiler drop the bounds check on dst[i]
	for i, s := range pcm {
		dst[i] = ulawEncodeTable[uint16(s)>>ulawEncodeShift]
	}
	return len(pcm), nil
}

// Decode writes one linear sample per μ-law byte.
func (pcmu) Decode(dst []int16, payload []byte) (int, error) {
	if len(dst) < len(payload) {
		return 0, shortBuffer("PCMU", "decode", len(dst), len(payload))
	}
	dst = dst[:len(payload)]
	for i, c := range payload {
		dst[i] = ulawDecodeTable[c]
	}
	return len(payload), nil
}

type pcma struct{}

// Close implements Encoder and Decoder (no state).
func (pcma) Close() error { return nil }

func (pcma) Descriptor() Descriptor {
	return Descriptor{Name: "PCMA", PayloadType: 8, SampleRate: g711Rate, ClockRate: g711Rate, Channels: 1}
}

// Encode writes one A-law byte per sample.
func (pcma) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < len(pcm) {
		return 0, shortBuffer("PCMA", "encode", len(dst), len(pcm))
	}
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = alawEncodeTable[uint16(s)>>alawEncodeShift]
	}
	return len(pcm), nil
}

// Decode writes one linear sample per A-law byte.
func (pcma) Decode(dst []int16, payload []byte) (int, error) {
	if len(dst) < len(payload) {
		return 0, shortBuffer("PCMA", "decode", len(dst), len(payload))
	}
	dst = dst[:len(payload)]
	for i, c := range payload {
		dst[i] = alawDecodeTable[c]
	}
	return len(payload), nil
}

// shortBuffer builds the error for a too-small dst. It allocates, but only on
// the failure path.
func shortBuffer(codec, op string, have, need int) error {
	return fmt.Errorf("codecs: %s %s: dst holds %d, need %d: %w", codec, op, have, need, ErrShortBuffer)
}
