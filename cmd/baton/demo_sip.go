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
const (
	demoNumber     = "+15550100"
	demoCallerID   = "+15557777"
	demoTrunkIP    = "127.0.0.9" // the provider's SBC; the trunk allows only it
	demoRealm      = "baton"
	demoDeskSIPPwd = "carol-desk-sip"
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
}

func runDemoSIP(ctx context.Context, dir string, cfg config.Demo, srv *access.Server, accessAddr, bobPw string,
	log *slog.Logger, tl *timeline, watchers *sync.WaitGroup) (*demoSIP, error) {
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
	tl.add("access", endpoint.Event{Time: time.Now(), Type: "access.users", Detail: "carol (a SIP desk phone) and pstn (a trunk) are bob's buddies"})

	// The gateway: carol's SIP account is carol/desk; the trunk's callers
	// appear as pstn/trunk1, and the number routes to bob/laptop.
	gw, err := gateway.New(gateway.Config{
		Access: accessAddr, Roots: srv.CA().Pool(),
		UDP: "127.0.0.1:0", Realm: demoRealm,
		MediaIP: netip.MustParseAddr("127.0.0.1"), SRTP: true, Codecs: codecs.DefaultRegistry(),
		Accounts: []gateway.Account{{SIPUser: "carol", HA1: sipbridge.HA1("carol", demoRealm, demoDeskSIPPwd),
			User: "carol", Device: "desk", Password: pw["carol"]}},
		Trunks: []gateway.Trunk{{Name: "pstn", User: "pstn", Device: "trunk1", Password: pw["pstn"],
			Allow:   []netip.Prefix{netip.MustParsePrefix(demoTrunkIP + "/32")},
			Numbers: map[string]string{demoNumber: "bob/laptop"}}},
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
	return res, nil
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

// printDemoSIP prints the SIP part's media lines.
func printDemoSIP(out io.Writer, s *demoSIP) {
	for _, l := range s.media {
		fmt.Fprintln(out, l)
	}
}
