// Package opus is Baton's Opus codec (RFC 6716, RTP payload RFC 7587): a
// small cgo wrapper around the system libopus (Debian's libopus-dev,
// found with pkg-config) serving codecs.Stateful. It is what the
// codec-opus plugin serves, and what its benchmarks run in process to
// compare against the plugin.
//
// Build needs cgo and `pkg-config opus`; with CGO_ENABLED=0 New returns an
// error wrapping ErrUnavailable.
package opus

import (
	"errors"
	"fmt"
	"time"

	"github.com/baton-voice/baton/codecs"
)

// ErrUnavailable means this build has no libopus (built without cgo).
var ErrUnavailable = errors.New("opus: built without libopus (needs cgo and pkg-config opus)")

// ErrInvalidConfig means a Config field is out of range.
var ErrInvalidConfig = errors.New("opus: invalid config")

// Config chooses how the codec runs. Zero fields take the defaults.
type Config struct {
	// SampleRate is the rate of the PCM exchanged with Baton: 8000, 12000,
	// 16000, 24000 or 48000 (the default). The RTP clock is 48 kHz
	// whatever it is (RFC 7587 §4.1).
	SampleRate int
	// PayloadType is the dynamic RTP payload type offered (default 111).
	PayloadType uint8
	// Bitrate in bit/s (default 32000: wideband speech).
	Bitrate int
	// Complexity 0..10 (default 5).
	Complexity int
}

// Frame is the packet time this codec works with.
const Frame = 20 * time.Millisecond

func (c Config) withDefaults() (Config, error) {
	if c.SampleRate == 0 {
		c.SampleRate = 48000
	}
	if c.PayloadType == 0 {
		c.PayloadType = 111
	}
	if c.Bitrate == 0 {
		c.Bitrate = 32000
	}
	if c.Complexity == 0 {
		c.Complexity = 5
	}
	switch c.SampleRate {
	case 8000, 12000, 16000, 24000, 48000:
	default:
		return c, fmt.Errorf("%w: sample rate %d: want 8000, 12000, 16000, 24000 or 48000", ErrInvalidConfig, c.SampleRate)
	}
	if c.PayloadType < 96 || c.PayloadType > 127 {
		return c, fmt.Errorf("%w: payload type %d: want a dynamic one, 96..127", ErrInvalidConfig, c.PayloadType)
	}
	if c.Bitrate < 6000 || c.Bitrate > 510000 {
		return c, fmt.Errorf("%w: bitrate %d: want 6000..510000", ErrInvalidConfig, c.Bitrate)
	}
	if c.Complexity < 0 || c.Complexity > 10 {
		return c, fmt.Errorf("%w: complexity %d: want 0..10", ErrInvalidConfig, c.Complexity)
	}
	return c, nil
}

// Codec is the Opus codec. It is safe for concurrent use; each call's
// encoder and decoder (NewEncoder, NewDecoder) belong to that call.
type Codec struct {
	cfg Config
}

var _ codecs.Stateful = (*Codec)(nil)

// New returns the Opus codec for cfg.
func New(cfg Config) (*Codec, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if !available {
		return nil, ErrUnavailable
	}
	return &Codec{cfg: cfg}, nil
}

// Descriptor implements codecs.Codec: "opus/48000/2" in SDP (RFC 7587 §7:
// always two channels and 48 kHz there), mono PCM at SampleRate here.
func (c *Codec) Descriptor() codecs.Descriptor {
	return codecs.Descriptor{
		Name: "opus", PayloadType: c.cfg.PayloadType,
		SampleRate: c.cfg.SampleRate, ClockRate: 48000, Channels: 2,
		Fmtp:          "minptime=20;useinbandfec=1",
		FrameDuration: Frame,
	}
}

// Encode implements codecs.Codec; Opus has per-call state.
func (c *Codec) Encode([]byte, []int16) (int, error) {
	return 0, fmt.Errorf("opus: %w", codecs.ErrStateful)
}

// Decode implements codecs.Codec; Opus has per-call state.
func (c *Codec) Decode([]int16, []byte) (int, error) {
	return 0, fmt.Errorf("opus: %w", codecs.ErrStateful)
}

// NewEncoder implements codecs.Stateful.
func (c *Codec) NewEncoder() (codecs.Encoder, error) {
	e, err := newEncoder(c.cfg)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// NewDecoder implements codecs.Stateful. The decoder implements
// codecs.Concealer with libopus' own packet-loss concealment.
func (c *Codec) NewDecoder() (codecs.Decoder, error) {
	d, err := newDecoder(c.cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// frameSamples is the samples of one 20 ms frame at rate.
func frameSamples(rate int) int { return rate / 50 }
