package endpoint

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/wire"
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
	// The gap itself is a speed target, measured by BenchmarkPull and the
	// demo; here only its order: the desk's tone, then the laptop's.
	segs := audio.Segments(bob.sink.samples(), 8000, 0, []float64{440, 660, 880})
	t.Logf("longest silence at bob across the pull: %s", audio.LongestSilence(segs))
	var order []float64
	for _, sg := range segs {
		if !sg.Silent() && sg.Duration() >= 60*time.Millisecond && (len(order) == 0 || order[len(order)-1] != sg.Hz) {
			order = append(order, sg.Hz)
		}
	}
	if len(order) != 2 || order[0] != 660 || order[1] != 880 {
		t.Errorf("bob heard %v, want the desk's 660 Hz then the laptop's 880 Hz", order)
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

func TestRebindKeepsCall(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	alice := n.start("alice", "laptop", withTone(660), func(c *Config) { c.MediaIP = netip.MustParseAddr("127.0.0.2") })
	ac, _ := establish(t, alice, bob)
	eventually(t, "audio both ways", func() bool {
		return len(bob.sink.samples()) > 4000 && len(alice.sink.samples()) > 4000
	})
	h, err := alice.Rebind(context.Background(), netip.MustParseAddr("127.0.0.7"))
	if err != nil {
		t.Fatalf("rebind: %v (%+v)", err, h)
	}
	for _, s := range h.Steps {
		t.Logf("step %2d %+8.2f ms  %s: %s", s.Step, s.SinceStartMS, s.Title, s.Detail)
	}
	if len(h.Steps) != 5 || h.Steps[0].Step != 8 || h.Steps[4].Step != 12 {
		t.Fatalf("steps %+v, want 8..12", h.Steps)
	}
	info := alice.mustCall(t, ac.ID)
	if !strings.HasPrefix(info.LocalMedia, "127.0.0.7:") || info.State != "active" {
		t.Fatalf("alice's call after rebind %+v", info)
	}
	if got := bob.mustCall(t, ac.ID).RemoteMedia; got != info.LocalMedia {
		t.Errorf("bob sends to %s, alice listens on %s", got, info.LocalMedia)
	}
	before := len(bob.sink.samples())
	eventually(t, "bob to keep hearing alice", func() bool { return len(bob.sink.samples()) > before+4000 })
	segs := audio.Segments(bob.sink.samples(), 8000, 0, []float64{440, 660})
	t.Logf("longest silence at bob across alice's move: %s (measured by BenchmarkRebind)", audio.LongestSilence(segs))
	if st := alice.Status(); st.MediaIP != "127.0.0.7" {
		t.Errorf("status media ip %s", st.MediaIP)
	}
	// A bad address is refused before the call is touched.
	if _, err := alice.Rebind(context.Background(), netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("rebind to an address not on this machine succeeded")
	}
	if info := alice.mustCall(t, ac.ID); info.State != "active" {
		t.Errorf("call %s after a refused rebind", info.State)
	}
}

func TestMediaMovesWhenItsAddressDisappears(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	bob := n.start("bob", "mobile", withTone(440), autoAnswer)
	var gone sync.Map // addresses taken away
	alice := n.start("alice", "laptop", withTone(660), func(c *Config) {
		c.MediaIP = netip.MustParseAddr("127.0.0.2")
		c.FallbackIPs = []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.7")}
		c.AddrWatch = 50 * time.Millisecond
		c.present = func(ip netip.Addr) bool { _, g := gone.Load(ip); return !g }
	})
	ac, _ := establish(t, alice, bob)
	eventually(t, "audio", func() bool { return len(bob.sink.samples()) > 4000 })
	gone.Store(netip.MustParseAddr("127.0.0.2"), true) // Wi-Fi lost
	eventually(t, "the media to move to 127.0.0.7", func() bool {
		info, err := alice.Call(ac.ID)
		return err == nil && strings.HasPrefix(info.LocalMedia, "127.0.0.7:")
	})
	var rb HandoffInfo
	eventually(t, "the automatic rebind to finish", func() bool {
		for _, h := range alice.Handoffs() {
			if h.Kind == "rebind" && h.State != "running" {
				rb = h
				return true
			}
		}
		return false
	})
	if rb.State != "done" || len(rb.Steps) != 5 {
		t.Fatalf("automatic rebind %+v", rb)
	}
	stillUp(t, bob, ac.ID, "alice/laptop")
}

// bob's RTP sequence number wraps before the pull and before the move:
// the laptop must still decrypt bob's stream (the SRTP roll-over counter
// travels in the session parameters, and across the move).
func TestPullAndRebindAfterSequenceWrap(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	nearWrap := uint16(65535 - 20)
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.User == "bob" {
			c.firstSeq = &nearWrap
		}
	})
	eventually(t, "bob's stream to wrap", func() bool { return desk.mustCall(t, id).Media.PacketsReceived > 40 })
	laptop := n.start("alice", "laptop", fastTimeouts, func(c *Config) { c.MediaIP = netip.MustParseAddr("127.0.0.2") })
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if err != nil || h.State != "done" || len(h.Steps) != 12 {
		t.Fatalf("pull after bob's wrap: %v %+v", err, h)
	}
	heard := func(what string) {
		t.Helper()
		before := laptop.mustCall(t, id).Media.PacketsReceived
		eventually(t, what, func() bool { return laptop.mustCall(t, id).Media.PacketsReceived > before+10 })
		if st := laptop.mustCall(t, id).Media; st.AuthFailed != 0 {
			t.Errorf("%s: %d packets failed authentication", what, st.AuthFailed)
		}
	}
	heard("the laptop to hear bob after the pull")
	if _, err := laptop.Rebind(context.Background(), netip.MustParseAddr("127.0.0.7")); err != nil {
		t.Fatalf("rebind after bob's wrap: %v", err)
	}
	heard("the laptop to hear bob after its move")
	stillUp(t, bob, id, "alice/laptop")
}

// bob's stream wraps while the pull is under way, before A's sessions
// hear him. A decrypts bob's packets under the roll-over counter it
// estimates from what B told it (RFC 3711 §3.3.1); with the wrong one it
// never hears bob and waits out its NewAudio timer (docs/benchmarks.md
// §23: the ~1 s tail late in a long call).
//
// "B had not heard C at step 3" is how the known bug showed (2 runs in 3
// under load): the pull came right after the answer, before the desk's
// session had authenticated any of bob's packets, so its session
// parameters held no index of bob's stream (peer_ssrc 0, no peer_roc nor
// peer_seq). A then took bob's first packet as counter 0, wrong once bob
// had wrapped (the hold below makes sure he has before A hears him). Now
// B's stop-ack (step 5) carries the index again, as B hears C until step
// 7, and so does C's reestablish-ack (step 7: C's own, the sender's), and
// A's new session starts from the freshest. The cases make the empty
// step-3 parameters certain instead of a race, and take each of the two
// later indexes away (an older B or C) to show the other one suffices.
// The wrap between steps 5 and 9 with B's step-3 index is the estimate's
// (it held before the fix too).
func TestPullWhileFarPartyWraps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// holdAt is the step after which the pull waits for bob's wrap.
		holdAt int
		// heardFirst: the pull starts once the desk heard bob, so its
		// step-3 parameters have bob's index.
		heardFirst bool
		// unheard: the desk offers no index of bob's stream at step 3.
		unheard bool
		// oldB, oldC: the desk's stop-ack, bob's reestablish-ack carry
		// no index (endpoints older than these fields).
		oldB, oldC bool
	}{
		{name: "wrap between step 3 and step 4", holdAt: 3},
		{name: "B had not heard C at step 3, C older", holdAt: 3, unheard: true, oldC: true},
		{name: "B had not heard C at step 3, B older", holdAt: 3, unheard: true, oldB: true},
		{name: "wrap between step 5 and step 9", holdAt: 5, heardFirst: true, oldB: true, oldC: true},
		{name: "wrap between step 5 and step 9, B had not heard C at step 3, B older", holdAt: 5, unheard: true, oldB: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pullWhileFarPartyWraps(t, tc.holdAt, tc.heardFirst, tc.unheard, tc.oldB, tc.oldC)
		})
	}
}

func pullWhileFarPartyWraps(t *testing.T, holdAt int, heardFirst, unheard, oldB, oldC bool) {
	t.Helper()
	n := newNetwork(t)
	const beforeWrap = 150 // packets: 3 s for the pull to reach the hold
	first := uint16(65535 - beforeWrap + 1)
	var bob *party
	bobSent := func() (sent uint64) {
		for _, c := range bob.Calls() {
			if c.Media != nil {
				sent = c.Media.PacketsSent
			}
		}
		return sent
	}
	laptop := n.start("alice", "laptop", fastTimeouts, func(c *Config) {
		c.stepHook = func(step int) {
			if step != holdAt || bob == nil {
				return
			}
			// Hold the pull until bob wrapped.
			sent := bobSent()
			if sent >= beforeWrap {
				t.Errorf("precondition: bob had sent %d packets (wrapped) before step %d", sent, holdAt)
				return
			}
			deadline := time.Now().Add(wait)
			for sent < beforeWrap+5 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				sent = bobSent()
			}
		}
	})
	var id string
	var desk *party
	noIndex := func(m wire.Message) {
		switch m := m.(type) {
		case *wire.StopAck:
			m.PeerSSRC, m.PeerROC, m.PeerSeq = 0, 0, nil
		case *wire.ReestablishAck:
			m.PeerSSRC, m.PeerROC, m.PeerSeq = 0, 0, nil
		}
	}
	bob, desk, id = deskCall(t, n, func(c *Config) {
		if c.User == "bob" {
			c.firstSeq = &first
			if oldC {
				c.ackHook = noIndex
			}
			return
		}
		if unheard {
			c.offerHook = func(p *wire.SessionParams) { p.PeerSSRC, p.PeerROC, p.PeerSeq = 0, 0, nil }
		}
		if oldB {
			c.ackHook = noIndex
		}
	})
	if heardFirst {
		eventually(t, "the desk to hear bob", func() bool { return desk.mustCall(t, id).Media.PacketsReceived > 0 })
	}
	laptop.waitOnline(t, "alice/desk")
	h, err := laptop.Pull(context.Background(), PullRequest{From: "desk"})
	if err != nil || h.State != "done" || len(h.Steps) != 12 {
		t.Fatalf("pull across bob's wrap: %v %+v", err, h)
	}
	before := laptop.mustCall(t, id).Media.PacketsReceived
	eventually(t, "the laptop to hear bob", func() bool { return laptop.mustCall(t, id).Media.PacketsReceived > before+10 })
	if st := laptop.mustCall(t, id).Media; st.AuthFailed != 0 {
		t.Errorf("%d of bob's packets failed authentication at the laptop", st.AuthFailed)
	}
	stillUp(t, bob, id, "alice/laptop")
}

// TestRebindUnheardAcrossWrap: a rebind from a session with no index of
// the peer's stream (one that had not authenticated a packet of it, as
// right after the answer) after the peer's sequence number wrapped: the
// new session's first packet of bob is under roll-over counter 1 while it
// starts from 0, and its ROC+1 trial finds it. new-address-ack needs no
// index of its own for this (docs/protocol.md, stream index).
func TestRebindUnheardAcrossWrap(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	const beforeWrap = 25 // packets: half a second
	first := uint16(65535 - beforeWrap + 1)
	bob, desk, id := deskCall(t, n, func(c *Config) {
		if c.User == "bob" {
			c.firstSeq = &first
		} else {
			c.rebindUnheard = true
		}
	})
	eventually(t, "bob to wrap", func() bool { return bob.mustCall(t, id).Media.PacketsSent > beforeWrap+5 })
	h, err := desk.Rebind(context.Background(), netip.MustParseAddr("127.0.0.7"))
	if err != nil || h.State != "done" {
		t.Fatalf("rebind: %v %+v", err, h)
	}
	before := desk.mustCall(t, id).Media.PacketsReceived
	eventually(t, "the desk to hear bob after the rebind", func() bool {
		return desk.mustCall(t, id).Media.PacketsReceived > before+10
	})
	if st := desk.mustCall(t, id).Media; st.AuthFailed != 0 {
		t.Errorf("%d of bob's packets failed authentication after the rebind", st.AuthFailed)
	}
}
