package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/p2p/handoff"
)

// invite sends an INVITE from the phone to user at the gateway (with
// extra headers) and returns its dialog and final status, acknowledged
// when it is 2xx.
func (p *phone) invite(l *leg, user string, hdrs ...sip.Header) (*sipgo.DialogClientSession, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dialogs := sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: "127.0.0.1", Port: p.port()}})
	dc, err := dialogs.Invite(ctx, p.gwURI(user), phoneSDP(p.t, l, "PCMU"), append([]sip.Header{sip.NewHeader("Content-Type", "application/sdp")}, hdrs...)...)
	if err != nil {
		p.t.Fatal(err)
	}
	err = dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: p.pw})
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		return dc, de.Res.StatusCode
	case err != nil:
		p.t.Fatalf("INVITE %s: %v", user, err)
	}
	if err := dc.Ack(ctx); err != nil {
		p.t.Fatal(err)
	}
	return dc, dc.InviteResponse.StatusCode
}

// Issue 9 §6, a trunk as C: the desk phone's *8 is answered before the
// pull (docs/transfers.md), so the phone's RTP already flows when A
// streams it to C at step 4 and the PSTN caller hears the desk at once.
// Before, the 200 came once the pull was done and the trunk heard 100 ms
// or more of A's silent stream (docs/benchmarks.md §23). Per move: the
// phone has its 200 before A's step 4, and the trunk hears at most the
// issue's 40 ms of silence or concealment.
func TestPickupAnsweredBeforePull(t *testing.T) {
	tn := newTrunkNet(t, 1)
	ctx := context.Background()
	user := tn.users[0]
	laptop := tn.softphone(t, user, "laptop", 880)
	desk := newDeskPhone(t, tn.gw, user, 660)
	tn.waitTrunkOnline(t)
	eventually(t, "the desk online", func() bool { return online(laptop, user+"/desk") })
	tr := newTrunkUA(t, tn.gw.Addr("udp"))
	media := newTrunkMedia(t)
	cctx, cancel := context.WithTimeout(ctx, wait)
	dc, err := tr.call(cctx, trunkNumber(0), media)
	cancel()
	if err != nil {
		t.Fatalf("the trunk's call: %v", err)
	}
	eventually(t, "the laptop's call to be active", func() bool {
		for _, c := range laptop.Calls() {
			if c.State == "active" {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		start := time.Now()
		mctx, cancel := context.WithTimeout(ctx, wait)
		answered, _, err := desk.pickupTimed(mctx)
		cancel()
		if err != nil {
			t.Fatalf("move %d: the desk's *8: %v", i, err)
		}
		h := finishedPull(t, tn.gw, user, start)
		if h.State != "done" {
			t.Fatalf("move %d: A's pull %s: %s", i, h.State, h.Error)
		}
		var step4 time.Time
		for _, s := range h.Steps {
			if s.Step == 4 {
				step4 = s.At
			}
		}
		if step4.IsZero() || !start.Add(answered).Before(step4) {
			t.Errorf("move %d: the phone's 200 came %v after the INVITE, A's step 4 %v: want the phone answered before A streams its audio to C",
				i, answered, step4.Sub(start))
		}
		dl := deskLeg(tn.gw, user)
		atDone := countsOf(dl)
		time.Sleep(settle)
		// A's final session (steps 9-10) continues the provisional one's
		// ticks: the desk leg keeps its frame of margin. With a timeline
		// of its own the final session read the leg twice within a
		// millisecond at its start, and every frame read after that left
		// the leg empty (one late phone packet: an underrun, 40 ms of
		// silence to the trunk). A late packet under load empties it once.
		e := countsOf(dl).minus(atDone).emptied
		t.Logf("move %d: A read the desk leg empty %d times after its pull", i, e)
		if e > 4 {
			t.Errorf("move %d: %d of the ~%d frames A read from the desk leg after its pull left it empty; want at most 4 (the leg keeps a frame of margin)",
				i, e, settle/(20*time.Millisecond))
		}
		got := media.across(start, h.Finished.Add(settle))
		sw, ok := media.switchGap(start, h.Finished.Add(settle), 880, 660)
		t.Logf("move %d: 200 at %v, step 4 at %v; the trunk heard %s", i, answered, step4.Sub(start), media.heard(start, h.Finished.Add(settle)))
		// The switch itself, from the laptop's tone to the desk's: the
		// frames between them (the whole move's count also holds any
		// descheduling of this test's receiver under load).
		if !ok || sw > 2 || got.lost != 0 {
			t.Errorf("move %d: the trunk heard %d frames of silence or concealment between the laptop and the desk (found %v) and lost %d packets; want at most 2 (40 ms) and 0",
				i, sw, ok, got.lost)
		}
		idleEndpoint(t, laptop)
		pctx, cancel := context.WithTimeout(ctx, wait)
		var info endpoint.HandoffInfo
		for try := 0; ; try++ {
			info, err = laptop.Pull(pctx, endpoint.PullRequest{From: "desk"})
			if !errors.Is(err, endpoint.ErrBadState) || try == 100 {
				break
			}
			time.Sleep(10 * time.Millisecond) // the laptop still held its last call's slot
		}
		cancel()
		if err != nil || info.State != "done" {
			t.Fatalf("move %d: the laptop's pull back: %s %v", i, info.State, err)
		}
		time.Sleep(settle)
	}
	if err := dc.Bye(ctx); err != nil {
		t.Errorf("the trunk's BYE: %v", err)
	}
}

// pullPolicy is the laptop's policy for pulls of its calls: allowed, or
// refused, or allowed once more (the pickup's lookup) and then refused
// (the pull's own session query): the policy changed its mind between the
// two, as a reloaded rule would.
type pullPolicy struct{ allow atomic.Int32 } // how many more pulls to allow

func (p *pullPolicy) Decide(_ context.Context, r handoff.Request) (handoff.Decision, error) {
	if r.Kind != handoff.KindPull {
		return handoff.Decision{Allow: true, Reason: "allowed"}, nil
	}
	for {
		n := p.allow.Load()
		if n <= 0 {
			return handoff.Decision{Reason: "this laptop keeps its calls"}, nil
		}
		if p.allow.CompareAndSwap(n, n-1) {
			return handoff.Decision{Allow: true, Reason: "allowed"}, nil
		}
	}
}

// The pickup's failure paths (docs/transfers.md, "Answered before the
// pull"). Found before the answer, they are final responses: nothing to
// pick up, and a pull the laptop's policy refuses (it offers no session),
// are 404. Found after it, in the pull, they end the answered dialog with
// BYE whose RFC 3326 Reason is the final response the phone would have
// had: here the policy turns between the pickup's lookup and the pull's
// own session query, and the BYE says 404. The call stays on the laptop
// with bob throughout.
func TestPickupFailures(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, true, func(c *Config) { c.PickupCode = "*8" })
	policy := &pullPolicy{}
	laptop, err := endpoint.New(endpoint.Config{
		Access: n.gw.cfg.Access, Roots: n.gw.cfg.Roots, User: "alice", Device: "laptop", Password: "alice-p2p-secret",
		SRTP: true, Codecs: codecs.DefaultRegistry(), AddrWatch: -1, Policy: policy,
		NewSource: func(string) (audio.Source, error) { return audio.NewTone(1000, 8000, 0.3) },
		Logger:    testLogger(t).With("ep", "alice/laptop"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := laptop.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = laptop.Close() })
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "the laptop to see alice/desk online", func() bool { return online(laptop, "alice/desk") })
	l, stop := p.rtpLeg(660)
	defer stop()

	// Nothing to pick up: a final response, no answer.
	if _, code := p.invite(l, "*8"); code != 404 {
		t.Fatalf("*8 with no call: %d, want 404", code)
	}
	a := n.gw.devices["alice"].endpoint() // up: the INVITE waited for it

	ctx := context.Background()
	out, err := laptop.Dial(ctx, "bob/laptop")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop's call to be active", func() bool { c, _ := laptop.Call(out.ID); return c.State == "active" })
	stillBobs := func(when string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond)
		if c, _ := laptop.Call(out.ID); c.State != "active" {
			t.Fatalf("the laptop's call after %s: %s (%s)", when, c.State, c.EndReason)
		}
		for _, c := range n.bob.Calls() {
			if c.ID == out.ID && (c.State != "active" || c.Peer != "alice/laptop") {
				t.Fatalf("bob's call after %s: %+v", when, c)
			}
		}
		eventually(t, "the gateway to forget the pickup", func() bool { return len(n.gw.Calls()) == 0 })
	}

	// Refused by policy: the laptop offers no session, so a final 404 and
	// no pull.
	if _, code := p.invite(l, "*8"); code != 404 {
		t.Fatalf("*8 the laptop's policy refuses: %d, want 404", code)
	}
	if hs := a.Handoffs(); len(hs) != 0 {
		t.Fatalf("a pull began although the laptop offered nothing: %+v", hs)
	}
	stillBobs("a pickup its policy refused")

	// Allowed at the lookup, refused at the pull: answered, then BYE.
	policy.allow.Store(1)
	dc, code := p.invite(l, "*8")
	if code != 200 {
		t.Fatalf("*8 with a call to take: %d, want 200 before the pull", code)
	}
	p.useAnswer(l, dc.InviteResponse.Body())
	var bye *sip.Request
	select {
	case bye = <-p.byes:
	case <-time.After(wait):
		t.Fatal("no BYE after the failed pull")
	}
	if bye.CallID().Value() != dc.InviteRequest.CallID().Value() {
		t.Fatalf("BYE for call %s, want the pickup's %s", bye.CallID().Value(), dc.InviteRequest.CallID().Value())
	}
	if h := bye.GetHeader("Reason"); h == nil || h.Value() != `SIP ;cause=404 ;text="No Call To Pick Up"` {
		t.Fatalf("the BYE's Reason: %v, want SIP ;cause=404 ;text=\"No Call To Pick Up\"", h)
	}
	if hs := a.Handoffs(); len(hs) != 1 || hs[0].State == "done" {
		t.Errorf("A's pulls: %+v, want one, not done", hs)
	}
	stillBobs("a pickup whose pull failed after the answer")

	// The same with sipp as the phone (pickup_answered_bye.xml: 200, ACK,
	// then a BYE that must carry Reason).
	sipp := needSipp(t)
	policy.allow.Store(1)
	dir := t.TempDir()
	if err := runSipp(sipp, dir, n.gw.Addr("udp"), "pickup_answered_bye.xml", "-s", "*8", "-key", "deskuser", "alice", "-au", "alice", "-ap", "desk-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(l.LocalAddr().Port()), "-i", "127.0.0.1", "-p", fmt.Sprint(freeUDP(t))); err != nil {
		t.Fatal(err)
	}
	if hs := a.Handoffs(); len(hs) != 2 || hs[1].State == "done" {
		t.Errorf("A's pulls: %+v, want two, not done", hs)
	}
	stillBobs("sipp's pickup whose pull failed after the answer")
}

// An answered pickup holds the phone's audio while the pull runs up to
// step 4; when A's stream first reads it, what is held beyond the
// prebuffer is dropped, so the call's delay is the prebuffer's (40 ms)
// and not the wait's. Without liveStart the backlog plays out in full.
func TestLegLiveStart(t *testing.T) {
	t.Parallel()
	for _, live := range []bool{false, true} {
		l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		phone := newRTPPeer(t)
		l.setRemote(codecs.PCMU(), 0, -1, phone.addr(), netip.MustParseAddr("127.0.0.1"), true)
		if live {
			l.mu.Lock()
			l.liveStart = true
			l.mu.Unlock()
		}
		const packets = 6 // 120 ms before anyone reads
		for k := range packets {
			phone.sendPayload(l.LocalAddr(), 0, frameOf(byte(0x10+k), 160))
		}
		eventually(t, "the leg to take the phone's packets", func() bool { return l.stats.Received.Load() == packets })
		dst := make([]byte, 160)
		var first []byte
		frames := 0
		for {
			n, ok, err := l.ReadPayload(codecs.PCMU(), 160, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if frames == 0 {
				first = append([]byte(nil), dst[:n]...)
			}
			frames++
		}
		want, wantFirst := packets, byte(0x10)
		if live {
			want, wantFirst = 2, byte(0x10+packets-2) // the prebuffer: the newest 40 ms
		}
		if frames != want || first[0] != wantFirst {
			t.Errorf("liveStart %v: read %d frames starting with %#x, want %d starting with %#x", live, frames, first[0], want, wantFirst)
		}
		_ = l.Close()
	}
}

func TestReasonHeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		code int
		text string
		want string
	}{
		{403, "Forbidden", `SIP ;cause=403 ;text="Forbidden"`},
		{481, "Dialog Ended Or Taken By Another Device", `SIP ;cause=481 ;text="Dialog Ended Or Taken By Another Device"`},
		{500, "Server Error: a \"quoted\" \\ thing\r\n", `SIP ;cause=500 ;text="Server Error: a \"quoted\" \\ thing"`},
	} {
		h := reasonHeader(c.code, c.text)
		if h.Name() != "Reason" || h.Value() != c.want {
			t.Errorf("reasonHeader(%d, %q) = %s: %s, want Reason: %s", c.code, c.text, h.Name(), h.Value(), c.want)
		}
	}
}
