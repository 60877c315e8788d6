package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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

// maxRecordingNames bounds the search for a free numbered recording name.
const maxRecordingNames = 10000

// sinkFactory records each call to a WAV file. Each recording takes the
// first name of path, path-2.wav, path-3.wav... that does not exist yet,
// so no recording overwrites another, whether it was written by this
// process or an earlier one; a recording that is not path itself is
// logged with its name. The file is created only when the first frame of
// audio arrives, so a call that never carried audio (rejected busy, not
// answered) leaves no file. With replace (the demo, which owns its output
// directory) every call of the process writes path itself, truncating it.
func sinkFactory(path string, replace bool, log *slog.Logger) func(string, string) (audio.Sink, error) {
	if path == "" {
		return nil
	}
	var mu sync.Mutex
	next := 1 // the lowest number that may still be free
	open := func(callID string) (*audio.WAVWriter, error) {
		if replace {
			return audio.CreateWAV(path, sampleRate)
		}
		mu.Lock()
		defer mu.Unlock()
		for ; next <= maxRecordingNames; next++ {
			p := recordingName(path, next)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("record: %w", err)
			}
			next++
			if p != path {
				log.Info("recording to a numbered file; the record path exists", "call_id", callID, "path", p, "record", path)
			} else {
				log.Info("recording", "call_id", callID, "path", p)
			}
			return audio.NewWAVWriter(f, sampleRate)
		}
		return nil, fmt.Errorf("record: %s and %d numbered names exist: %w", path, maxRecordingNames-1, fs.ErrExist)
	}
	return func(callID, _ string) (audio.Sink, error) {
		return &lazyRecording{open: func() (*audio.WAVWriter, error) { return open(callID) }}, nil
	}
}

// recordingName is the n-th name for recordings of path: path itself,
// then path-2.wav, path-3.wav...
func recordingName(path string, n int) string {
	if n <= 1 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
}

// lazyRecording is a Sink that opens its WAV file on the first frame. An
// open error is kept and returned for every later frame (the media engine
// logs sink errors at a bounded rate), without trying again.
type lazyRecording struct {
	open func() (*audio.WAVWriter, error)

	mu     sync.Mutex
	w      *audio.WAVWriter
	err    error
	closed bool
}

func (r *lazyRecording) WriteFrame(pcm []int16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil && r.err == nil && !r.closed {
		r.w, r.err = r.open()
	}
	switch {
	case r.err != nil:
		return r.err
	case r.w == nil:
		return fmt.Errorf("record: write frame: %w", audio.ErrClosed)
	}
	return r.w.WriteFrame(pcm)
}

// Close closes the recording if one was opened. It is idempotent.
func (r *lazyRecording) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.w == nil {
		return nil
	}
	return r.w.Close()
}
