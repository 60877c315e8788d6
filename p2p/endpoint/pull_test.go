package endpoint

import (
	"context"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

func TestPullHappyPath(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	desk := n.start("alice", "desk", withTone(660))
	desk.waitOnline(t, "bob/mobile")
	out, err := desk.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	desk.waitState(t, out.ID, "active")
	bobCall := bob.waitState(t, out.ID, "active")
	eventually(t, "bob to hear the desk", func() bool { return len(bob.sink.samples()) > 8000 })

	laptop := n.start("alice", "laptop", withTone(880))
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if err != nil {
		t.Fatalf("pull: %v (%+v)", err, h)
	}
	if h.State != "done" || len(h.Steps) != 12 {
		t.Fatalf("handoff %+v", h)
	}
	for _, s := range h.Steps {
		t.Logf("step %2d %+8.2f ms  %s: %s", s.Step, s.SinceStartMS, s.Title, s.Detail)
	}
	t.Logf("first audio from bob after %.2f ms", h.FirstAudioMS)
	for i, s := range h.Steps {
		if s.Step != i+1 {
			t.Fatalf("step %d is %d: %+v", i+1, s.Step, h.Steps)
		}
		if i > 0 && s.At.Before(h.Steps[i-1].At) {
			t.Fatalf("step %d before step %d", s.Step, h.Steps[i-1].Step)
		}
	}
	// The call is on the laptop, with bob; the desk let go silently.
	lc := laptop.waitState(t, out.ID, "active")
	if lc.Peer != "bob/mobile" || lc.Direction != "pulled" {
		t.Fatalf("laptop's call %+v", lc)
	}
	dc := desk.waitState(t, out.ID, "ended")
	if dc.EndReason != "handed off to alice/laptop" {
		t.Errorf("desk's end reason %q", dc.EndReason)
	}
	bc := bob.waitState(t, out.ID, "active")
	if bc.Peer != "alice/laptop" {
		t.Errorf("bob's peer is %s, want alice/laptop", bc.Peer)
	}
	// Bob keeps hearing alice: the laptop's tone now.
	before := len(bob.sink.samples())
	eventually(t, "bob to hear the laptop", func() bool { return len(bob.sink.samples()) > before+8000 })
	tail := bob.sink.samples()
	if f := audio.DominantFrequency(tail[len(tail)-4000:], 8000, []float64{440, 660, 880}); f != 880 {
		t.Errorf("bob hears %v Hz after the pull, want the laptop's 880", f)
	}
	eventually(t, "the laptop to hear bob", func() bool { return len(laptop.sink.samples()) > 4000 })
	segs := audio.Segments(bob.sink.samples(), 8000, 0, []float64{440, 660, 880})
	if gap := audio.LongestSilence(segs); gap > 40*time.Millisecond {
		t.Errorf("bob heard a %s silence across the pull; segments %v", gap, segs)
	}
	// Bob never saw the call end.
	for {
		select {
		case ev := <-bob.events:
			if ev.Type == "call.ended" {
				t.Fatalf("bob saw %+v", ev)
			}
			continue
		default:
		}
		break
	}
	_ = bobCall
	if bm := bob.mustCall(t, out.ID).Media; bm != nil {
		t.Logf("bob's media: %+v", *bm)
	}
	if err := laptop.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	if got := bob.waitState(t, out.ID, "ended"); got.EndReason != "remote hangup: local hangup" {
		t.Errorf("bob's end %q", got.EndReason)
	}
}
