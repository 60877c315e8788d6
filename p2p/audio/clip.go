package audio

import (
	"fmt"
	"time"
)

var _ Source = (*ClipSource)(nil)

// Clip is a whole mono 16-bit recording in memory, as read from or written
// to a WAV file. Treat Samples as read-only once a ClipSource plays it:
// sources share the slice rather than copy it.
type Clip struct {
	SampleRate int
	Samples    []int16
}

// Duration returns the clip's length.
func (c *Clip) Duration() time.Duration {
	if c.SampleRate <= 0 {
		return 0
	}
	return time.Duration(len(c.Samples)) * time.Second / time.Duration(c.SampleRate)
}

// ClipSource is a Source that plays a Clip once (then silence) or in a loop.
// It is not safe for concurrent use; one call's media goroutine owns it.
type ClipSource struct {
	samples []int16
	pos     int
	loop    bool
}

// NewClipSource returns a source playing c at sampleRate, the rate the
// caller's codec needs. Baton does not resample, so a clip at another rate
// is refused with ErrSampleRate and a message saying both rates.
func NewClipSource(c *Clip, sampleRate int, loop bool) (*ClipSource, error) {
	if c == nil {
		return nil, fmt.Errorf("audio: clip source: nil clip: %w", ErrInvalidArgument)
	}
	if c.SampleRate != sampleRate {
		return nil, fmt.Errorf("audio: clip source: wav is %d Hz, codec needs %d Hz: %w", c.SampleRate, sampleRate, ErrSampleRate)
	}
	return &ClipSource{samples: c.Samples, loop: loop}, nil
}

// ReadFrame fills pcm with the next samples of the clip. At the end of the
// clip it wraps around (loop) or fills silence; frames are always full. It
// does not allocate.
func (s *ClipSource) ReadFrame(pcm []int16) error {
	for len(pcm) > 0 {
		if s.pos >= len(s.samples) {
			if !s.loop || len(s.samples) == 0 {
				clear(pcm)
				return nil
			}
			s.pos = 0
		}
		n := copy(pcm, s.samples[s.pos:])
		s.pos += n
		pcm = pcm[n:]
	}
	return nil
}

// Done reports whether a non-looping source has played the whole clip; a
// looping source is never done.
func (s *ClipSource) Done() bool {
	return !s.loop && s.pos >= len(s.samples)
}
