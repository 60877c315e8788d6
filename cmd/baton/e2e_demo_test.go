package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `baton demo` as a user would: a short call must pass every
// check and leave both recordings, each holding the other party's tone; an
// invalid duration must be refused with a message naming the key.
func TestDemo(t *testing.T) {
	t.Parallel()
	t.Run("passes", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		r := mustBaton(t, dir, "demo", "--duration", "2s", "--out-dir", out)
		if !strings.Contains(r.stdout, "demo passed") {
			t.Fatalf("demo did not print \"demo passed\":\n%s", r)
		}
		for _, c := range []struct {
			file string
			hz   float64
		}{
			{"alice-laptop.wav", 440}, // alice hears bob, the caller
			{"bob-mobile.wav", 660},   // bob hears alice
		} {
			path := filepath.Join(out, c.file)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("recording missing: %v\n%s", err, r)
			}
			// 2 s of 8 kHz 16-bit mono is 32000 bytes of data; a bare
			// header is 44.
			if fi.Size() < 16000 {
				t.Errorf("%s is %d bytes, want at least a second of audio", c.file, fi.Size())
			}
			checkHears(t, path, c.hz, time.Second)
		}
		if _, err := os.Stat(filepath.Join(out, "access-data")); !os.IsNotExist(err) {
			t.Errorf("demo left its access data behind without keep_data (stat: %v)", err)
		}
	})
	t.Run("invalid duration", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		failBaton(t, dir, []string{"duration", `"0s"`}, "demo", "--duration", "0s", "--out-dir", filepath.Join(dir, "out"))
	})
}
