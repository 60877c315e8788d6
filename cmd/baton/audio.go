package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/baton-voice/baton/p2p/audio"
)

// sampleRate is G.711's, the only rate the built-in codecs use.
const sampleRate = 8000

// sourceFactory returns the per-call "microphone": a tone, a looping WAV
// clip, or nil for silence.
func sourceFactory(tone int, play string) (func(string) (audio.Source, error), error) {
	switch {
	case tone > 0:
		if _, err := audio.NewTone(float64(tone), sampleRate, 0.3); err != nil {
			return nil, err
		}
		return func(string) (audio.Source, error) {
			return audio.NewTone(float64(tone), sampleRate, 0.3)
		}, nil
	case play != "":
		clip, err := audio.ReadWAVFile(play)
		if err != nil {
			return nil, err
		}
		if _, err := audio.NewClipSource(clip, sampleRate, true); err != nil {
			return nil, fmt.Errorf("%s: %w", play, err)
		}
		return func(string) (audio.Source, error) {
			return audio.NewClipSource(clip, sampleRate, true)
		}, nil
	}
	return nil, nil
}

// sinkFactory records each call to a WAV file. The first call writes path
// itself; later calls of the same process write path-2.wav, path-3.wav...
// so no recording overwrites another.
func sinkFactory(path string) func(string, string) (audio.Sink, error) {
	if path == "" {
		return nil
	}
	var mu sync.Mutex
	n := 0
	return func(string, string) (audio.Sink, error) {
		mu.Lock()
		n++
		p := path
		if n > 1 {
			ext := filepath.Ext(path)
			p = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
		}
		mu.Unlock()
		return audio.CreateWAV(p, sampleRate)
	}
}
