package audio

import (
	"math"
	"time"
)

// The helpers below answer "what did this party hear?" for tests and for a
// person reading a recording: which of a few known test tones is present
// when, and where the silences are. They use the Goertzel algorithm (one
// DFT bin, evaluated at an arbitrary frequency), which is cheap and exact
// enough for pure tones; they are not a general spectrum analyser.

// fullScale is the magnitude that maps a sample to 1.0.
const fullScale = 32768

// SilenceRMS is the level (RMS, fraction of full scale) below which
// Segments calls a frame silent: -40 dBFS. G.711 idle noise and comfort
// noise sit well below it; Baton's test tones (amplitude 0.3, RMS ≈ 0.21)
// sit far above it.
const SilenceRMS = 0.01

// Goertzel returns the normalized power of pcm at frequency hz: about a² for
// a sine of peak amplitude a (fraction of full scale) at hz, and near zero
// when hz is absent. It is independent of len(pcm), but longer inputs
// separate nearby frequencies better (resolution ≈ sampleRate/len(pcm) Hz).
// It returns 0 for empty input or a non-positive sample rate.
func Goertzel(pcm []int16, sampleRate int, hz float64) float64 {
	n := len(pcm)
	if n == 0 || sampleRate <= 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*hz/float64(sampleRate))
	var s1, s2 float64
	for _, v := range pcm {
		s0 := float64(v)/fullScale + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(hz)|²
	// |X| of a sine with peak a is a·n/2, so scale by 4/n² to get a².
	return power * 4 / (float64(n) * float64(n))
}

// DominantFrequency returns the candidate with the most Goertzel power in
// pcm (the first one on ties), or 0 when there are no candidates or pcm has
// no energy at any of them. It does not judge whether pcm is silent; see
// RMS and Segments for that.
func DominantFrequency(pcm []int16, sampleRate int, candidates []float64) float64 {
	best, bestPower := 0.0, 0.0
	for _, hz := range candidates {
		if p := Goertzel(pcm, sampleRate, hz); p > bestPower {
			best, bestPower = hz, p
		}
	}
	return best
}

// RMS returns the root mean square level of pcm as a fraction of full
// scale: about 0.707·a for a sine of peak a, 0 for digital silence or
// empty input.
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum float64
	for _, v := range pcm {
		x := float64(v) / fullScale
		sum += x * x
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

// Segment is a run of analysis frames with the same classification.
type Segment struct {
	Start, End time.Duration // from the start of the recording
	Hz         float64       // dominant candidate tone; 0 means silence
}

// Duration returns the segment's length.
func (s Segment) Duration() time.Duration { return s.End - s.Start }

// Silent reports whether the segment is silence.
func (s Segment) Silent() bool { return s.Hz == 0 }

// Segments splits pcm into frames of frame samples (a non-positive frame
// means 20 ms), classifies each frame as silence (RMS below SilenceRMS) or
// as its dominant candidate tone, and merges consecutive frames with the
// same class. A final partial frame is classified too, so the last segment
// ends at the end of pcm. Boundaries are accurate to about one frame: a
// frame that is only partly tone still counts as tone.
//
// Sound that is none of the candidates is attributed to the strongest of
// them; Segments is meant for recordings of known test tones.
func Segments(pcm []int16, sampleRate int, frame int, candidates []float64) []Segment {
	if sampleRate <= 0 || len(pcm) == 0 {
		return nil
	}
	if frame <= 0 {
		frame = max(1, sampleRate/50)
	}
	var segs []Segment
	for start := 0; start < len(pcm); start += frame {
		end := min(start+frame, len(pcm))
		f := pcm[start:end]
		hz := 0.0
		if RMS(f) >= SilenceRMS {
			hz = DominantFrequency(f, sampleRate, candidates)
		}
		t0, t1 := samplesToDuration(start, sampleRate), samplesToDuration(end, sampleRate)
		if n := len(segs); n > 0 && segs[n-1].Hz == hz {
			segs[n-1].End = t1
			continue
		}
		segs = append(segs, Segment{Start: t0, End: t1, Hz: hz})
	}
	return segs
}

// LongestSilence returns the longest silent segment that lies between two
// sounding segments. Leading and trailing silence is ignored: a recording
// naturally starts before the first packet arrives and ends after the last,
// whereas a gap between tone A and tone B is what a handoff must not cause.
func LongestSilence(segs []Segment) time.Duration {
	first, last := -1, -1
	for i, s := range segs {
		if !s.Silent() {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var longest time.Duration
	for i := first + 1; i < last; i++ {
		if segs[i].Silent() && segs[i].Duration() > longest {
			longest = segs[i].Duration()
		}
	}
	return longest
}

func samplesToDuration(n, sampleRate int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(sampleRate))
}
