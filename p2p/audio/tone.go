package audio

import (
	"fmt"
	"math"
)

// Compile-time checks that the sources satisfy the contract.
var (
	_ Source = (*Tone)(nil)
	_ Source = Silence{}
)

// Tone is a Source producing a continuous sine wave. The phase carries over
// from one frame to the next, so consecutive frames join without a click and
// a recording of them analyses as one clean tone.
//
// A Tone is not safe for concurrent use; one call's media goroutine owns it.
type Tone struct {
	hz    float64
	rate  int
	amp   float64 // peak, in sample units
	phase float64 // radians, kept in [0, 2π)
	step  float64 // radians per sample
}

// NewTone returns a sine source of hz at sampleRate. amplitude is the peak as
// a fraction of full scale, in (0, 1]; callers usually pick 0.3, which leaves
// headroom and survives G.711 companding well. hz must be in (0,
// sampleRate/2): at or above Nyquist a sine cannot be represented.
func NewTone(hz float64, sampleRate int, amplitude float64) (*Tone, error) {
	switch {
	case sampleRate <= 0:
		return nil, fmt.Errorf("audio: tone: sample rate %d Hz: %w", sampleRate, ErrInvalidArgument)
	case !(hz > 0 && hz < float64(sampleRate)/2): // also rejects NaN
		return nil, fmt.Errorf("audio: tone: frequency %g Hz outside (0, %g) for %d Hz sampling: %w",
			hz, float64(sampleRate)/2, sampleRate, ErrInvalidArgument)
	case !(amplitude > 0 && amplitude <= 1):
		return nil, fmt.Errorf("audio: tone: amplitude %g outside (0, 1]: %w", amplitude, ErrInvalidArgument)
	}
	return &Tone{
		hz:   hz,
		rate: sampleRate,
		amp:  amplitude * math.MaxInt16,
		step: 2 * math.Pi * hz / float64(sampleRate),
	}, nil
}

// Hz returns the tone's frequency.
func (t *Tone) Hz() float64 { return t.hz }

// SampleRate returns the rate the tone was built for.
func (t *Tone) SampleRate() int { return t.rate }

// ReadFrame fills pcm with the next len(pcm) samples of the sine. It never
// fails and does not allocate.
func (t *Tone) ReadFrame(pcm []int16) error {
	for i := range pcm {
		pcm[i] = int16(math.Round(t.amp * math.Sin(t.phase)))
		t.phase += t.step
		if t.phase >= 2*math.Pi {
			// Wrapping keeps the argument of Sin small, so precision does
			// not drift over a long call.
			t.phase -= 2 * math.Pi
		}
	}
	return nil
}

// Silence is a Source of digital silence (all-zero samples).
type Silence struct{}

// ReadFrame zeroes pcm.
func (Silence) ReadFrame(pcm []int16) error {
	clear(pcm)
	return nil
}
