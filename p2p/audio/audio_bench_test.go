package audio

import (
	"testing"
	"time"
)

// Run: go test -run '^$' -bench . -benchmem ./p2p/audio/

// BenchmarkToneReadFrame measures one 20 ms frame at 8 kHz, the per-call
// cost of a tone "microphone".
func BenchmarkToneReadFrame(b *testing.B) {
	b.ReportAllocs()
	tone, err := NewTone(440, 8000, 0.3)
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, 160)
	for b.Loop() {
		if err := tone.ReadFrame(pcm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSegments measures analysing one minute of 8 kHz recording
// against two candidate tones.
func BenchmarkSegments(b *testing.B) {
	b.ReportAllocs()
	tone, err := NewTone(440, 8000, 0.3)
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, int(time.Minute/time.Second)*8000)
	if err := tone.ReadFrame(pcm); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if segs := Segments(pcm, 8000, 160, []float64{440, 1000}); len(segs) != 1 {
			b.Fatalf("got %d segments, want 1", len(segs))
		}
	}
}
