// Package audio is Baton's sound card without a sound card: sources that
// stand in for a microphone (a tone, a WAV file), sinks that stand in for a
// loudspeaker (a WAV recorder), and small analysis helpers that let a test
// or a person check what each party heard.
//
// All audio inside Baton is 16-bit signed linear PCM, mono, at the codec's
// sample rate (8000 Hz for G.711), moved in frames of one packet time.
package audio

// Source produces audio frames, one packet time at a time.
type Source interface {
	// ReadFrame fills pcm completely with the next samples. A source that
	// runs out (a WAV file) loops or fills silence; it never returns a short
	// frame. It must not allocate on the steady path.
	ReadFrame(pcm []int16) error
}

// Sink consumes the frames an endpoint plays out, one per packet time, in
// playout order. Concealed (lost) frames are delivered too, so the sink's
// timeline is the call's timeline.
type Sink interface {
	WriteFrame(pcm []int16) error
}
