package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/gateway"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/endpoint"
	"github.com/baton-voice/baton/sipbridge"
	"github.com/baton-voice/baton/sipbridge/simphone"
)

// The SIP part of the demo (issue 8 §6): a gateway in this process with a
// built-in SIP desk phone and a simulated PSTN trunk, on real loopback
// sockets. A PSTN caller dials demoNumber, which the trunk routes to
// bob/laptop (a P2P softphone); then bob/laptop calls carol's desk phone.
// Then the story of issue 9 §5 (runStory): a PSTN caller dials
// demoStoryNumber, which rings alice's SIP desk phone (alice/sipdesk);
// alice's softphone pulls the call, pushes it back, and the desk phone
// blind-transfers it to bob with REFER.
const (
	demoNumber      = "+15550100"
	demoStoryNumber = "+15550200"
	demoCallerID    = "+15557777"
	demoTrunkIP     = "127.0.0.9" // the provider's SBC; the trunk allows only it
	demoRealm       = "baton"
	demoDeskSIPPwd  = "carol-desk-sip"
	demoAliceSIPPwd = "alice-desk-sip"
)

// demoCheck is one line of the report's checks.
type demoCheck struct {
	ok     bool
	target bool // a speed target (reported only when check_targets is off)
	text   string
}

// demoSIP is what the SIP part leaves for the report.
type demoSIP struct {
	checks []demoCheck
	media  []string // one line per leg
	story  []string // the story's moves: what the caller heard, the ladders
}

func runDemoSIP(ctx context.Context, dir string, cfg config.Demo, srv *access.Server, accessAddr string, passwords map[string]string,
	log *slog.Logger, tl *timeline, watchers *sync.WaitGroup) (*demoSIP, error) {
	bobPw := passwords["bob"]
	res := &demoSIP{}
	// sipgo logs some transport events to its package logger: into the
	// demo's log file with the rest, not onto the report.
	sip.SetDefaultLogger(log.With("part", "sipgo"))
	check := func(ok bool, format string, args ...any) {
		res.checks = append(res.checks, demoCheck{ok: ok, text: fmt.Sprintf(format, args...)})
	}
	users := srv.Users()
	pw := map[string]string{"carol": randomPassword(), "pstn": randomPassword()}
	for _, u := range []string{"carol", "pstn"} {
		if err := users.AddUser(ctx, u, pw[u]); err != nil && !errors.Is(err, access.ErrUserExists) {
			return nil, err
		}
		if err := users.SetPassword(ctx, u, pw[u]); err != nil {
			return nil, err
		}
		if err := users.AddBuddy(ctx, "bob", u); err != nil && !errors.Is(err, access.ErrBuddyExists) {
			return nil, err
		}
	}
	if err := users.AddBuddy(ctx, "alice", "pstn"); err != nil && !errors.Is(err, access.ErrBuddyExists) {
		return nil, err
	}
	tl.add("access", endpoint.Event{Time: time.Now(), Type: "access.users", Detail: "carol (a SIP desk phone) and pstn (a trunk) are bob's buddies"})

	// The gateway: carol's SIP account is carol/desk; the trunk's callers
	// appear as pstn/trunk1, and the number routes to bob/laptop.
	gw, err := gateway.New(gateway.Config{
		Access: accessAddr, Roots: srv.CA().Pool(),
		UDP: "127.0.0.1:0", Realm: demoRealm,
		MediaIP: netip.MustParseAddr("127.0.0.1"), SRTP: true, Codecs: codecs.DefaultRegistry(),
		Accounts: []gateway.Account{
			{SIPUser: "carol", HA1: sipbridge.HA1("carol", demoRealm, demoDeskSIPPwd), User: "carol", Device: "desk", Password: pw["carol"]},
			// alice's SIP desk phone; alice/desk is her P2P desk endpoint
			// of the first part.
			{SIPUser: "alice", HA1: sipbridge.HA1("alice", demoRealm, demoAliceSIPPwd), User: "alice", Device: "sipdesk", Password: passwords["alice"]},
		},
		Trunks: []gateway.Trunk{{Name: "pstn", User: "pstn", Device: "trunk1", Password: pw["pstn"],
			Allow:   []netip.Prefix{netip.MustParsePrefix(demoTrunkIP + "/32")},
			Numbers: map[string]string{demoNumber: "bob/laptop", demoStoryNumber: "alice/sipdesk"}}},
		Logger: log.With("part", "gateway"),
	})
	if err != nil {
		return nil, err
	}
	if err := gw.Start(ctx); err != nil {
		return nil, err
	}
	defer gw.Close()
	tl.add("gateway", endpoint.Event{Time: time.Now(), Type: "gateway.listening", Detail: "sip udp " + gw.Addr("udp")})

	// bob/laptop: a P2P softphone that answers at once, recording each
	// call to its own file named after the far party.
	laptopRec := func(peer string) string {
		return filepath.Join(dir, "bob-laptop-with-"+strings.ReplaceAll(peer, "/", "-")+".wav")
	}
	src, err := sourceFactory(cfg.Tone.Caller, "")
	if err != nil {
		return nil, err
	}
	laptop, err := endpoint.New(endpoint.Config{
		Access: accessAddr, Roots: srv.CA().Pool(), User: "bob", Device: "laptop", Password: bobPw,
		SRTP: true, MediaIP: netip.MustParseAddr("127.0.0.1"), Codecs: codecs.DefaultRegistry(),
		AutoAnswer: true, NewSource: src,
		NewSink: func(_, peer string) (audio.Sink, error) {
			path := laptopRec(peer)
			return &lazyRecording{open: func() (*audio.WAVWriter, error) { return audio.CreateWAV(path, sampleRate) }}, nil
		},
		Logger: log.With("part", "bob/laptop"),
	})
	if err != nil {
		return nil, err
	}
	events := make(chan endpoint.Event, 256)
	evs, unsubscribe := laptop.Subscribe()
	defer unsubscribe()
	tl.watch("bob/laptop", evs, events, watchers)
	if err := laptop.Start(ctx); err != nil {
		return nil, err
	}
	defer laptop.Close()

	// The built-in desk phone registers with digest; the gateway logs
	// carol/desk in while the registration lives.
	desk, err := simphone.Start(simphone.Config{User: "carol", Password: demoDeskSIPPwd, Gateway: gw.Addr("udp"),
		IP: netip.MustParseAddr("127.0.0.1"), Tone: float64(cfg.Tone.DeskPhone), AutoAnswer: true, Logger: log.With("part", "desk phone")})
	if err != nil {
		return nil, err
	}
	defer desk.Close()
	if err := desk.Register(ctx, 10*time.Minute); err != nil {
		return nil, err
	}
	tl.add("carol desk phone", endpoint.Event{Time: time.Now(), Type: "sip.registered", Detail: "REGISTER with digest: 200"})
	if err := waitDevice(ctx, laptop, "carol", "desk", 10*time.Second); err != nil {
		return nil, err
	}
	if err := waitDevice(ctx, laptop, "pstn", "trunk1", 10*time.Second); err != nil {
		return nil, err
	}

	// 1. A PSTN caller dials the number; the trunk routes it to
	// bob/laptop, which answers.
	sbc, err := simphone.Start(simphone.Config{User: demoCallerID, Gateway: gw.Addr("udp"),
		IP: netip.MustParseAddr(demoTrunkIP), Tone: float64(cfg.Tone.PSTN), Logger: log.With("part", "pstn")})
	if err != nil {
		return nil, fmt.Errorf("the simulated trunk on %s: %w", demoTrunkIP, err)
	}
	defer sbc.Close()
	callCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	pstnCall, err := sbc.Call(callCtx, demoNumber)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("the PSTN call to %s: %w", demoNumber, err)
	}
	tl.add("pstn "+demoCallerID, endpoint.Event{Time: time.Now(), Type: "sip.answered", Detail: "INVITE sip:" + demoNumber + ": 200"})
	active, err := waitFor(ctx, events, "the PSTN call to be active at bob/laptop", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.active" })
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, cfg.Duration/2); err != nil {
		return nil, err
	}
	if err := pstnCall.Hangup(ctx); err != nil {
		return nil, fmt.Errorf("the PSTN caller's BYE: %w", err)
	}
	if _, err := waitFor(ctx, events, "the PSTN call to end at bob/laptop", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.ended" }); err != nil {
		return nil, err
	}
	<-pstnCall.Ended()
	fromPSTN, _ := laptop.Call(active.CallID)

	// 2. bob/laptop calls carol's desk phone; the gateway rings it and
	// the phone answers.
	toDesk, err := laptop.Dial(ctx, "carol/desk")
	if err != nil {
		return nil, fmt.Errorf("bob/laptop calling carol/desk: %w", err)
	}
	if _, err := waitFor(ctx, events, "the call to carol's desk phone to be active", 10*time.Second, func(ev endpoint.Event) bool {
		return ev.Type == "call.active" && ev.CallID == toDesk.ID
	}); err != nil {
		return nil, err
	}
	var deskCall *simphone.Call
	select {
	case deskCall = <-desk.Incoming():
	case <-time.After(5 * time.Second):
		return nil, errors.New("the desk phone never reported its answered call")
	}
	if err := sleep(ctx, cfg.Duration/2); err != nil {
		return nil, err
	}
	if err := laptop.Hangup(ctx, toDesk.ID); err != nil {
		return nil, err
	}
	select {
	case <-deskCall.Ended():
	case <-time.After(10 * time.Second):
		return nil, errors.New("the desk phone never got BYE after bob hung up")
	}
	tl.add("carol desk phone", endpoint.Event{Time: time.Now(), Type: "sip.bye", Detail: "BYE from the gateway: 200"})
	toDeskInfo, _ := laptop.Call(toDesk.ID)

	// What each party heard.
	pstnRec := filepath.Join(dir, "pstn-caller.wav")
	deskRec := filepath.Join(dir, "carol-deskphone.wav")
	if err := writeWAV(pstnRec, pstnCall.Heard()); err != nil {
		return nil, err
	}
	if err := writeWAV(deskRec, deskCall.Heard()); err != nil {
		return nil, err
	}
	candidates := []float64{float64(cfg.Tone.Caller), float64(cfg.Tone.DeskPhone), float64(cfg.Tone.PSTN)}
	heard := func(who, path string, hz int, whose string) {
		share, dur, err := toneShare(path, float64(hz), candidates)
		if err != nil {
			check(false, "%s recording: %v", who, err)
			return
		}
		check(share >= 0.9 && dur >= cfg.Duration/4, "%s heard %s %d Hz tone in %.0f%% of %.2fs of audio (%s)", who, whose, hz, share*100, dur.Seconds(), path)
	}
	check(fromPSTN.Peer == "pstn/trunk1" && fromPSTN.Answered != nil,
		"the PSTN call to %s came in through trunk pstn as pstn/trunk1 and bob/laptop answered (peer %s)", demoNumber, fromPSTN.Peer)
	heard("bob/laptop", laptopRec("pstn/trunk1"), cfg.Tone.PSTN, "the PSTN caller's")
	heard("the PSTN caller", pstnRec, cfg.Tone.Caller, "bob's")
	check(toDeskInfo.Answered != nil, "bob/laptop's call to carol/desk rang the SIP desk phone, which answered")
	heard("bob/laptop", laptopRec("carol/desk"), cfg.Tone.DeskPhone, "carol's desk phone's")
	heard("carol's desk phone", deskRec, cfg.Tone.Caller, "bob's")
	check(fromPSTN.SRTP && toDeskInfo.SRTP, "the P2P legs (gateway <-> bob/laptop) used SRTP; the SIP legs plain RTP")
	for _, l := range []struct {
		name string
		info endpoint.CallInfo
	}{{"bob/laptop (from PSTN)", fromPSTN}, {"bob/laptop (to desk)", toDeskInfo}} {
		if m := l.info.Media; m != nil {
			res.media = append(res.media, fmt.Sprintf("  %-24s sent %d, received %d, lost %d, late %d, longest gap %.0f ms (%s)",
				l.name, m.PacketsSent, m.PacketsReceived, m.Lost, m.Late, m.LongestGapMS, l.info.EndReason))
		}
	}
	ps, pr := pstnCall.Packets()
	ds, dr := deskCall.Packets()
	res.media = append(res.media,
		fmt.Sprintf("  %-24s sent %d, received %d (plain RTP, PCMU)", "PSTN caller", ps, pr),
		fmt.Sprintf("  %-24s sent %d, received %d (plain RTP, PCMU)", "carol's desk phone", ds, dr))

	// 3. The story of issue 9 §5.
	st := &story{ctx: ctx, dir: dir, cfg: cfg, srv: srv, accessAddr: accessAddr, alicePw: passwords["alice"], log: log, tl: tl,
		watchers: watchers, gw: gw, sbc: sbc, bob: laptop, bobRec: laptopRec, res: res, check: check}
	if err := st.run(); err != nil {
		check(false, "the story (trunk caller -> alice's desk phone -> softphone -> desk phone -> bob) ran: %v", err)
	}
	return res, nil
}

// story is the user's main story (issue 9 §5): a trunk caller reaches
// alice's SIP desk phone (alice/sipdesk, a simphone registered with the
// gateway); alice's P2P softphone (alice/softphone) pulls the call (the
// gateway is B and BYEs the desk phone after the commit); the softphone
// pushes it back (the gateway rings the desk phone, which answers, then
// pulls: the gateway is A); the desk phone blind-transfers the caller to
// bob/laptop with REFER (gateway/refer.go). For each move the report says
// what the caller heard (its RTP: SSRCs, sequence gaps, timestamp jumps,
// the longest gap, the tone per second) and whether any SIP message
// reached the trunk, and writes a ladder (SVG) of the move's SIP and P2P
// messages to the out dir.
type story struct {
	ctx        context.Context
	dir        string
	cfg        config.Demo
	srv        *access.Server
	accessAddr string
	alicePw    string
	log        *slog.Logger
	tl         *timeline
	watchers   *sync.WaitGroup
	gw         *gateway.Gateway
	sbc        *simphone.Phone
	bob        *endpoint.Endpoint
	bobRec     func(peer string) string
	res        *demoSIP
	check      func(ok bool, format string, args ...any)

	desk                   *simphone.Phone
	soft                   *endpoint.Endpoint
	softEvs, bobEvs, gwEvs eventLog
	candidates             []float64
	call                   *simphone.Call // the PSTN caller's call
	softRec                string
	ladders                []string
}

// bobTalksTo reports whether bob/laptop has an active call with peer.
func (st *story) bobTalksTo(peer string) bool {
	for _, c := range st.bob.Calls() {
		if c.Peer == peer && c.State == "active" {
			return true
		}
	}
	return false
}

// Column names of the story's ladders.
const (
	colCaller = "PSTN caller " + demoCallerID
	colGW     = "gateway (pstn/trunk1, alice/sipdesk)"
	colDesk   = "alice's SIP desk phone"
	colSoft   = "alice/softphone (laptop)"
	colBob    = "bob/laptop"
)

// storyMove is one move's window and what it did.
type storyMove struct {
	n                int
	name, title      string
	start, done, end time.Time // the move's start, its completion, the next move's start
	handoff          *endpoint.HandoffInfo
	roles            handoffRoles
	want             int // the tone the caller should hear after the move
	trunkQuiet       bool
}

func (st *story) run() error {
	ctx, cfg := st.ctx, st.cfg
	hold := cfg.Duration / 3
	if hold < time.Second {
		hold = time.Second
	}
	st.candidates = []float64{float64(cfg.Tone.Caller), float64(cfg.Tone.Callee), float64(cfg.Tone.Laptop), float64(cfg.Tone.DeskPhone), float64(cfg.Tone.PSTN)}

	// bob/laptop's events (its first subscription feeds the timeline).
	bevs, bunsub := st.bob.Subscribe()
	defer bunsub()
	st.bobEvs.record(bevs, st.watchers)

	// alice's SIP desk phone registers; the gateway logs alice/sipdesk in.
	desk, err := simphone.Start(simphone.Config{User: "alice", Password: demoAliceSIPPwd, Gateway: st.gw.Addr("udp"),
		IP: netip.MustParseAddr("127.0.0.1"), Tone: float64(cfg.Tone.Callee), AutoAnswer: true, NotifyTimeout: 2 * time.Second,
		Logger: st.log.With("part", "alice sip desk phone")})
	if err != nil {
		return err
	}
	defer desk.Close()
	st.desk = desk
	if err := desk.Register(ctx, 10*time.Minute); err != nil {
		return err
	}
	st.tl.add("alice sipdesk", endpoint.Event{Time: time.Now(), Type: "sip.registered", Detail: "REGISTER with digest: 200"})
	if err := waitDevice(ctx, st.bob, "alice", "sipdesk", 10*time.Second); err != nil {
		return err
	}
	// The gateway's side of P2P: its two device endpoints' events.
	for _, key := range []string{"alice", "trunk:pstn"} {
		// Presence can show the device online a moment before the
		// gateway has its endpoint filed (its login returns after the
		// access server announced it).
		ep, ok := st.gw.Device(key)
		for wait := time.Now().Add(5 * time.Second); !ok && time.Now().Before(wait); {
			time.Sleep(10 * time.Millisecond)
			ep, ok = st.gw.Device(key)
		}
		if !ok {
			return fmt.Errorf("the gateway's device %s is not online", key)
		}
		evs, unsub := ep.Subscribe()
		defer unsub()
		st.gwEvs.record(evs, st.watchers)
	}

	// alice's softphone, a P2P endpoint on her laptop.
	st.softRec = filepath.Join(st.dir, "alice-softphone.wav")
	src, err := sourceFactory(cfg.Tone.Laptop, "")
	if err != nil {
		return err
	}
	soft, err := endpoint.New(endpoint.Config{
		Access: st.accessAddr, Roots: st.srv.CA().Pool(), User: "alice", Device: "softphone", Password: st.alicePw,
		SRTP: true, MediaIP: netip.MustParseAddr("127.0.0.1"), Codecs: codecs.DefaultRegistry(), NewSource: src,
		NewSink: func(_, _ string) (audio.Sink, error) {
			return &lazyRecording{open: func() (*audio.WAVWriter, error) { return audio.CreateWAV(st.softRec, sampleRate) }}, nil
		},
		Logger: st.log.With("part", "alice/softphone"),
	})
	if err != nil {
		return err
	}
	sevs, sunsub := soft.Subscribe()
	defer sunsub()
	st.softEvs.record(sevs, st.watchers)
	if err := soft.Start(ctx); err != nil {
		return err
	}
	defer soft.Close()
	st.soft = soft
	if err := waitDevice(ctx, soft, "alice", "sipdesk", 10*time.Second); err != nil {
		return err
	}

	var moves []*storyMove
	// Move 1: the trunk caller dials the number; alice's desk phone rings
	// and answers.
	m1 := &storyMove{n: 1, name: "call", title: "the PSTN caller reaches alice's SIP desk phone", start: time.Now(), want: cfg.Tone.Callee}
	callCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	call, err := st.sbc.Call(callCtx, demoStoryNumber)
	cancel()
	if err != nil {
		return fmt.Errorf("the PSTN call to %s: %w", demoStoryNumber, err)
	}
	st.call = call
	defer func() { // on a failure mid-story; a no-op once the call ended
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = call.Hangup(hctx)
		cancel()
	}()
	desk1, err := st.incoming(desk, "the desk phone's answer")
	if err != nil {
		return err
	}
	m1.done = time.Now()
	st.tl.add("pstn "+demoCallerID, endpoint.Event{Time: m1.done, Type: "sip.answered", Detail: "INVITE sip:" + demoStoryNumber + ": 200 (alice's desk phone)"})
	moves = append(moves, m1)
	if err := sleep(ctx, hold); err != nil {
		return err
	}

	// Move 2: alice's softphone pulls the call from the desk phone.
	m2 := &storyMove{n: 2, name: "pull", title: "alice/softphone pulls the call from the desk phone", start: time.Now(), want: cfg.Tone.Laptop,
		roles: handoffRoles{A: colSoft, B: colGW, C: colGW}, trunkQuiet: true}
	pull, err := soft.Pull(ctx, endpoint.PullRequest{From: "sipdesk"})
	m2.handoff = &pull
	if err != nil {
		return fmt.Errorf("alice/softphone's pull from alice/sipdesk: %w", err)
	}
	select {
	case <-desk1.Ended():
	case <-time.After(10 * time.Second):
		return errors.New("the desk phone never got BYE after the pull")
	}
	m2.done = time.Now()
	moves = append(moves, m2)
	if err := sleep(ctx, hold); err != nil {
		return err
	}

	// Move 3: the softphone pushes the call back to the desk phone.
	m3 := &storyMove{n: 3, name: "push", title: "alice/softphone pushes the call back to the desk phone", start: time.Now(), want: cfg.Tone.Callee,
		roles: handoffRoles{A: colGW, B: colSoft, C: colGW}, trunkQuiet: true}
	push, err := soft.Push(ctx, endpoint.PushRequest{CallID: pull.CallID, To: "sipdesk"})
	m3.handoff = &push
	if err != nil {
		return fmt.Errorf("alice/softphone's push to alice/sipdesk: %w", err)
	}
	desk2, err := st.incoming(desk, "the desk phone's answer to the push")
	if err != nil {
		return err
	}
	m3.done = time.Now()
	moves = append(moves, m3)
	if err := sleep(ctx, hold); err != nil {
		return err
	}

	// Move 4: the desk phone blind-transfers the caller to bob/laptop.
	m4 := &storyMove{n: 4, name: "transfer", title: "alice's desk phone blind-transfers the caller to bob/laptop (REFER)", start: time.Now(), want: cfg.Tone.Caller, trunkQuiet: true}
	referCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	code, err := desk2.Refer(referCtx, "bob/laptop")
	cancel()
	if err != nil {
		return fmt.Errorf("the desk phone's REFER to bob/laptop (final NOTIFY %d): %w", code, err)
	}
	if err := desk2.Hangup(ctx); err != nil {
		return fmt.Errorf("the desk phone's BYE after the transfer: %w", err)
	}
	m4.done = time.Now()
	moves = append(moves, m4)
	if err := sleep(ctx, hold); err != nil {
		return err
	}
	end := time.Now()
	for i, m := range moves {
		m.end = end
		if i+1 < len(moves) {
			m.end = moves[i+1].start
		}
	}
	// The caller hangs up; bob's call ends with it.
	if err := call.Hangup(ctx); err != nil {
		return fmt.Errorf("the PSTN caller's BYE: %w", err)
	}
	select {
	case <-call.Ended():
	case <-time.After(10 * time.Second):
		return errors.New("the PSTN caller's call never ended after its BYE")
	}
	// Let the P2P side settle (bob's call ends through keepJoined).
	_ = waitUntil(ctx, 5*time.Second, func() bool {
		for _, c := range st.bob.Calls() {
			if c.Peer == "alice/sipdesk" && c.State != "ended" {
				return false
			}
		}
		return true
	})
	return st.report(moves, desk1, desk2)
}

// incoming waits for the desk phone's next answered call.
func (st *story) incoming(p *simphone.Phone, what string) (*simphone.Call, error) {
	select {
	case c := <-p.Incoming():
		return c, nil
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("waiting for %s: none within 15s", what)
	case <-st.ctx.Done():
		return nil, st.ctx.Err()
	}
}

// waitUntil polls cond every 20 ms until it holds or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || sleep(ctx, 20*time.Millisecond) != nil {
			return false
		}
	}
	return true
}

// report writes each move's ladder and checks what the caller heard.
func (st *story) report(moves []*storyMove, desk1, desk2 *simphone.Call) error {
	check := st.check
	peers := map[string]string{"pstn/trunk1": colGW, "alice/sipdesk": colGW, "alice/softphone": colSoft, "bob/laptop": colBob}
	whole := st.call.Report(moves[0].done, moves[len(moves)-1].end, st.candidates)
	for _, m := range moves {
		// What the caller heard from the move's start to the next move.
		rep := st.call.Report(m.start, m.end, st.candidates)
		if m.n == 1 {
			rep = st.call.Report(m.done, m.end, st.candidates)
		}
		trunkMsgs := st.sbc.TraceBetween(m.start, m.end)
		l := &ladder{Title: fmt.Sprintf("Move %d (%s): %s", m.n, m.name, m.title), Columns: []string{colCaller, colGW, colDesk, colSoft, colBob}, Start: m.start}
		l.addSIP(trunkMsgs, colCaller, colGW)
		l.addSIP(st.desk.TraceBetween(m.start, m.end), colDesk, colGW)
		if m.handoff != nil {
			l.addSteps(*m.handoff, m.roles)
		}
		l.addEvents(st.softEvs.events(), colSoft, peers, m.start, m.end)
		l.addEvents(st.bobEvs.events(), colBob, peers, m.start, m.end)
		l.addEvents(st.gwEvs.events(), colGW, peers, m.start, m.end)
		// The tone of the window's last sounding second (the last one may
		// be a few ms only).
		last := 0.0
		for _, hz := range rep.Tones {
			if hz != 0 {
				last = hz
			}
		}
		l.Footer = []string{
			fmt.Sprintf("What the PSTN caller heard (%s to %s after the move's start): %s",
				"0.0s", fmt.Sprintf("%.1fs", m.end.Sub(m.start).Seconds()), rep),
			fmt.Sprintf("SIP messages at the trunk during the move: %d", len(trunkMsgs)),
		}
		path := filepath.Join(st.dir, fmt.Sprintf("ladder-%d-%s.svg", m.n, m.name))
		if err := l.write(path); err != nil {
			return err
		}
		st.ladders = append(st.ladders, path)
		st.res.story = append(st.res.story,
			fmt.Sprintf("  move %d (%s): %s", m.n, m.name, m.title),
			fmt.Sprintf("    the caller heard: %s", rep),
			fmt.Sprintf("    SIP messages at the trunk: %d; ladder %s (%d rows)", len(trunkMsgs), path, len(l.Arrows)))
		if m.handoff != nil {
			st.res.story = append(st.res.story, fmt.Sprintf("    handoff %s %s: %d steps, %s", m.handoff.Kind, m.handoff.ID, len(m.handoff.Steps), m.handoff.State))
		}
		check(rep.Lost == 0 && rep.SSRCs == 1 && rep.TSJumps == 0,
			"move %d (%s): the caller lost 0 frames (lost %d, %d SSRC, %d timestamp jumps)", m.n, m.name, rep.Lost, rep.SSRCs, rep.TSJumps)
		check(last == float64(m.want), "move %d (%s): the caller then heard %d Hz (tones per second %v)", m.n, m.name, m.want, rep.Tones)
		st.res.checks = append(st.res.checks, demoCheck{ok: rep.LongestGap <= 40*time.Millisecond, target: true,
			text: fmt.Sprintf("move %d (%s): longest gap between the caller's packets %.0f ms (at most 40 ms, issue 9 §6)", m.n, m.name, float64(rep.LongestGap)/float64(time.Millisecond))})
		if m.trunkQuiet {
			check(len(trunkMsgs) == 0, "move %d (%s): no SIP message reached the trunk (%d)", m.n, m.name, len(trunkMsgs))
		}
		if m.handoff != nil {
			check(m.handoff.State == "done" && len(m.handoff.Steps) == 12 && stepsInOrder(m.handoff.Steps),
				"move %d (%s): the handoff ran its twelve steps in order (%s, %d steps)", m.n, m.name, m.handoff.State, len(m.handoff.Steps))
		}
		st.tl.add("story", endpoint.Event{Time: m.done, Type: "story.move", Detail: fmt.Sprintf("%d %s: %s", m.n, m.name, m.title)})
	}
	st.res.story = append(st.res.story, fmt.Sprintf("  the whole call at the caller: %s", whole))
	check(whole.Lost == 0 && whole.SSRCs == 1, "the caller's RTP across all four moves: one SSRC, 0 frames lost (%d SSRC, %d lost)", whole.SSRCs, whole.Lost)
	// The story's SIP at the desk phone: the pull's BYE, the push's
	// INVITE, the REFER with its NOTIFYs.
	deskTrace := labels(st.desk.TraceBetween(moves[1].start, moves[len(moves)-1].end))
	check(containsInOrder(deskTrace, []string{"<- BYE", "-> 200 OK (BYE)", "<- INVITE", "-> 200 OK (INVITE)", "<- ACK", "-> REFER", "<- 202 Accepted (REFER)", "-> BYE"}),
		"alice's desk phone: BYE after the pull, INVITE for the push, REFER + 202 then BYE for the transfer")
	check(containsInOrder(deskTrace, []string{"<- 202 Accepted (REFER)", "<- NOTIFY (SIP/2.0 100 Trying)", "<- NOTIFY (SIP/2.0 200 OK)"}),
		"alice's desk phone: the REFER's NOTIFYs said 100 Trying, then 200 OK")
	// What each party heard.
	for _, r := range []struct {
		who, path string
		pcm       []int16
	}{
		{"alice's desk phone (before the pull)", filepath.Join(st.dir, "alice-sipdesk-1.wav"), desk1.Heard()},
		{"alice's desk phone (after the push)", filepath.Join(st.dir, "alice-sipdesk-2.wav"), desk2.Heard()},
		{"the PSTN caller (the story)", filepath.Join(st.dir, "pstn-caller-story.wav"), st.call.Heard()},
	} {
		if err := writeWAV(r.path, r.pcm); err != nil {
			return err
		}
		if r.who == "the PSTN caller (the story)" {
			continue // checked per move above
		}
		st.heard(r.who, r.path, st.cfg.Tone.PSTN)
	}
	st.heard("alice/softphone", st.softRec, st.cfg.Tone.PSTN)
	st.heard("bob/laptop (after the transfer)", st.bobRec("alice/sipdesk"), st.cfg.Tone.PSTN)
	return nil
}

// heard checks that the recording at path holds the PSTN caller's tone.
func (st *story) heard(who, path string, hz int) {
	share, dur, err := toneShare(path, float64(hz), st.candidates)
	if err != nil {
		st.check(false, "%s recording: %v", who, err)
		return
	}
	st.check(share >= 0.9 && dur >= 250*time.Millisecond, "%s heard the PSTN caller's %d Hz tone in %.0f%% of %.2fs of audio (%s)", who, hz, share*100, dur.Seconds(), path)
}

// labels renders a trace as "-> INVITE", "<- 200 OK (INVITE)".
func labels(msgs []simphone.Message) []string {
	var out []string
	for _, m := range msgs {
		dir := "<- "
		if m.Out {
			dir = "-> "
		}
		out = append(out, dir+m.Label())
	}
	return out
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// writeWAV writes 8 kHz PCM to a new WAV file.
func writeWAV(path string, pcm []int16) error {
	w, err := audio.CreateWAV(path, 8000)
	if err != nil {
		return err
	}
	if err := w.WriteFrame(pcm); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// printDemoSIP prints the SIP part's media lines and the story's moves.
func printDemoSIP(out io.Writer, s *demoSIP) {
	for _, l := range s.media {
		fmt.Fprintln(out, l)
	}
	if len(s.story) > 0 {
		fmt.Fprintln(out, "The story (a trunk call: alice's desk phone -> her softphone -> the desk phone -> bob):")
		for _, l := range s.story {
			fmt.Fprintln(out, l)
		}
	}
}
