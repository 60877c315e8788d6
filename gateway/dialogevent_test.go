package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge"
)

// sub is the subscriber side of one dialog-event subscription, kept by a
// test phone.
type sub struct {
	p      *phone
	callID string
	from   *sip.FromHeader
	to     *sip.ToHeader // with the gateway's tag once answered
	cseq   uint32
	next   sip.Uri // the gateway's Contact
}

// subscribe sends SUBSCRIBE for the dialog package to user at the
// gateway, answering the digest challenge; it returns the final response.
func (p *phone) subscribe(user string, expires int, extra ...sip.Header) (*sub, *sip.Response) {
	p.t.Helper()
	s := &sub{p: p, callID: sip.GenerateTagN(20), cseq: 1}
	s.from = &sip.FromHeader{Address: p.gwURI(p.user), Params: sip.NewParams()}
	s.from.Params.Add("tag", sip.GenerateTagN(8))
	s.to = &sip.ToHeader{Address: p.gwURI(user), Params: sip.NewParams()}
	req := s.request(p.gwURI(user), expires, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("SUBSCRIBE: %v", err)
	}
	if res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pw})
		if err != nil {
			p.t.Fatalf("SUBSCRIBE with credentials: %v", err)
		}
		s.cseq++
	}
	if res.StatusCode == 200 {
		tag, _ := res.To().Params.Get("tag")
		s.to.Params.Add("tag", tag)
		if c := res.Contact(); c != nil {
			s.next = c.Address
		}
	}
	return s, res
}

func (s *sub) request(uri sip.Uri, expires int, extra ...sip.Header) *sip.Request {
	req := sip.NewRequest(sip.SUBSCRIBE, uri)
	from, to := *s.from, *s.to
	from.Params, to.Params = s.from.Params.Clone(), s.to.Params.Clone()
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(s.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.SUBSCRIBE})
	h, port, _ := strings.Cut(s.p.addr, ":")
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s:%s>", s.p.user, h, port)))
	hasEvent := false
	for _, e := range extra {
		hasEvent = hasEvent || e.Name() == "Event"
		req.AppendHeader(e)
	}
	if !hasEvent {
		req.AppendHeader(sip.NewHeader("Event", "dialog"))
	}
	req.AppendHeader(sip.NewHeader("Accept", dialogInfoType))
	req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	return req
}

// again sends a SUBSCRIBE inside the subscription (refresh, or Expires: 0
// to end it).
func (s *sub) again(expires int) *sip.Response {
	s.p.t.Helper()
	s.cseq++
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := s.p.cli.Do(ctx, s.request(s.next, expires))
	if err != nil {
		s.p.t.Fatalf("in-dialog SUBSCRIBE: %v", err)
	}
	return res
}

// notified is one NOTIFY the phone got, parsed.
type notified struct {
	req  *sip.Request
	doc  *DialogInfo
	subs string // Subscription-State
}

func (p *phone) nextNotify() notified {
	p.t.Helper()
	select {
	case req := <-p.notifies:
		n := notified{req: req}
		if h := req.GetHeader("Subscription-State"); h != nil {
			n.subs = h.Value()
		}
		if ev := req.GetHeader("Event"); ev == nil || ev.Value() != "dialog" {
			p.t.Fatalf("NOTIFY Event %v, want dialog", ev)
		}
		if ct := req.ContentType(); ct == nil || ct.Value() != dialogInfoType {
			p.t.Fatalf("NOTIFY Content-Type %v, want %s", ct, dialogInfoType)
		}
		doc, err := ParseDialogInfo(req.Body())
		if err != nil {
			p.t.Fatalf("NOTIFY body: %v\n%s", err, req.Body())
		}
		n.doc = doc
		return n
	case <-time.After(wait):
		p.t.Fatal("no NOTIFY")
	}
	return notified{}
}

// inviteReplaces sends an INVITE with a Replaces header from the phone and
// returns its dialog and final status.
func (p *phone) inviteReplaces(l *leg, replaces string) (*sipgo.DialogClientSession, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dialogs := sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: "127.0.0.1", Port: p.port()}})
	dc, err := dialogs.Invite(ctx, p.gwURI("alice"), phoneSDP(p.t, l, "PCMU"),
		sip.NewHeader("Content-Type", "application/sdp"), sip.NewHeader("Replaces", replaces))
	if err != nil {
		p.t.Fatal(err)
	}
	err = dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: p.pw})
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		return dc, de.Res.StatusCode
	case err != nil:
		p.t.Fatalf("INVITE with Replaces: %v", err)
	}
	if err := dc.Ack(ctx); err != nil {
		p.t.Fatal(err)
	}
	return dc, dc.InviteResponse.StatusCode
}

// Issue 9 §1 role A by dialog event and Replaces: alice's desk phone
// subscribes to alice's dialogs, sees her laptop's call with bob appear in
// a NOTIFY, takes it with INVITE/Replaces built from the NOTIFY; bob's
// call goes on with the desk. The refusals come in RFC 3891's order, a
// Replaces for the dialog that just ended gets 481, another user's calls
// cannot be watched (403), and the subscription ends with a final NOTIFY
// on un-SUBSCRIBE and on expiry.
func TestDialogEventAndReplaces(t *testing.T) {
	t.Parallel()
	n, laptop, p := newAliceNet(t)
	ctx := context.Background()

	// Policy: alice's desk may not watch bob's calls.
	if _, res := p.subscribe("bob", 600); res.StatusCode != 403 {
		t.Fatalf("SUBSCRIBE to bob's dialogs: %d, want 403", res.StatusCode)
	}
	if _, res := p.subscribe("alice", 600, sip.NewHeader("Event", "presence")); res.StatusCode != 489 || res.GetHeader("Allow-Events") == nil {
		t.Fatalf("SUBSCRIBE to the presence package: %d, want 489 with Allow-Events", res.StatusCode)
	}
	if _, res := p.subscribe("alice", 0+0); res.StatusCode != 200 {
		t.Fatalf("fetch SUBSCRIBE (Expires: 0): %d", res.StatusCode)
	} else if f := p.nextNotify(); !strings.HasPrefix(f.subs, "terminated") {
		t.Fatalf("NOTIFY of a fetch: Subscription-State %q, want terminated", f.subs)
	}

	s, res := p.subscribe("alice", 600)
	if res.StatusCode != 200 || res.GetHeader("Expires") == nil || res.Contact() == nil {
		t.Fatalf("SUBSCRIBE: %v", res)
	}
	first := p.nextNotify()
	if !strings.HasPrefix(first.subs, "active;expires=") || first.doc.Version != 0 || first.doc.State != "full" ||
		first.doc.Entity == "" || len(first.doc.Dialogs) != 0 {
		t.Fatalf("first NOTIFY: %q %+v", first.subs, first.doc)
	}

	out, err := laptop.Dial(ctx, "bob/laptop")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop's call to be active", func() bool { c, _ := laptop.Call(out.ID); return c.State == "active" })
	up := p.nextNotify()
	if up.doc.Version != 1 || len(up.doc.Dialogs) != 1 {
		t.Fatalf("NOTIFY after the laptop's call: %+v", up.doc)
	}
	dl := up.doc.Dialogs[0]
	if dl.CallID != out.ID || dl.State.Value != "confirmed" || dl.LocalTag != dialogTag(out.ID, "alice/laptop") ||
		dl.RemoteTag != dialogTag(out.ID, "bob/laptop") || dl.Local == nil || !strings.Contains(dl.Local.Identity, "alice+laptop") {
		t.Fatalf("dialog %+v, want call %s confirmed with the derived tags", dl, out.ID)
	}
	replaces := Replaces{CallID: dl.CallID, ToTag: dl.LocalTag, FromTag: dl.RemoteTag}

	l, stop := p.rtpLeg(660)
	defer stop()
	// bob's desk phone knows alice's dialog (as published): the policy
	// refuses it, after the match (RFC 3891 §3 order).
	bp := newPhone(t, n.gw.Addr("udp"), "bobdesk", "bob-desk-secret")
	if res := bp.register(600); res.StatusCode != 200 {
		t.Fatalf("bob's desk REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob/desk online", func() bool { return online(n.bob, "bob/desk") })
	if _, code := bp.inviteReplaces(l, replaces.String()); code != 403 {
		t.Fatalf("Replaces of alice's dialog from bob's desk: %d, want 403", code)
	}
	if _, code := bp.inviteReplaces(l, Replaces{CallID: dl.CallID, ToTag: "x", FromTag: dl.RemoteTag}.String()); code != 481 {
		t.Fatalf("Replaces of no dialog from bob's desk: %d, want 481", code)
	}
	for _, c := range []struct {
		name string
		r    Replaces
		want int
	}{
		{"wrong to-tag", Replaces{CallID: dl.CallID, ToTag: "nope", FromTag: dl.RemoteTag}, 481},
		{"swapped tags", Replaces{CallID: dl.CallID, ToTag: dl.RemoteTag, FromTag: dl.LocalTag}, 481},
		{"unknown call", Replaces{CallID: "c-0000000000000000", ToTag: dl.LocalTag, FromTag: dl.RemoteTag}, 481},
		{"early-only", Replaces{CallID: dl.CallID, ToTag: dl.LocalTag, FromTag: dl.RemoteTag, EarlyOnly: true}, 486},
	} {
		if _, code := p.inviteReplaces(l, c.r.String()); code != c.want {
			t.Fatalf("Replaces %s: %d, want %d", c.name, code, c.want)
		}
	}
	if c, _ := laptop.Call(out.ID); c.State != "active" {
		t.Fatalf("the laptop's call after refused Replaces: %s", c.State)
	}

	n.bobHeard.reset()
	dc, code := p.inviteReplaces(l, replaces.String())
	if code != 200 {
		t.Fatalf("INVITE with Replaces: %d", code)
	}
	p.useAnswer(l, dc.InviteResponse.Body())
	eventually(t, "the laptop's call to be handed off", func() bool { c, _ := laptop.Call(out.ID); return c.State == "ended" })
	var bobs endpoint.CallInfo
	for _, c := range n.bob.Calls() {
		if c.ID == out.ID {
			bobs = c
		}
	}
	if bobs.State != "active" || bobs.Peer != "alice/desk" {
		t.Fatalf("bob's call after the Replaces: %+v, want active with alice/desk", bobs)
	}
	eventually(t, "bob to hear the desk for a while", func() bool { return len(n.bobHeard.samples()) >= 16000 })
	if f := dominant(t, n.bobHeard.samples()); f != 660 {
		t.Errorf("bob heard %v Hz after the Replaces, want the desk's 660", f)
	}
	gone := p.nextNotify()
	if len(gone.doc.Dialogs) != 1 || gone.doc.Dialogs[0].CallID != out.ID || gone.doc.Dialogs[0].State.Value != "terminated" {
		t.Fatalf("NOTIFY after the handoff: %+v, want the laptop's dialog terminated", gone.doc)
	}
	// The laptop's dialog is over: the same Replaces again matches nothing.
	if _, code := p.inviteReplaces(l, replaces.String()); code != 481 {
		t.Fatalf("Replaces for the dialog that just ended: %d, want 481", code)
	}

	if res := s.again(600); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	if r := p.nextNotify(); !strings.HasPrefix(r.subs, "active") || len(r.doc.Dialogs) != 0 {
		t.Fatalf("NOTIFY after a refresh: %q %+v", r.subs, r.doc)
	}
	if res := s.again(0); res.StatusCode != 200 {
		t.Fatalf("un-SUBSCRIBE: %d", res.StatusCode)
	}
	if last := p.nextNotify(); last.subs != "terminated;reason=timeout" {
		t.Fatalf("final NOTIFY: Subscription-State %q", last.subs)
	}
	if res := s.again(600); res.StatusCode != 481 {
		t.Fatalf("SUBSCRIBE in an ended subscription: %d, want 481", res.StatusCode)
	}

	// Expiry: a 1 s subscription ends by itself with a final NOTIFY.
	if _, res := p.subscribe("alice", 1); res.StatusCode != 200 {
		t.Fatalf("short SUBSCRIBE: %d", res.StatusCode)
	}
	if a := p.nextNotify(); !strings.HasPrefix(a.subs, "active") {
		t.Fatalf("first NOTIFY of a short subscription: %q", a.subs)
	}
	if e := p.nextNotify(); e.subs != "terminated;reason=timeout" {
		t.Fatalf("NOTIFY at expiry: %q", e.subs)
	}
	eventually(t, "no subscription left", func() bool { return n.gw.dialogs.count() == 0 })
	_ = dc.Bye(ctx)
}

// newAliceNet is the test net with alice's laptop softphone (a 1000 Hz
// tone) beside her registered desk phone.
func newAliceNet(t *testing.T) (*testNet, *endpoint.Endpoint, *phone) {
	t.Helper()
	n := newTestNet(t, true, func(c *Config) {
		c.MinExpires = time.Second
		// bob's own desk phone, to try alice's calls from another user.
		c.Accounts = append(c.Accounts, Account{SIPUser: "bobdesk", HA1: sipbridge.HA1("bobdesk", "baton.test", "bob-desk-secret"),
			User: "bob", Device: "desk", Password: "bob-p2p-secret"})
		// alice's second SIP phone, for two phones taking one call.
		c.Accounts = append(c.Accounts, Account{SIPUser: "alice2", HA1: sipbridge.HA1("alice2", "baton.test", "desk2-secret"),
			User: "alice", Device: "desk2", Password: "alice-p2p-secret"})
	})
	laptop, err := endpoint.New(endpoint.Config{
		Access: n.gw.cfg.Access, Roots: n.gw.cfg.Roots, User: "alice", Device: "laptop", Password: "alice-p2p-secret",
		SRTP: true, Codecs: codecs.DefaultRegistry(), AddrWatch: -1,
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
	return n, laptop, p
}

// Issue 9 §3, the desk phone hangs up mid-pull. The gateway answers an
// INVITE with Replaces before it pulls (docs/transfers.md, "Answered
// before the pull"), so the phone's way out is BYE. A BYE before the pull
// began (the phone sent no audio yet) starts none; a BYE while A's pull
// runs stops it: the handoff fails or rolls back, the laptop keeps the
// call with bob, and the same Replaces takes it afterwards. (No
// subscription: the tags are derived from the call.)
func TestReplacesHangUpMidPull(t *testing.T) {
	t.Parallel()
	n, laptop, p := newAliceNet(t)
	ctx := context.Background()
	out, err := laptop.Dial(ctx, "bob/laptop")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop's call to be active", func() bool { c, _ := laptop.Call(out.ID); return c.State == "active" })
	r := Replaces{CallID: out.ID, ToTag: dialogTag(out.ID, "alice/laptop"), FromTag: dialogTag(out.ID, "bob/laptop")}
	l, stop := p.rtpLeg(660)
	defer stop()
	stillBobs := func(when string) {
		t.Helper()
		if c, _ := laptop.Call(out.ID); c.State != "active" {
			t.Fatalf("the laptop's call after the desk hung up %s: %s (%s)", when, c.State, c.EndReason)
		}
		for _, c := range n.bob.Calls() {
			if c.ID == out.ID && (c.State != "active" || c.Peer != "alice/laptop") {
				t.Fatalf("bob's call after the desk hung up %s: %+v", when, c)
			}
		}
	}

	// Answered, then BYE at once: the phone sent no audio, the pull had
	// not begun, and none begins.
	dc, code := p.inviteReplaces(l, r.String())
	if code != 200 {
		t.Fatalf("INVITE with Replaces: %d, want 200 before the pull", code)
	}
	if err := dc.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	a := n.gw.devices["alice"].endpoint() // up: the INVITE waited for it
	eventually(t, "the gateway to forget the hung-up INVITE", func() bool { return len(n.gw.Calls()) == 0 })
	time.Sleep(pickupAudioWait + 100*time.Millisecond)
	if hs := a.Handoffs(); len(hs) != 0 {
		t.Fatalf("a pull began after the phone hung up before it: %+v", hs)
	}
	stillBobs("before the pull began")

	// Answered, the phone's audio flows, A's pull begins: BYE.
	dc, code = p.inviteReplaces(l, r.String())
	if code != 200 {
		t.Fatalf("INVITE with Replaces: %d, want 200 before the pull", code)
	}
	p.useAnswer(l, dc.InviteResponse.Body())
	deadline := time.Now().Add(wait)
	for running := false; !running; {
		for _, h := range a.Handoffs() {
			running = running || h.State == "running"
		}
		if !running && time.Now().After(deadline) {
			t.Fatal("A's pull did not begin")
		}
		time.Sleep(time.Millisecond)
	}
	if err := dc.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	// Hung up before B muted (the pull fails) or after (it rolls back):
	// either way it is over and did not commit.
	eventually(t, "the pull to be over", func() bool {
		hs := a.Handoffs()
		for _, h := range hs {
			if h.State == "running" {
				return false
			}
		}
		return len(hs) > 0
	})
	for _, h := range a.Handoffs() {
		t.Logf("handoff %s: %s %s", h.ID, h.State, h.Error)
		if h.State == "done" {
			t.Fatalf("the pull committed although the phone hung up")
		}
	}
	time.Sleep(500 * time.Millisecond)
	stillBobs("mid-pull")
	eventually(t, "the gateway to forget the hung-up call", func() bool { return len(n.gw.Calls()) == 0 })
	// The call can still be taken.
	dc2, code := p.inviteReplaces(l, r.String())
	if code != 200 {
		t.Fatalf("Replaces after the hung-up ones: %d", code)
	}
	eventually(t, "the laptop's call to be handed off", func() bool { c, _ := laptop.Call(out.ID); return c.State == "ended" })
	_ = dc2.Bye(ctx)
}

// A gateway that stops ends its subscriptions with a final NOTIFY
// (RFC 6665 §4.2.2), so the phones do not wait for their next refresh.
func TestDialogSubscriptionEndsAtShutdown(t *testing.T) {
	t.Parallel()
	n, _, p := newAliceNet(t)
	if _, res := p.subscribe("alice", 600); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	if f := p.nextNotify(); !strings.HasPrefix(f.subs, "active") {
		t.Fatalf("first NOTIFY: %q", f.subs)
	}
	// Each subscription polls alice's devices: at most four per phone.
	for i := 1; i < maxSubsPerDevice; i++ {
		if _, res := p.subscribe("alice", 600); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE %d: %d", i+1, res.StatusCode)
		}
		p.nextNotify()
	}
	if _, res := p.subscribe("alice", 600); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("SUBSCRIBE %d: %d, want 503 with Retry-After", maxSubsPerDevice+1, res.StatusCode)
	}
	if err := n.gw.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxSubsPerDevice; i++ {
		if last := p.nextNotify(); last.subs != "terminated;reason=noresource" {
			t.Fatalf("NOTIFY at shutdown: Subscription-State %q", last.subs)
		}
	}
	if c := n.gw.dialogs.count(); c != 0 {
		t.Fatalf("%d subscriptions left after Close", c)
	}
}

// Issue 9 §3, two devices pulling the same call at once: alice's two desk
// phones send the same Replaces together. Both are answered (the gateway
// answers before it pulls, docs/transfers.md); exactly one gets the call,
// the other a BYE whose Reason (RFC 3326) is the 481 it would have got
// before the answer (the dialog it named is gone: the winner took it),
// and bob's call goes on with the winner.
func TestReplacesTwoPhonesAtOnce(t *testing.T) {
	t.Parallel()
	n, laptop, p := newAliceNet(t)
	p2 := newPhone(t, n.gw.Addr("udp"), "alice2", "desk2-secret")
	if res := p2.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER alice2: %d", res.StatusCode)
	}
	eventually(t, "the laptop to see alice/desk2 online", func() bool { return online(laptop, "alice/desk2") })
	ctx := context.Background()
	out, err := laptop.Dial(ctx, "bob/laptop")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the laptop's call to be active", func() bool { c, _ := laptop.Call(out.ID); return c.State == "active" })
	r := Replaces{CallID: out.ID, ToTag: dialogTag(out.ID, "alice/laptop"), FromTag: dialogTag(out.ID, "bob/laptop")}.String()
	l1, stop1 := p.rtpLeg(660)
	defer stop1()
	l2, stop2 := p2.rtpLeg(550)
	defer stop2()
	type result struct {
		who  string
		p    *phone
		dc   *sipgo.DialogClientSession
		code int
	}
	results := make(chan result, 2)
	start := make(chan struct{})
	for _, c := range []struct {
		who string
		p   *phone
		l   *leg
	}{{"alice/desk", p, l1}, {"alice/desk2", p2, l2}} {
		go func() {
			<-start
			dc, code := c.p.inviteReplaces(c.l, r)
			results <- result{c.who, c.p, dc, code}
		}()
	}
	close(start)
	a, b := <-results, <-results
	t.Logf("%s: %d, %s: %d", a.who, a.code, b.who, b.code)
	if a.code != 200 || b.code != 200 {
		t.Fatalf("two phones taking one call: %s got %d and %s got %d, want both answered before the pull", a.who, a.code, b.who, b.code)
	}
	var lose result
	var bye *sip.Request
	select {
	case bye = <-a.p.byes:
		lose = a
	case bye = <-b.p.byes:
		lose = b
	case <-time.After(wait):
		t.Fatal("neither phone got a BYE: want exactly one to lose the call")
	}
	win := a
	if lose.who == a.who {
		win = b
	}
	// The winner's call is a new dialog: the loser's Replaces named one
	// that no longer exists.
	if h := bye.GetHeader("Reason"); h == nil || !strings.HasPrefix(h.Value(), "SIP ;cause=481 ") {
		t.Fatalf("the losing phone's BYE has Reason %v, want SIP ;cause=481", h)
	}
	if bye.CallID().Value() != lose.dc.InviteRequest.CallID().Value() {
		t.Fatalf("the BYE is for call %s, want the loser's %s", bye.CallID().Value(), lose.dc.InviteRequest.CallID().Value())
	}
	select {
	case extra := <-win.p.byes:
		t.Fatalf("the winning phone got a BYE too: %v", extra.GetHeader("Reason"))
	case <-time.After(200 * time.Millisecond):
	}
	eventually(t, "bob's call to go on with "+win.who, func() bool {
		for _, c := range n.bob.Calls() {
			if c.ID == out.ID {
				return c.State == "active" && c.Peer == win.who
			}
		}
		return false
	})
	_ = win.dc.Bye(ctx)
}
