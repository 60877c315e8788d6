package audio

import (
	"math"
	"testing"
	"time"
)

// record concatenates parts of a synthetic recording at 8 kHz. A part with
// hz 0 is silence. Tones keep their own phase, as separate senders would.
type part struct {
	hz  float64
	dur time.Duration
}

func record(t *testing.T, parts ...part) []int16 {
	t.Helper()
	var pcm []int16
	for _, p := range parts {
		buf := make([]int16, int(p.dur*8000/time.Second))
		if p.hz != 0 {
			tone, err := NewTone(p.hz, 8000, 0.3)
			if err != nil {
				t.Fatal(err)
			}
			if err := tone.ReadFrame(buf); err != nil {
				t.Fatal(err)
			}
		}
		pcm = append(pcm, buf...)
	}
	return pcm
}

func TestGoertzel(t *testing.T) {
	t.Parallel()
	pcm := record(t, part{hz: 1000, dur: 100 * time.Millisecond})
	tests := map[string]struct {
		pcm    []int16
		rate   int
		hz     float64
		lo, hi float64
	}{
		"at the tone":      {pcm: pcm, rate: 8000, hz: 1000, lo: 0.088, hi: 0.092},
		"half an octave":   {pcm: pcm, rate: 8000, hz: 1414, lo: 0, hi: 0.001},
		"silence":          {pcm: make([]int16, 800), rate: 8000, hz: 1000, lo: 0, hi: 0},
		"empty":            {pcm: nil, rate: 8000, hz: 1000, lo: 0, hi: 0},
		"zero sample rate": {pcm: pcm, rate: 0, hz: 1000, lo: 0, hi: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := Goertzel(tc.pcm, tc.rate, tc.hz); got < tc.lo || got > tc.hi {
				t.Fatalf("Goertzel = %.6f, want in [%g, %g]", got, tc.lo, tc.hi)
			}
		})
	}
}

func TestDominantFrequency(t *testing.T) {
	t.Parallel()
	n := 1600
	mix := make([]int16, n)
	for i := range mix {
		x := 0.2*math.Sin(2*math.Pi*440*float64(i)/8000) + 0.4*math.Sin(2*math.Pi*1000*float64(i)/8000)
		mix[i] = int16(x * 32767)
	}
	tests := map[string]struct {
		pcm        []int16
		candidates []float64
		want       float64
	}{
		"stronger of two":       {pcm: mix, candidates: []float64{440, 1000}, want: 1000},
		"order does not matter": {pcm: mix, candidates: []float64{1000, 440}, want: 1000},
		"only weaker offered":   {pcm: mix, candidates: []float64{440, 2000}, want: 440},
		"no candidates":         {pcm: mix, candidates: nil, want: 0},
		"digital silence":       {pcm: make([]int16, n), candidates: []float64{440, 1000}, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := DominantFrequency(tc.pcm, 8000, tc.candidates); got != tc.want {
				t.Fatalf("DominantFrequency = %g, want %g", got, tc.want)
			}
		})
	}
}

func TestRMS(t *testing.T) {
	t.Parallel()
	square := make([]int16, 100)
	for i := range square {
		square[i] = 16384
		if i%2 == 1 {
			square[i] = -16384
		}
	}
	tests := map[string]struct {
		pcm  []int16
		want float64
	}{
		"empty":          {pcm: nil, want: 0},
		"silence":        {pcm: make([]int16, 10), want: 0},
		"half square":    {pcm: square, want: 0.5},
		"sine amp 0.3":   {pcm: record(t, part{hz: 1000, dur: time.Second}), want: 0.3 / math.Sqrt2},
		"full-scale neg": {pcm: []int16{math.MinInt16, math.MinInt16}, want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := RMS(tc.pcm); math.Abs(got-tc.want) > 1e-3 {
				t.Fatalf("RMS = %.5f, want %.5f", got, tc.want)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	candidates := []float64{440, 1000}
	tests := map[string]struct {
		pcm         []int16
		frame       int
		want        []Segment
		wantSilence time.Duration // LongestSilence
	}{
		// The recording a handoff test must reject: tone A, a 200 ms
		// hole, tone B; plus the natural leading and trailing silence.
		"two tones with a gap": {
			pcm: record(t, part{0, 500 * ms}, part{440, time.Second}, part{0, 200 * ms},
				part{1000, time.Second}, part{0, 300 * ms}),
			frame: 160,
			want: []Segment{
				{0, 500 * ms, 0}, {500 * ms, 1500 * ms, 440}, {1500 * ms, 1700 * ms, 0},
				{1700 * ms, 2700 * ms, 1000}, {2700 * ms, 3000 * ms, 0},
			},
			wantSilence: 200 * ms,
		},
		// The recording a handoff test must accept: A then B, no hole.
		"two tones back to back": {
			pcm:         record(t, part{0, 100 * ms}, part{440, time.Second}, part{1000, time.Second}),
			frame:       160,
			want:        []Segment{{0, 100 * ms, 0}, {100 * ms, 1100 * ms, 440}, {1100 * ms, 2100 * ms, 1000}},
			wantSilence: 0,
		},
		// A boundary inside a frame: the frame is tone, so the gap looks
		// one frame shorter, never longer.
		"unaligned gap": {
			pcm:   record(t, part{440, 510 * ms}, part{0, 100 * ms}, part{440, 490 * ms}),
			frame: 160,
			want: []Segment{
				{0, 520 * ms, 440}, {520 * ms, 600 * ms, 0}, {600 * ms, 1100 * ms, 440},
			},
			wantSilence: 80 * ms,
		},
		"default frame and partial tail": {
			pcm:   record(t, part{1000, 205 * ms}),
			frame: 0,
			want:  []Segment{{0, 205 * ms, 1000}},
		},
		"all silence": {
			pcm:   make([]int16, 8000),
			frame: 160,
			want:  []Segment{{0, time.Second, 0}},
		},
		"empty": {pcm: nil, frame: 160, want: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := Segments(tc.pcm, 8000, tc.frame, candidates)
			if len(got) != len(tc.want) {
				t.Fatalf("Segments = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("segment %d = %+v, want %+v (all: %v)", i, got[i], tc.want[i], got)
				}
			}
			if s := LongestSilence(got); s != tc.wantSilence {
				t.Errorf("LongestSilence = %v, want %v", s, tc.wantSilence)
			}
		})
	}
}

func TestLongestSilence(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := map[string]struct {
		segs []Segment
		want time.Duration
	}{
		"none":             {segs: nil, want: 0},
		"only silence":     {segs: []Segment{{0, time.Second, 0}}, want: 0},
		"edges ignored":    {segs: []Segment{{0, 900 * ms, 0}, {900 * ms, time.Second, 440}, {time.Second, 2 * time.Second, 0}}, want: 0},
		"longest of two":   {segs: []Segment{{0, 10 * ms, 440}, {10 * ms, 30 * ms, 0}, {30 * ms, 40 * ms, 440}, {40 * ms, 100 * ms, 0}, {100 * ms, 110 * ms, 1000}}, want: 60 * ms},
		"same tone around": {segs: []Segment{{0, 10 * ms, 440}, {10 * ms, 50 * ms, 0}, {50 * ms, 60 * ms, 440}}, want: 40 * ms},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := LongestSilence(tc.segs); got != tc.want {
				t.Fatalf("LongestSilence = %v, want %v", got, tc.want)
			}
		})
	}
}
