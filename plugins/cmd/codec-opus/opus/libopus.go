//go:build cgo

package opus

/*
#cgo pkg-config: opus
#include <opus.h>

static int baton_opus_setup(OpusEncoder *e, opus_int32 bitrate, int complexity) {
	int r;
	if ((r = opus_encoder_ctl(e, OPUS_SET_BITRATE(bitrate))) != OPUS_OK) return r;
	if ((r = opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(complexity))) != OPUS_OK) return r;
	if ((r = opus_encoder_ctl(e, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))) != OPUS_OK) return r;
	return opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(1));
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/baton-voice/baton/codecs"
)

const available = true

// Version returns libopus' version string.
func Version() string { return C.GoString(C.opus_get_version_string()) }

func opusErr(code C.int) string { return C.GoString(C.opus_strerror(code)) }

type encoder struct {
	e     *C.OpusEncoder
	frame int
}

func newEncoder(cfg Config) (*encoder, error) {
	var code C.int
	e := C.opus_encoder_create(C.opus_int32(cfg.SampleRate), 1, C.OPUS_APPLICATION_VOIP, &code)
	if code != C.OPUS_OK || e == nil {
		return nil, fmt.Errorf("opus: encoder create: %s", opusErr(code))
	}
	if code = C.baton_opus_setup(e, C.opus_int32(cfg.Bitrate), C.int(cfg.Complexity)); code != C.OPUS_OK {
		C.opus_encoder_destroy(e)
		return nil, fmt.Errorf("opus: encoder setup: %s", opusErr(code))
	}
	return &encoder{e: e, frame: frameSamples(cfg.SampleRate)}, nil
}

// Encode encodes one 20 ms frame.
func (e *encoder) Encode(dst []byte, pcm []int16) (int, error) {
	if e.e == nil {
		return 0, fmt.Errorf("opus: encode: %w", codecs.ErrClosed)
	}
	if len(pcm) != e.frame {
		return 0, fmt.Errorf("opus: encode: %d samples, want %d (20 ms)", len(pcm), e.frame)
	}
	if len(dst) == 0 {
		return 0, fmt.Errorf("opus: encode: %w", codecs.ErrShortBuffer)
	}
	n := C.opus_encode(e.e, (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.opus_int32(len(dst)))
	if n < 0 {
		if n == C.OPUS_BUFFER_TOO_SMALL {
			return 0, fmt.Errorf("opus: encode: %w", codecs.ErrShortBuffer)
		}
		return 0, fmt.Errorf("opus: encode: %s", opusErr(n))
	}
	return int(n), nil
}

func (e *encoder) Close() error {
	if e.e != nil {
		C.opus_encoder_destroy(e.e)
		e.e = nil
	}
	return nil
}

type decoder struct {
	d     *C.OpusDecoder
	frame int
}

var _ codecs.Concealer = (*decoder)(nil)

func newDecoder(cfg Config) (*decoder, error) {
	var code C.int
	d := C.opus_decoder_create(C.opus_int32(cfg.SampleRate), 1, &code)
	if code != C.OPUS_OK || d == nil {
		return nil, fmt.Errorf("opus: decoder create: %s", opusErr(code))
	}
	return &decoder{d: d, frame: frameSamples(cfg.SampleRate)}, nil
}

// Decode decodes one packet into dst (up to 120 ms of audio fits when dst
// is that long; Baton's packets are 20 ms).
func (d *decoder) Decode(dst []int16, payload []byte) (int, error) {
	if d.d == nil {
		return 0, fmt.Errorf("opus: decode: %w", codecs.ErrClosed)
	}
	if len(payload) == 0 {
		return 0, fmt.Errorf("opus: decode: empty payload")
	}
	if len(dst) < d.frame {
		return 0, fmt.Errorf("opus: decode: dst holds %d, need %d: %w", len(dst), d.frame, codecs.ErrShortBuffer)
	}
	n := C.opus_decode(d.d, (*C.uchar)(unsafe.Pointer(&payload[0])), C.opus_int32(len(payload)),
		(*C.opus_int16)(unsafe.Pointer(&dst[0])), C.int(len(dst)), 0)
	if n < 0 {
		return 0, fmt.Errorf("opus: decode %d bytes: %s", len(payload), opusErr(n))
	}
	return int(n), nil
}

// Conceal implements codecs.Concealer: libopus' packet-loss concealment,
// decoding "no packet" (RFC 6716 §4.4; opus_decode with a NULL packet)
// for one frame of len(dst) samples (rounded down to 20 ms).
func (d *decoder) Conceal(dst []int16) (int, error) {
	if d.d == nil {
		return 0, fmt.Errorf("opus: conceal: %w", codecs.ErrClosed)
	}
	if len(dst) < d.frame {
		return 0, fmt.Errorf("opus: conceal: dst holds %d, need %d: %w", len(dst), d.frame, codecs.ErrShortBuffer)
	}
	n := C.opus_decode(d.d, nil, 0, (*C.opus_int16)(unsafe.Pointer(&dst[0])), C.int(d.frame), 0)
	if n < 0 {
		return 0, fmt.Errorf("opus: conceal: %s", opusErr(n))
	}
	return int(n), nil
}

func (d *decoder) Close() error {
	if d.d != nil {
		C.opus_decoder_destroy(d.d)
		d.d = nil
	}
	return nil
}
