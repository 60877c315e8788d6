package audio

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzReadWAV feeds arbitrary bytes to ReadWAV. It must never panic; every
// failure must be one of the package's WAV errors; and whatever it accepts
// must survive WriteWAV -> ReadWAV unchanged.
// Seeds: testdata/fuzz/FuzzReadWAV.
func FuzzReadWAV(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ReadWAV(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidWAV) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadWAV error %v wraps neither ErrInvalidWAV nor ErrTooLarge", err)
			}
			return
		}
		if c.SampleRate <= 0 {
			t.Fatalf("accepted sample rate %d", c.SampleRate)
		}
		var buf bytes.Buffer
		if err := WriteWAV(&buf, c); err != nil {
			t.Fatalf("WriteWAV of an accepted clip: %v", err)
		}
		back, err := ReadWAV(&buf)
		if err != nil {
			t.Fatalf("ReadWAV of our own output: %v", err)
		}
		if back.SampleRate != c.SampleRate || !slices.Equal(back.Samples, c.Samples) {
			t.Fatalf("round trip changed the clip: rate %d -> %d, %d -> %d samples",
				c.SampleRate, back.SampleRate, len(c.Samples), len(back.Samples))
		}
	})
}
