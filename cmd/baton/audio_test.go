package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/baton-voice/baton/p2p/audio"
)

// TestRecordingLazyAndNumbered checks --record: a call without audio leaves
// no file, and a recording never overwrites an existing file (one left by
// an earlier process or an earlier call): it takes the next numbered name.
func TestRecordingLazyAndNumbered(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.wav")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = 1000
	}

	// A call that never carried audio (busy, unanswered) creates nothing.
	newSink := sinkFactory(path, false, log)
	s, err := newSink("c0", "bob/mobile")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("stat %s after a call without audio = %v, want not exist", path, err)
	}

	// An earlier process's recording is kept.
	if err := os.WriteFile(path, []byte("earlier"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rec-2.wav", "rec-3.wav"} {
		s, err := newSink("c1", "bob/mobile")
		if err != nil {
			t.Fatal(err)
		}
		for range 60 {
			if err := s.WriteFrame(frame); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.(io.Closer).Close(); err != nil {
			t.Fatal(err)
		}
		c, err := audio.ReadWAVFile(filepath.Join(dir, want))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Samples) != 60*160 {
			t.Errorf("%s holds %d samples, want %d", want, len(c.Samples), 60*160)
		}
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "earlier" {
		t.Errorf("earlier recording = %q, %v; want it untouched", b, err)
	}
	// A second process with the same path skips every existing name.
	s, err = sinkFactory(path, false, log)("c2", "bob/mobile")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFrame(frame); err != nil {
		t.Fatal(err)
	}
	s.(io.Closer).Close()
	if _, err := os.Stat(filepath.Join(dir, "rec-4.wav")); err != nil {
		t.Errorf("second process: %v, want rec-4.wav", err)
	}
}
