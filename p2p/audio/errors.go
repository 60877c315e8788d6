package audio

import "errors"

// Sentinel errors returned (wrapped, with details) by this package. Test for
// them with errors.Is.
var (
	// ErrInvalidArgument means a constructor got a parameter it cannot work
	// with: a tone frequency outside (0, sampleRate/2), an amplitude outside
	// (0, 1], a non-positive sample rate, a nil clip.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrInvalidWAV means the input is not a WAV file this package reads:
	// RIFF/WAVE, PCM format 1, mono, 16-bit, with a fmt chunk before a
	// complete data chunk. The wrapping error says which part is wrong.
	ErrInvalidWAV = errors.New("invalid wav")

	// ErrTooLarge means a WAV data chunk is larger than MaxWAVDataBytes;
	// it is refused before reading so a bad or hostile file cannot exhaust
	// memory.
	ErrTooLarge = errors.New("wav data too large")

	// ErrSampleRate means a clip's sample rate differs from the rate the
	// caller needs (usually the codec's). Baton does not resample.
	ErrSampleRate = errors.New("sample rate mismatch")

	// ErrClosed means a WAVWriter was used after Close.
	ErrClosed = errors.New("closed")
)
