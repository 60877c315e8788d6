package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Hold and resume end to end (issue 8 §2, docs/protocol.md §17): two real
// `baton phone`s, `baton ctl hold` / `ctl resume`, the events each side
// publishes and what each recorded.

// toneRuns returns the recording's segments, merged into runs of "tone
// hz" and "silence" of at least 100 ms, for logging and checks.
func toneRuns(t *testing.T, path string) []audio.Segment {
	t.Helper()
	var clip *audio.Clip
	eventually(t, 10*time.Second, "a readable recording "+path, func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(path)
		return err == nil, fmt.Sprint(err)
	})
	var runs []audio.Segment
	for _, s := range audio.Segments(clip.Samples, clip.SampleRate, 0, toneCandidates) {
		if n := len(runs); n > 0 && (runs[n-1].Hz == s.Hz || s.Duration() < 100*time.Millisecond) {
			runs[n-1].End = s.End
			continue
		}
		runs = append(runs, s)
	}
	return runs
}

// checkToneSilenceTone asserts a recording is the tone hz, then at least
// minSilence of silence, then the tone again, each tone at least minTone.
func checkToneSilenceTone(t *testing.T, path string, hz float64, minTone, minSilence time.Duration) {
	t.Helper()
	runs := toneRuns(t, path)
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "  %6s-%6s %4.0f Hz\n", r.Start.Round(10*time.Millisecond), r.End.Round(10*time.Millisecond), r.Hz)
	}
	t.Logf("%s:\n%s", filepath.Base(path), b.String())
	// Find tone, then a long silence, then tone.
	state := 0
	for _, r := range runs {
		switch {
		case state == 0 && math.Abs(r.Hz-hz) < 1 && r.Duration() >= minTone:
			state = 1
		case state == 1 && r.Silent() && r.Duration() >= minSilence:
			state = 2
		case state == 2 && math.Abs(r.Hz-hz) < 1 && r.Duration() >= minTone:
			state = 3
		}
	}
	if state != 3 {
		t.Errorf("%s: want %.0f Hz (>= %s), silence (>= %s), %.0f Hz again; got\n%s", path, hz, minTone, minSilence, hz, b.String())
	}
}

func TestE2EHoldResumeTwoPhones(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	aliceWAV, bobWAV := filepath.Join(dir, "alice.wav"), filepath.Join(dir, "bob.wav")
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, record: aliceWAV})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, record: bobWAV, autoAnswer: true})
	waitOnlineBuddy(t, dir, alice.admin, "bob/mobile")
	events := start(t, "events "+bob.admin, dir, "ctl", "--admin", bob.admin, "events", "call.")
	time.Sleep(300 * time.Millisecond) // the stream is open before anything happens

	id := dial(t, dir, alice.admin, "bob/mobile")
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(1500 * time.Millisecond)

	r := mustCtl(t, dir, alice.admin, "hold", id)
	if want := "call " + id + " with bob/mobile: direction sendonly, held by local"; !strings.Contains(r.stdout, want) {
		t.Errorf("ctl hold printed %q, want %q", r.stdout, want)
	}
	eventually(t, pollTimeout, "bob's call.held event", func() (bool, string) {
		out := events.stdout.String()
		return strings.Contains(out, "call.held") && strings.Contains(out, "by=remote direction=recvonly"), out
	})
	// Nothing is received either way while held.
	time.Sleep(200 * time.Millisecond)
	a0, b0 := packetsReceived(t, callRow(t, dir, alice.admin, id)), packetsReceived(t, callRow(t, dir, bob.admin, id))
	time.Sleep(2 * time.Second)
	a1, b1 := packetsReceived(t, callRow(t, dir, alice.admin, id)), packetsReceived(t, callRow(t, dir, bob.admin, id))
	if a1 != a0 || b1 != b0 {
		t.Errorf("packets received while held: alice %d, bob %d, want none", a1-a0, b1-b0)
	}
	// A second ctl hold changes nothing; resume at the other side is not
	// possible for what alice holds: bob resuming only ends bob's own hold.
	mustCtl(t, dir, alice.admin, "hold", id)

	r = mustCtl(t, dir, alice.admin, "resume", id)
	if want := "direction sendrecv, held by nobody"; !strings.Contains(r.stdout, want) {
		t.Errorf("ctl resume printed %q, want %q", r.stdout, want)
	}
	eventually(t, pollTimeout, "bob's call.resumed event", func() (bool, string) {
		out := events.stdout.String()
		return strings.Contains(out, "call.resumed"), out
	})
	eventually(t, pollTimeout, "audio both ways again", func() (bool, string) {
		ar, br := callRow(t, dir, alice.admin, id), callRow(t, dir, bob.admin, id)
		return packetsReceived(t, ar) > a1+20 && packetsReceived(t, br) > b1+20, fmt.Sprint(ar, br)
	})
	time.Sleep(1500 * time.Millisecond)
	mustCtl(t, dir, alice.admin, "hangup", id)
	waitCallState(t, dir, bob.admin, id, "ended")
	waitCallState(t, dir, alice.admin, id, "ended")
	t.Logf("bob's events:\n%s", events.stdout.String())

	checkToneSilenceTone(t, bobWAV, 660, 800*time.Millisecond, 1500*time.Millisecond)
	checkToneSilenceTone(t, aliceWAV, 440, 800*time.Millisecond, 1500*time.Millisecond)

	// Hold of no call, and of an ended one, is refused with a clear error.
	if r := ctl(t, dir, alice.admin, "hold", "c-nope"); r.code == 0 || !strings.Contains(r.stderr, "no-such-call") {
		t.Errorf("ctl hold of no call:\n%s", r)
	}
}
