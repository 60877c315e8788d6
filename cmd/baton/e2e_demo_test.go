package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `baton demo` as a user would: bob calls alice, her desk
// answers, her laptop pulls the call and then moves to another address;
// then the SIP part: a PSTN caller on a simulated trunk reaches a
// softphone, and the softphone calls the built-in SIP desk phone.
// Every functional check must pass and the recordings must show who heard
// whom; speed targets are reported only (--check-targets=false): speed is
// measured by benchmarks, not asserted in tests. An invalid duration must
// be refused with a message naming the key.
func TestDemo(t *testing.T) {
	t.Parallel()
	t.Run("passes", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		r := mustBaton(t, dir, "demo", "--duration", "3s", "--check-targets=false", "--out-dir", out)
		if !strings.Contains(r.stdout, "demo passed") {
			t.Fatalf("demo did not print \"demo passed\":\n%s", r)
		}
		for _, want := range []string{"handoff.step 1 ", "handoff.step 12", "all twelve steps happened, in order", "bob never saw a termination"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks %q", want)
			}
		}
		order, _, err := toneOrder(filepath.Join(out, "bob-mobile.wav"), []float64{440, 660, 880})
		if err != nil || order != "660,880" {
			t.Errorf("bob heard %q (%v), want the desk's 660 Hz then the laptop's 880 Hz", order, err)
		}
		for _, c := range []struct {
			file string
			hz   float64
		}{
			{"alice-desk.wav", 440},   // the desk hears bob, the caller
			{"alice-laptop.wav", 440}, // so does the laptop after the pull
		} {
			path := filepath.Join(out, c.file)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("recording missing: %v\n%s", err, r)
			}
			// 2 s of 8 kHz 16-bit mono is 32000 bytes of data; a bare
			// header is 44.
			if fi.Size() < 8000 {
				t.Errorf("%s is %d bytes, want at least half a second of audio", c.file, fi.Size())
			}
			checkHears(t, path, c.hz, 500*time.Millisecond)
		}
		// The SIP part: the PSTN caller on the simulated trunk reached
		// bob/laptop, and bob/laptop called carol's built-in desk phone;
		// each recording holds the other side's tone.
		for _, want := range []string{"came in through trunk pstn as pstn/trunk1", "rang the SIP desk phone, which answered", "gateway.listening", "sip.registered"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks the SIP part's %q", want)
			}
		}
		for _, c := range []struct {
			file string
			hz   float64
		}{
			{"bob-laptop-with-pstn-trunk1.wav", 770}, // bob hears the PSTN caller
			{"pstn-caller.wav", 440},                 // the PSTN caller hears bob
			{"bob-laptop-with-carol-desk.wav", 550},  // bob hears carol's desk phone
			{"carol-deskphone.wav", 440},             // the desk phone hears bob
		} {
			checkHears(t, filepath.Join(out, c.file), c.hz, 500*time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(out, "access-data")); !os.IsNotExist(err) {
			t.Errorf("demo left its access data behind without keep_data (stat: %v)", err)
		}
	})
	t.Run("without the SIP part", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		r := mustBaton(t, dir, "demo", "--duration", "1s", "--check-targets=false", "--sip=false", "--out-dir", out)
		if !strings.Contains(r.stdout, "demo passed") || strings.Contains(r.stdout, "SIP part") {
			t.Fatalf("demo --sip=false: want a pass without the SIP part:\n%s", r)
		}
		if _, err := os.Stat(filepath.Join(out, "pstn-caller.wav")); !os.IsNotExist(err) {
			t.Errorf("demo --sip=false wrote the SIP part's recordings (stat: %v)", err)
		}
	})
	t.Run("invalid duration", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		failBaton(t, dir, []string{"duration", `"0s"`}, "demo", "--duration", "0s", "--out-dir", filepath.Join(dir, "out"))
	})
}
