package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/sdp"
)

const wait = 10 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BATON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// net is an access server with users alice (a SIP desk phone through the
// gateway) and bob (a P2P softphone), buddies; and the gateway.
type testNet struct {
	srv *access.Server
	gw  *Gateway
	bob *endpoint.Endpoint
	// bobHeard records what bob's softphone heard.
	bobHeard *pcmSink
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTestNet(t *testing.T, autoAnswer bool, opts ...func(*Config)) *testNet {
	t.Helper()
	ctx := context.Background()
	srv, err := access.NewServer(ctx, access.Config{DataDir: t.TempDir(), ServerNames: []string{"127.0.0.1"}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(sctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Users().AddUser(ctx, u, u+"-p2p-secret"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Users().AddBuddy(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Access: ln.Addr().String(), Roots: srv.CA().Pool(),
		UDP: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1"), SRTP: true, Realm: "baton.test",
		Accounts: []Account{{SIPUser: "alice", HA1: sipbridge.HA1("alice", "baton.test", "desk-secret"), User: "alice", Device: "desk", Password: "alice-p2p-secret"}},
		Logger:   testLogger(t).With("part", "gateway"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	heard := &pcmSink{}
	bob, err := endpoint.New(endpoint.Config{
		Access: ln.Addr().String(), Roots: srv.CA().Pool(), User: "bob", Device: "laptop", Password: "bob-p2p-secret",
		SRTP: true, Codecs: codecs.DefaultRegistry(), AutoAnswer: autoAnswer, AddrWatch: -1,
		NewSource: func(string) (audio.Source, error) { return audio.NewTone(440, 8000, 0.3) },
		NewSink:   func(string, string) (audio.Sink, error) { return heard, nil },
		Logger:    testLogger(t).With("ep", "bob/laptop"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bob.Close() })
	return &testNet{srv: srv, gw: gw, bob: bob, bobHeard: heard}
}

type pcmSink struct {
	mu  sync.Mutex
	pcm []int16
}

func (s *pcmSink) WriteFrame(pcm []int16) error {
	s.mu.Lock()
	s.pcm = append(s.pcm, pcm...)
	s.mu.Unlock()
	return nil
}

func (s *pcmSink) samples() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int16(nil), s.pcm...)
}

func (s *pcmSink) reset() {
	s.mu.Lock()
	s.pcm = nil
	s.mu.Unlock()
}

// phone is a SIP user agent written with sipgo: it registers with digest,
// calls and answers, and plays a tone over plain RTP (a leg of its own).
type phone struct {
	t       *testing.T
	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	srv     *sipgo.Server
	addr    string // its SIP UDP address
	user    string
	pw      string
	gw      string
	dialogs *sipgo.DialogServerCache
	heard   *pcmSink
	invites chan *sipgo.DialogServerSession
	// notifies gets every NOTIFY the phone receives (it answers 200).
	notifies chan *sip.Request
	answer   int // status it answers INVITEs with (200)
	srvPort  int
	// byes gets every BYE the phone receives in a dialog it made (its
	// INVITE's; it answers 200): an answered pickup whose pull failed.
	byes chan *sip.Request
}

func newPhone(t *testing.T, gwAddr, user, pw string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(addr.Port))
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{t: t, ua: ua, cli: cli, srv: srv, addr: addr.String(), user: user, pw: pw, gw: gwAddr,
		heard: &pcmSink{}, invites: make(chan *sipgo.DialogServerSession, 4), notifies: make(chan *sip.Request, 32), answer: 200, srvPort: addr.Port,
		byes: make(chan *sip.Request, 8)}
	p.dialogs = sipgo.NewDialogServerCache(cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: addr.Port}})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		ds, err := p.dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		p.invites <- ds
		<-ds.Context().Done()
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		select {
		case p.notifies <- req:
		default:
		}
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.dialogs.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.dialogs.ReadBye(req, tx); err == nil {
			return
		}
		// Not a dialog the gateway's INVITE made: one of the phone's own.
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		select {
		case p.byes <- req:
		default:
		}
	})
	go func() { _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() { _ = srv.Close(); _ = ua.Close() })
	return p
}

func (p *phone) port() int {
	return p.srvPort
}

func (p *phone) gwURI(user string) sip.Uri {
	h, port, _ := net.SplitHostPort(p.gw)
	var n int
	fmt.Sscan(port, &n)
	return sip.Uri{Scheme: "sip", User: user, Host: h, Port: n}
}

// register sends REGISTER (answering the digest challenge) and returns the
// final response.
func (p *phone) register(expires int) *sip.Response {
	p.t.Helper()
	req := sip.NewRequest(sip.REGISTER, p.gwURI(""))
	req.Recipient.User = ""
	req.AppendHeader(&sip.ToHeader{Address: p.gwURI(p.user)})
	from := &sip.FromHeader{Address: p.gwURI(p.user), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	h, port, _ := net.SplitHostPort(p.addr)
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@%s:%s>", p.user, h, port)))
	req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("REGISTER: %v", err)
	}
	if res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pw})
		if err != nil {
			p.t.Fatalf("REGISTER with credentials: %v", err)
		}
	}
	return res
}

// rtpLeg opens the phone's own RTP socket playing a tone.
func (p *phone) rtpLeg(hz float64) (*leg, func()) {
	p.t.Helper()
	l, err := openLeg(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		p.t.Fatal(err)
	}
	tone, err := audio.NewTone(hz, 8000, 0.3)
	if err != nil {
		p.t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]int16, 160)
		in := make([]int16, 160)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = tone.ReadFrame(frame)
				_ = l.WriteFrame(frame)
				_ = l.ReadFrame(in)
				_ = p.heard.WriteFrame(in)
			}
		}
	}()
	return l, func() { close(stop); <-done; _ = l.Close() }
}

func phoneSDP(t *testing.T, l *leg, codecs ...string) []byte {
	t.Helper()
	body, _, err := sdp.NewSession(42).Offer(sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: int(l.LocalAddr().Port()), Codecs: codecs, PTime: 20})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (p *phone) useAnswer(l *leg, body []byte) {
	p.t.Helper()
	o, err := sdp.ParseOffer(body)
	if err != nil {
		p.t.Fatalf("gateway SDP: %v\n%s", err, body)
	}
	c, ok := firstCodec(o)
	if !ok {
		p.t.Fatalf("gateway SDP has no codec:\n%s", body)
	}
	codec, _ := codecs.DefaultRegistry().Lookup(strings.ToUpper(c.Name))
	l.setRemote(codec, c.PT, -1, netip.AddrPortFrom(o.Addr, uint16(o.Port)), netip.Addr{}, true)
}

func dominant(t *testing.T, pcm []int16) float64 {
	t.Helper()
	if len(pcm) < 8000 {
		t.Fatalf("only %d samples heard", len(pcm))
	}
	return audio.DominantFrequency(pcm[len(pcm)-6000:], 8000, []float64{440, 660, 1000})
}

func TestRegisterDigest(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, true)
	gw := n.gw.Addr("udp")

	// Wrong password and unknown user: the same 401 with a fresh
	// challenge, nothing registered.
	for _, c := range []struct{ user, pw string }{{"alice", "wrong"}, {"nobody", "desk-secret"}} {
		if res := newPhone(t, gw, c.user, c.pw).register(600); res.StatusCode != 401 || res.GetHeader("WWW-Authenticate") == nil {
			t.Fatalf("%s/%s: %d, want 401 with a challenge", c.user, c.pw, res.StatusCode)
		}
	}
	if _, ok := n.gw.Device("alice"); ok {
		t.Fatal("alice/desk online after failed registrations")
	}
	p := newPhone(t, gw, "alice", "desk-secret")
	if res := p.register(10); res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil {
		t.Fatalf("10 s registration: %d, want 423 Interval Too Brief with Min-Expires", res.StatusCode)
	}
	res := p.register(600)
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if c := res.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "expires=") {
		t.Fatalf("200 to REGISTER lists no contact with expires: %v", res)
	}
	// Registered: alice/desk comes online in presence, bob sees it.
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	regs := n.gw.Registrations()
	if len(regs) != 1 || !regs[0].Online || regs[0].Device != "alice/desk" {
		t.Fatalf("registrations %+v", regs)
	}
	// Un-REGISTER: offline again.
	if res := p.register(0); res.StatusCode != 200 {
		t.Fatalf("un-REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk offline", func() bool { return !online(n.bob, "alice/desk") })

	// OPTIONS is answered without authentication.
	opt := sip.NewRequest(sip.OPTIONS, p.gwURI(""))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ores, err := p.cli.Do(ctx, opt)
	if err != nil || ores.StatusCode != 200 || ores.GetHeader("Allow") == nil {
		t.Fatalf("OPTIONS: %v %v", ores, err)
	}
}

func online(ep *endpoint.Endpoint, id string) bool {
	for _, b := range ep.Buddies() {
		for _, d := range b.Devices {
			if b.User+"/"+d.Device == id && d.Status == "online" {
				return true
			}
		}
	}
	return false
}

// A SIP phone calls a P2P softphone through the gateway; each hears the
// other's tone; the phone hangs up with BYE.
func TestSIPPhoneCallsSoftphone(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, true)
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	l, stop := p.rtpLeg(660)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dialogs := sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: p.port()}})
	dc, err := dialogs.Invite(ctx, p.gwURI("bob+laptop"), phoneSDP(t, l, "PCMA", "PCMU"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	err = dc.WaitAnswer(ctx, sipgo.AnswerOptions{Username: "alice", Password: "desk-secret",
		OnResponse: func(r *sip.Response) error { statuses = append(statuses, r.StatusCode); return nil }})
	if err != nil {
		t.Fatalf("INVITE: %v (responses %v)", err, statuses)
	}
	if statuses[0] != 407 {
		t.Errorf("first answer to an INVITE %v, want 407 (authenticate first)", statuses)
	}
	if err := dc.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	p.useAnswer(l, dc.InviteResponse.Body())
	if o, _ := sdp.ParseOffer(dc.InviteResponse.Body()); o == nil || len(o.Codecs) == 0 || o.Codecs[0].Name != "PCMU" {
		t.Errorf("gateway answered %s, want its own preference PCMU from the offer", dc.InviteResponse.Body())
	}
	eventually(t, "a second of audio at both ends", func() bool {
		return len(p.heard.samples()) >= 16000 && len(n.bobHeard.samples()) >= 16000
	})
	if f := dominant(t, n.bobHeard.samples()); f != 660 {
		t.Errorf("the softphone heard %v Hz, want the desk phone's 660", f)
	}
	if f := dominant(t, p.heard.samples()); f != 440 {
		t.Errorf("the desk phone heard %v Hz, want the softphone's 440", f)
	}
	calls := n.gw.Calls()
	if len(calls) != 1 || calls[0].State != "active" || calls[0].Peer != "bob/laptop" || calls[0].SIPLeg.Received == 0 || calls[0].P2PLeg == nil {
		t.Fatalf("gateway calls %+v", calls)
	}
	if err := dc.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the P2P call to end at bob", func() bool {
		for _, c := range n.bob.Calls() {
			if c.State != "ended" {
				return false
			}
		}
		return true
	})
	eventually(t, "the gateway to forget the call", func() bool { return len(n.gw.Calls()) == 0 })
}

// A P2P softphone calls the desk phone; it rings every registered contact,
// the phone answers, audio flows, bob hangs up and the phone gets BYE.
func TestSoftphoneCallsSIPPhone(t *testing.T) {
	t.Parallel()
	n := newTestNet(t, false)
	p := newPhone(t, n.gw.Addr("udp"), "alice", "desk-secret")
	if res := p.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	eventually(t, "bob to see alice/desk online", func() bool { return online(n.bob, "alice/desk") })
	l, stop := p.rtpLeg(660)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	var ds *sipgo.DialogServerSession
	select {
	case ds = <-p.invites:
	case <-ctx.Done():
		t.Fatal("the desk phone got no INVITE")
	}
	if from := ds.InviteRequest.From(); from == nil || from.Address.User != "bob+laptop" {
		t.Errorf("INVITE From %v, want the caller bob+laptop", from)
	}
	_ = ds.Respond(180, "Ringing", nil)
	eventually(t, "bob's call to ring", func() bool { c, _ := n.bob.Call(out.ID); return c.State == "ringing" })
	o, err := sdp.ParseOffer(ds.InviteRequest.Body())
	if err != nil {
		t.Fatal(err)
	}
	body, chosen, err := sdp.NewSession(7).Answer(o, sdp.Local{Addr: netip.MustParseAddr("127.0.0.1"), Port: int(l.LocalAddr().Port()), Codecs: []string{"PCMA"}})
	if err != nil {
		t.Fatal(err)
	}
	// The phone sends to the gateway's offered address, in the codec it
	// chose.
	pcma := codecs.PCMA()
	l.setRemote(pcma, chosen.Codecs[0].PT, -1, netip.AddrPortFrom(o.Addr, uint16(o.Port)), netip.Addr{}, true)
	go func() { _ = ds.RespondSDP(body) }()
	eventually(t, "bob's call to be active", func() bool { c, _ := n.bob.Call(out.ID); return c.State == "active" })
	eventually(t, "a second of audio at both ends", func() bool {
		return len(p.heard.samples()) >= 16000 && len(n.bobHeard.samples()) >= 16000
	})
	if f := dominant(t, n.bobHeard.samples()); f != 660 {
		t.Errorf("the softphone heard %v Hz, want the desk phone's 660", f)
	}
	if f := dominant(t, p.heard.samples()); f != 440 {
		t.Errorf("the desk phone heard %v Hz, want the softphone's 440", f)
	}
	if c := n.gw.Calls(); len(c) != 1 || c[0].Codec != "PCMA" {
		t.Errorf("gateway calls %+v, want one PCMA call", c)
	}
	if err := n.bob.Hangup(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ds.Context().Done():
	case <-ctx.Done():
		t.Fatal("the desk phone got no BYE")
	}

	// Busy: the phone answers 486, bob's call ends busy.
	out2, err := n.bob.Dial(ctx, "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ds = <-p.invites:
	case <-ctx.Done():
		t.Fatal("the desk phone got no second INVITE")
	}
	_ = ds.Respond(486, "Busy Here", nil)
	var ended endpoint.CallInfo
	eventually(t, "bob's second call to end", func() bool { ended, _ = n.bob.Call(out2.ID); return ended.State == "ended" })
	if ended.Result != "busy" {
		t.Errorf("after 486 bob's call ended %q (%s), want busy", ended.Result, ended.EndReason)
	}
}
