package audio

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewClipSourceErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		clip    *Clip
		rate    int
		wantErr error
		wantMsg string
	}{
		"nil clip":       {clip: nil, rate: 8000, wantErr: ErrInvalidArgument, wantMsg: "nil clip"},
		"wideband clip":  {clip: &Clip{SampleRate: 16000}, rate: 8000, wantErr: ErrSampleRate, wantMsg: "wav is 16000 Hz, codec needs 8000 Hz"},
		"44.1 kHz clip":  {clip: &Clip{SampleRate: 44100}, rate: 8000, wantErr: ErrSampleRate, wantMsg: "wav is 44100 Hz"},
		"narrowband req": {clip: &Clip{SampleRate: 8000}, rate: 48000, wantErr: ErrSampleRate, wantMsg: "codec needs 48000 Hz"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := NewClipSource(tc.clip, tc.rate, false)
			if !errors.Is(err, tc.wantErr) || s != nil {
				t.Fatalf("NewClipSource = %v, %v; want nil, %v", s, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestClipSourcePlayback(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		samples  []int16
		loop     bool
		want     [][]int16 // successive 4-sample frames
		wantDone []bool
	}{
		"once then silence": {
			samples:  []int16{1, 2, 3, 4, 5},
			want:     [][]int16{{1, 2, 3, 4}, {5, 0, 0, 0}, {0, 0, 0, 0}},
			wantDone: []bool{false, true, true},
		},
		"loop wraps inside a frame": {
			samples:  []int16{1, 2, 3, 4, 5},
			loop:     true,
			want:     [][]int16{{1, 2, 3, 4}, {5, 1, 2, 3}, {4, 5, 1, 2}},
			wantDone: []bool{false, false, false},
		},
		"loop shorter than a frame": {
			samples:  []int16{7, 8},
			loop:     true,
			want:     [][]int16{{7, 8, 7, 8}, {7, 8, 7, 8}},
			wantDone: []bool{false, false},
		},
		"empty loop is silence": {
			loop:     true,
			want:     [][]int16{{0, 0, 0, 0}},
			wantDone: []bool{false},
		},
		"empty once is silence": {
			want:     [][]int16{{0, 0, 0, 0}},
			wantDone: []bool{true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := NewClipSource(&Clip{SampleRate: 8000, Samples: tc.samples}, 8000, tc.loop)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				frame := []int16{-1, -1, -1, -1} // must be fully overwritten
				if err := s.ReadFrame(frame); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(frame, want) {
					t.Fatalf("frame %d = %v, want %v", i, frame, want)
				}
				if s.Done() != tc.wantDone[i] {
					t.Errorf("after frame %d Done() = %v, want %v", i, s.Done(), tc.wantDone[i])
				}
			}
		})
	}
}

func TestClipDuration(t *testing.T) {
	t.Parallel()
	c := &Clip{SampleRate: 8000, Samples: make([]int16, 12000)}
	if got := c.Duration(); got != 1500*time.Millisecond {
		t.Fatalf("Duration() = %v, want 1.5s", got)
	}
	if got := (&Clip{Samples: make([]int16, 10)}).Duration(); got != 0 {
		t.Fatalf("Duration() without rate = %v, want 0", got)
	}
}
