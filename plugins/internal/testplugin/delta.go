package main

import (
	"encoding/binary"
	"fmt"

	"github.com/baton-voice/baton/codecs"
)

// deltaCodec ("x-delta") is a lossless codec with per-call state, for the
// host's tests: each sample is sent as its difference from the previous
// one, the previous sample carried over from frame to frame. A decoder
// that lost its state, or shared it with another call, decodes garbage,
// so the tests see whether state is per call. Conceal repeats the last
// decoded frame (a stand-in for real packet-loss concealment).
type deltaCodec struct{}

func (deltaCodec) Descriptor() codecs.Descriptor {
	return codecs.Descriptor{Name: "x-delta", PayloadType: 97, SampleRate: 8000, ClockRate: 8000, Channels: 1}
}

func (deltaCodec) Encode([]byte, []int16) (int, error) { return 0, codecs.ErrStateful }
func (deltaCodec) Decode([]int16, []byte) (int, error) { return 0, codecs.ErrStateful }

func (deltaCodec) NewEncoder() (codecs.Encoder, error) { return &deltaEncoder{}, nil }
func (deltaCodec) NewDecoder() (codecs.Decoder, error) { return &deltaDecoder{}, nil }

type deltaEncoder struct {
	prev   int16
	closed bool
}

func (e *deltaEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	if e.closed {
		return 0, codecs.ErrClosed
	}
	if len(dst) < 2*len(pcm) {
		return 0, fmt.Errorf("x-delta: encode: %w", codecs.ErrShortBuffer)
	}
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(s-e.prev))
		e.prev = s
	}
	return 2 * len(pcm), nil
}

func (e *deltaEncoder) Close() error { e.closed = true; return nil }

type deltaDecoder struct {
	prev   int16
	last   []int16
	closed bool
}

func (d *deltaDecoder) Decode(dst []int16, payload []byte) (int, error) {
	if d.closed {
		return 0, codecs.ErrClosed
	}
	if len(payload)%2 != 0 {
		return 0, fmt.Errorf("x-delta: decode: odd payload of %d bytes", len(payload))
	}
	n := len(payload) / 2
	if len(dst) < n {
		return 0, fmt.Errorf("x-delta: decode: %w", codecs.ErrShortBuffer)
	}
	for i := range n {
		d.prev += int16(binary.LittleEndian.Uint16(payload[2*i:]))
		dst[i] = d.prev
	}
	d.last = append(d.last[:0], dst[:n]...)
	return n, nil
}

func (d *deltaDecoder) Conceal(dst []int16) (int, error) {
	return copy(dst, d.last), nil
}

func (d *deltaDecoder) Close() error { d.closed = true; return nil }
