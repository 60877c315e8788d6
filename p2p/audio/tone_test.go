package audio

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestToneFrequency(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		hz   float64
		rate int
		amp  float64
	}{
		"440 Hz at 8 kHz":       {hz: 440, rate: 8000, amp: 0.3},
		"1000 Hz at 8 kHz":      {hz: 1000, rate: 8000, amp: 0.3},
		"off-bin 1337 Hz":       {hz: 1337.5, rate: 8000, amp: 0.5},
		"near Nyquist 3900 Hz":  {hz: 3900, rate: 8000, amp: 0.3},
		"full scale 697 Hz":     {hz: 697, rate: 8000, amp: 1},
		"wideband 5 kHz @16kHz": {hz: 5000, rate: 16000, amp: 0.3},
	}
	candidates := []float64{350, 440, 697, 1000, 1337.5, 2000, 3900, 5000}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tone, err := NewTone(tc.hz, tc.rate, tc.amp)
			if err != nil {
				t.Fatal(err)
			}
			pcm := make([]int16, tc.rate) // one second
			if err := tone.ReadFrame(pcm); err != nil {
				t.Fatal(err)
			}
			if got := DominantFrequency(pcm, tc.rate, candidates); got != tc.hz {
				t.Errorf("dominant = %g Hz, want %g", got, tc.hz)
			}
			want := tc.amp * tc.amp
			if p := Goertzel(pcm, tc.rate, tc.hz); math.Abs(p-want) > 0.02*want {
				t.Errorf("Goertzel at %g = %.4f, want %.4f ± 2%%", tc.hz, p, want)
			}
			off := tc.hz + 200
			if off >= float64(tc.rate)/2 {
				off = tc.hz - 200 // above Nyquist would alias back onto the tone
			}
			if p := Goertzel(pcm, tc.rate, off); p > 0.001*want {
				t.Errorf("Goertzel at %g = %.6f, want ≈ 0", off, p)
			}
			peak := slices.Max(pcm)
			if wantPeak := tc.amp * math.MaxInt16; math.Abs(float64(peak)-wantPeak) > 0.01*wantPeak+1 {
				t.Errorf("peak = %d, want ≈ %.0f", peak, wantPeak)
			}
		})
	}
}

// TestTonePhaseContinuous checks that reading 20 ms frames gives exactly the
// samples of one long read: no phase reset, so no click per frame.
func TestTonePhaseContinuous(t *testing.T) {
	t.Parallel()
	a, err := NewTone(440, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTone(440, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	whole := make([]int16, 160*50)
	if err := a.ReadFrame(whole); err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, 160)
	for i := range 50 {
		if err := b.ReadFrame(frame); err != nil {
			t.Fatal(err)
		}
		if want := whole[i*160 : (i+1)*160]; !slices.Equal(frame, want) {
			t.Fatalf("frame %d differs from the continuous signal", i)
		}
	}
}

func TestNewToneErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		hz      float64
		rate    int
		amp     float64
		wantMsg string
	}{
		"zero frequency":     {hz: 0, rate: 8000, amp: 0.3, wantMsg: "frequency 0 Hz outside (0, 4000)"},
		"negative frequency": {hz: -440, rate: 8000, amp: 0.3, wantMsg: "frequency -440 Hz"},
		"at Nyquist":         {hz: 4000, rate: 8000, amp: 0.3, wantMsg: "frequency 4000 Hz outside (0, 4000) for 8000 Hz sampling"},
		"above Nyquist":      {hz: 5000, rate: 8000, amp: 0.3, wantMsg: "frequency 5000 Hz"},
		"NaN frequency":      {hz: math.NaN(), rate: 8000, amp: 0.3, wantMsg: "frequency NaN Hz"},
		"zero rate":          {hz: 440, rate: 0, amp: 0.3, wantMsg: "sample rate 0 Hz"},
		"zero amplitude":     {hz: 440, rate: 8000, amp: 0, wantMsg: "amplitude 0 outside (0, 1]"},
		"negative amplitude": {hz: 440, rate: 8000, amp: -0.3, wantMsg: "amplitude -0.3"},
		"amplitude over 1":   {hz: 440, rate: 8000, amp: 1.5, wantMsg: "amplitude 1.5"},
		"NaN amplitude":      {hz: 440, rate: 8000, amp: math.NaN(), wantMsg: "amplitude NaN"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tone, err := NewTone(tc.hz, tc.rate, tc.amp)
			if !errors.Is(err, ErrInvalidArgument) || tone != nil {
				t.Fatalf("NewTone = %v, %v; want nil, ErrInvalidArgument", tone, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestSilence(t *testing.T) {
	t.Parallel()
	pcm := []int16{1, -2, 3}
	if err := (Silence{}).ReadFrame(pcm); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pcm, []int16{0, 0, 0}) {
		t.Fatalf("Silence wrote %v", pcm)
	}
}

// TestSourcesDoNotAllocate guards the per-frame path of every Source here.
func TestSourcesDoNotAllocate(t *testing.T) {
	tone, err := NewTone(440, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	clip, err := NewClipSource(&Clip{SampleRate: 8000, Samples: make([]int16, 1000)}, 8000, true)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]Source{"Tone": tone, "Silence": Silence{}, "ClipSource": clip}
	pcm := make([]int16, 160)
	for name, src := range sources {
		allocs := testing.AllocsPerRun(100, func() {
			if err := src.ReadFrame(pcm); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s.ReadFrame: %v allocs per frame, want 0", name, allocs)
		}
	}
}
