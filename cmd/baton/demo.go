package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/endpoint"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole network in one process: a call, a pull, an address change",
		Long: `Run, in one process on loopback with real sockets: an access server, users
alice and bob, and the endpoints bob/mobile, alice/desk and alice/laptop. bob
calls alice and her desk answers; her laptop logs in and pulls the call (the
twelve handoff steps); then the laptop's media address changes from 127.0.0.2
to 127.0.0.7; bob hangs up. Each device plays its own tone. The demo prints a
timeline (login, presence, call states, each handoff step with its time), a
media report and its checks, writes each party's recording to WAV, and exits
non-zero if a check fails (speed targets too, unless --check-targets=false).

Then (unless --sip=false) a SIP gateway in the same process with built-in SIP
phones and a simulated PSTN trunk: a PSTN caller reaches bob/laptop, bob/laptop
calls carol's desk phone; then the transfer story: a trunk caller reaches
alice's SIP desk phone, alice/softphone pulls the call, pushes it back, and the
desk phone blind-transfers it to bob with REFER. For each move the report says
what the caller heard (frames lost, SSRCs, gaps, the tone per second) and
writes a ladder diagram of its SIP and P2P messages (ladder-N-MOVE.svg).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadDemo(source(cmd))
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cfg)
		},
	}
	config.DemoFlags(cmd.Flags())
	return cmd
}

// timeline collects events of several parties in time order.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	events []timelineEvent
}

type timelineEvent struct {
	who string
	ev  endpoint.Event
}

func (t *timeline) add(who string, ev endpoint.Event) {
	t.mu.Lock()
	t.events = append(t.events, timelineEvent{who, ev})
	t.mu.Unlock()
}

func (t *timeline) print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sort.SliceStable(t.events, func(i, j int) bool { return t.events[i].ev.Time.Before(t.events[j].ev.Time) })
	for _, e := range t.events {
		d := e.ev.Time.Sub(t.start)
		typ := e.ev.Type
		if e.ev.Step != 0 && typ == "handoff.step" {
			typ = fmt.Sprintf("handoff.step %d", e.ev.Step)
		}
		line := fmt.Sprintf("  %+8.3fs  %-13s %-21s", d.Seconds(), e.who, typ)
		if e.ev.Peer != "" {
			line += " " + e.ev.Peer
		}
		if e.ev.State != "" && e.ev.Type == "presence" {
			line += " " + e.ev.State
		}
		if e.ev.Detail != "" {
			line += "  (" + e.ev.Detail + ")"
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// watch feeds ep's events into the timeline and into ch for the demo's
// own waiting, until the subscription ends.
func (t *timeline) watch(who string, events <-chan endpoint.Event, ch chan<- endpoint.Event, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			t.add(who, ev)
			select {
			case ch <- ev:
			default: // the demo only waits for a few events; never block
			}
		}
	}()
}

// waitFor waits for the first event on ch that matches.
func waitFor(ctx context.Context, ch <-chan endpoint.Event, what string, timeout time.Duration, match func(endpoint.Event) bool) (endpoint.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev, nil
			}
		case <-ctx.Done():
			return endpoint.Event{}, fmt.Errorf("demo: waiting for %s: %w", what, ctx.Err())
		}
	}
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// demoParty is one endpoint of the demo.
type demoParty struct {
	name        string // user/device
	ep          *endpoint.Endpoint
	events      chan endpoint.Event
	unsubscribe func()
	rec         string
	tone        int
}

func runDemo(ctx context.Context, out io.Writer, cfg config.Demo) (err error) {
	dir := cfg.OutDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "baton-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "access-data")
	if !cfg.KeepData {
		defer os.RemoveAll(dataDir)
	}
	logFile, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := newLogger(logFile, cfg.Log)

	tl := &timeline{start: time.Now()}
	phase := cfg.Duration / 3
	fmt.Fprintf(out, "Baton demo: bob/mobile calls alice (alice/desk answers); alice/laptop logs in and pulls the call;\n"+
		"then the laptop's address changes (127.0.0.2 -> 127.0.0.7); bob hangs up. Output in %s\n", dir)
	if cfg.SIP {
		fmt.Fprintf(out, "Then the SIP part: a gateway with a built-in SIP desk phone (carol) and a simulated PSTN trunk;\n"+
			"a PSTN caller dials %s, which rings bob/laptop; bob/laptop calls carol's desk phone.\n"+
			"Then the story: a PSTN caller dials %s, which rings alice's SIP desk phone; alice/softphone pulls the call,\n"+
			"pushes it back, and the desk phone transfers it to bob/laptop (REFER); a ladder per move.\n", demoNumber, demoStoryNumber)
	}
	fmt.Fprintln(out)

	// The access server, with its users.
	srv, err := access.NewServer(ctx, access.Config{
		DataDir:       dataDir,
		ServerNames:   []string{"127.0.0.1"},
		CredentialTTL: time.Hour,
		Keepalive:     10 * time.Second,
		Timeout:       30 * time.Second,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	serveDone := make(chan error, 1)
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer func() { stopSrv(); <-serveDone }()
	go func() { serveDone <- srv.Serve(srvCtx, ln) }()
	tl.add("access", endpoint.Event{Time: time.Now(), Type: "access.listening", Detail: ln.Addr().String()})

	passwords := map[string]string{"alice": randomPassword(), "bob": randomPassword()}
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Users().AddUser(ctx, u, passwords[u]); err != nil && !errors.Is(err, access.ErrUserExists) {
			return err
		}
		if err := srv.Users().SetPassword(ctx, u, passwords[u]); err != nil {
			return err
		}
	}
	if err := srv.Users().AddBuddy(ctx, "alice", "bob"); err != nil && !errors.Is(err, access.ErrBuddyExists) {
		return err
	}
	tl.add("access", endpoint.Event{Time: time.Now(), Type: "access.users", Detail: "alice and bob are buddies"})

	var watchers sync.WaitGroup
	defer watchers.Wait()
	reg := prometheus.NewRegistry()
	newParty := func(name string, tone int, mediaIP string) (*demoParty, error) {
		user, device, _ := strings.Cut(name, "/")
		p := &demoParty{name: name, tone: tone, rec: filepath.Join(dir, user+"-"+device+".wav")}
		src, err := sourceFactory(tone, "")
		if err != nil {
			return nil, err
		}
		ep, err := endpoint.New(endpoint.Config{
			Access:    ln.Addr().String(),
			Roots:     srv.CA().Pool(),
			User:      user,
			Device:    device,
			Password:  passwords[user],
			SRTP:      true,
			MediaIP:   netip.MustParseAddr(mediaIP),
			Codecs:    codecs.DefaultRegistry(),
			NewSource: src,
			NewSink:   sinkFactory(p.rec, true, log),
			Logger:    log,
		})
		if err != nil {
			return nil, err
		}
		p.ep = ep
		p.events = make(chan endpoint.Event, 256)
		evs, cancel := ep.Subscribe()
		p.unsubscribe = cancel
		tl.watch(name, evs, p.events, &watchers)
		return p, nil
	}
	bob, err := newParty("bob/mobile", cfg.Tone.Caller, "127.0.0.1")
	if err != nil {
		return err
	}
	defer bob.unsubscribe()
	desk, err := newParty("alice/desk", cfg.Tone.Callee, "127.0.0.1")
	if err != nil {
		return err
	}
	defer desk.unsubscribe()
	laptop, err := newParty("alice/laptop", cfg.Tone.Laptop, "127.0.0.2")
	if err != nil {
		return err
	}
	defer laptop.unsubscribe()
	if err := bob.ep.Register(reg); err != nil {
		return err
	}
	for _, p := range []*demoParty{bob, desk} {
		if err := p.ep.Start(ctx); err != nil {
			return err
		}
		defer p.ep.Close()
	}
	if cfg.Admin != "" {
		adm, err := control.Listen(ctx, cfg.Admin, control.Options{Endpoint: bob.ep, Gatherer: reg, Logger: log})
		if err != nil {
			return err
		}
		defer adm.Close()
		fmt.Fprintf(out, "control API for bob/mobile on %s\n\n", adm.Addr())
	}

	// bob calls alice; her desk answers, as a person would, through the API.
	if err := waitOnline(ctx, bob.ep, "alice", 10*time.Second); err != nil {
		return err
	}
	call, err := bob.ep.Dial(ctx, "alice")
	if err != nil {
		return err
	}
	ring, err := waitFor(ctx, desk.events, "alice/desk to ring", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.ringing" })
	if err != nil {
		return err
	}
	if err := desk.ep.Answer(ctx, ring.CallID); err != nil {
		return err
	}
	if _, err := waitFor(ctx, bob.events, "the call to be active at bob", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.active" }); err != nil {
		return err
	}
	if err := sleep(ctx, phase); err != nil {
		return err
	}

	// alice/laptop logs in (step 1), sees the desk's presence (step 2) and
	// pulls the call.
	if err := laptop.ep.Start(ctx); err != nil {
		return err
	}
	defer laptop.ep.Close()
	if err := waitDevice(ctx, laptop.ep, "alice", "desk", 10*time.Second); err != nil {
		return err
	}
	pull, pullErr := laptop.ep.Pull(ctx, endpoint.PullRequest{From: "desk"})
	if pullErr == nil {
		if err := sleep(ctx, phase); err != nil {
			return err
		}
	}
	// The laptop's address changes mid-call.
	var rebind endpoint.HandoffInfo
	var rebindErr error
	if pullErr == nil {
		rebind, rebindErr = laptop.ep.Rebind(ctx, netip.MustParseAddr("127.0.0.7"))
		if err := sleep(ctx, phase); err != nil {
			return err
		}
	}
	// bob hangs up.
	terminatedEarly := endedBefore(bob.events, call.ID)
	if err := bob.ep.Hangup(ctx, call.ID); err != nil {
		return err
	}
	if pullErr == nil {
		if _, err := waitFor(ctx, laptop.events, "the call to end at alice/laptop", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.ended" }); err != nil {
			return err
		}
	}
	bobCall, err := bob.ep.Call(call.ID)
	if err != nil {
		return err
	}
	deskCall, _ := desk.ep.Call(call.ID)
	laptopCall, _ := laptop.ep.Call(call.ID)

	// The SIP part: a gateway with a built-in desk phone and a simulated
	// PSTN trunk (demo_sip.go).
	var sipPart *demoSIP
	var sipErr error
	if cfg.SIP {
		sipPart, sipErr = runDemoSIP(ctx, dir, cfg, srv, ln.Addr().String(), passwords, log, tl, &watchers)
	}

	fmt.Fprintln(out, "Timeline:")
	tl.print(out)
	fmt.Fprintln(out)
	printHandoff(out, "The pull (alice/laptop takes the call from alice/desk):", pull)
	if pullErr == nil {
		printHandoff(out, "The address change (alice/laptop moves to 127.0.0.7):", rebind)
	}

	var failed []string
	check := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed = append(failed, fmt.Sprintf(format, args...))
		}
		fmt.Fprintf(out, "  [%s] %s\n", mark, fmt.Sprintf(format, args...))
	}
	target := func(ok bool, format string, args ...any) {
		if cfg.CheckTargets {
			check(ok, "target: "+format, args...)
			return
		}
		mark := "ok  "
		if !ok {
			mark = "MISS"
		}
		fmt.Fprintf(out, "  [%s] target (reported only): %s\n", mark, fmt.Sprintf(format, args...))
	}

	fmt.Fprintln(out, "Media report:")
	legs := []struct {
		name string
		info endpoint.CallInfo
	}{{"bob/mobile", bobCall}, {"alice/desk", deskCall}, {"alice/laptop", laptopCall}}
	for _, l := range legs {
		m := l.info.Media
		if m == nil {
			fmt.Fprintf(out, "  %-13s no media\n", l.name)
			continue
		}
		fmt.Fprintf(out, "  %-13s sent %d, received %d, lost %d, late %d, concealed %d, longest gap %.0f ms, jitter %.2f ms, source switches %d (%s)\n",
			l.name, m.PacketsSent, m.PacketsReceived, m.Lost, m.Late, m.Concealed, m.LongestGapMS, m.JitterMS, m.SourceSwitches, l.info.EndReason)
	}
	if sipPart != nil {
		printDemoSIP(out, sipPart)
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "Checks:")
	check(bobCall.Answered != nil, "bob's call to alice was answered by alice/desk")
	check(pullErr == nil && pull.State == "done", "alice/laptop pulled the call (%s%s)", pull.State, errSuffix(pullErr))
	check(pullErr == nil && len(pull.Steps) == 12 && stepsInOrder(pull.Steps), "all twelve steps happened, in order")
	check(rebindErr == nil && rebind.State == "done", "the laptop's address change kept the call (%s%s)", rebind.State, errSuffix(rebindErr))
	check(!terminatedEarly, "bob never saw a termination before hanging up")
	check(strings.HasPrefix(deskCall.EndReason, "handed off"), "alice/desk let the call go silently (%q)", deskCall.EndReason)
	check(strings.HasPrefix(laptopCall.EndReason, "remote hangup"), "alice/laptop's call ended by bob's hangup (%q)", laptopCall.EndReason)
	check(bobCall.SRTP && laptopCall.SRTP, "media encrypted with SRTP end to end")
	candidates := []float64{float64(cfg.Tone.Caller), float64(cfg.Tone.Callee), float64(cfg.Tone.Laptop)}
	for _, p := range []*demoParty{desk, laptop} {
		share, dur, err := toneShare(p.rec, float64(cfg.Tone.Caller), candidates)
		if err != nil {
			check(false, "%s recording: %v", p.name, err)
			continue
		}
		check(share >= 0.9, "%s heard bob's %d Hz tone in %.0f%% of %.2fs of audio (%s)", p.name, cfg.Tone.Caller, share*100, dur.Seconds(), p.rec)
	}
	order, silence, err := toneOrder(bob.rec, candidates)
	if err != nil {
		check(false, "bob's recording: %v", err)
	} else {
		want := fmt.Sprintf("%d,%d", cfg.Tone.Callee, cfg.Tone.Laptop)
		check(order == want, "bob heard alice/desk's %d Hz, then alice/laptop's %d Hz (heard %s) (%s)", cfg.Tone.Callee, cfg.Tone.Laptop, order, bob.rec)
		target(silence <= 20*time.Millisecond+5*time.Millisecond, "no silence in bob's recording between the tones (longest %s, at most one packet time + 5 ms)", silence)
	}
	if m := bobCall.Media; m != nil {
		target(m.Lost == 0, "0 packets lost at bob across the pull and the address change (lost %d)", m.Lost)
		target(m.LongestGapMS <= 25, "longest gap between played frames at bob %.0f ms (at most one packet time + 5 ms)", m.LongestGapMS)
	}
	if pullErr == nil {
		target(pull.FirstAudioMS > 0 && pull.FirstAudioMS <= 100, "alice/laptop heard bob %.1f ms after the pull request (at most 100 ms)", pull.FirstAudioMS)
	}
	if rebindErr == nil && pullErr == nil {
		target(rebind.FirstAudioMS > 0 && rebind.FirstAudioMS <= 40, "alice/laptop heard bob again %.1f ms after its address changed (at most 40 ms)", rebind.FirstAudioMS)
		if _, gap, err := toneOrder(laptop.rec, candidates); err == nil {
			fmt.Fprintf(out, "  [info] longest silence in alice/laptop's recording (across its address change): %s\n", gap)
		}
	}
	if cfg.SIP {
		fmt.Fprintln(out, "Checks, SIP part (gateway, built-in desk phone carol/desk, simulated trunk pstn):")
		if sipErr != nil {
			check(false, "the SIP part ran: %v", sipErr)
		} else {
			for _, c := range sipPart.checks {
				if c.target {
					target(c.ok, "%s", c.text)
					continue
				}
				check(c.ok, "%s", c.text)
			}
		}
	}
	fmt.Fprintln(out)
	if len(failed) > 0 {
		fmt.Fprintf(out, "demo FAILED: %d check(s) failed\n", len(failed))
		return fmt.Errorf("demo: %d check(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	fmt.Fprintln(out, "demo passed: recordings in", dir)
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func stepsInOrder(steps []endpoint.StepInfo) bool {
	for i, s := range steps {
		if s.Step != i+1 || (i > 0 && s.At.Before(steps[i-1].At)) {
			return false
		}
	}
	return true
}

func printHandoff(w io.Writer, title string, h endpoint.HandoffInfo) {
	fmt.Fprintln(w, title)
	for _, s := range h.Steps {
		fmt.Fprintf(w, "  step %2d  %+8.2f ms  %-44s %s\n", s.Step, s.SinceStartMS, s.Title, s.Detail)
	}
	if h.Error != "" {
		fmt.Fprintf(w, "  %s: %s\n", h.State, h.Error)
	}
	fmt.Fprintln(w)
}

// endedBefore reports whether ch already holds a call.ended or
// call.signaling-lost event for id: a termination bob would have seen.
func endedBefore(ch <-chan endpoint.Event, id string) bool {
	for {
		select {
		case ev := <-ch:
			if ev.CallID == id && (ev.Type == "call.ended" || ev.Type == "call.signaling-lost") {
				return true
			}
		default:
			return false
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitDevice waits until ep's presence cache shows user/device online
// (device "": any device of user).
func waitDevice(ctx context.Context, ep *endpoint.Endpoint, user, device string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, b := range ep.Buddies() {
			if b.User != user {
				continue
			}
			for _, d := range b.Devices {
				if (device == "" || d.Device == device) && d.Status == "online" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			who := user
			if device != "" {
				who += "/" + device
			}
			return fmt.Errorf("demo: %s never saw %s online", ep.Identity(), who)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// toneOrder returns the sequence of tones in a recording (consecutive
// repeats merged, silence left out, runs shorter than 60 ms ignored as
// transitions) and the longest silence between two sounding runs.
func toneOrder(path string, candidates []float64) (string, time.Duration, error) {
	clip, err := audio.ReadWAVFile(path)
	if err != nil {
		return "", 0, err
	}
	segs := audio.Segments(clip.Samples, clip.SampleRate, 0, candidates)
	var order []string
	for _, s := range segs {
		if s.Silent() || s.Duration() < 60*time.Millisecond {
			continue
		}
		hz := fmt.Sprintf("%.0f", s.Hz)
		if len(order) == 0 || order[len(order)-1] != hz {
			order = append(order, hz)
		}
	}
	return strings.Join(order, ","), audio.LongestSilence(segs), nil
}

// waitOnline waits until ep's presence cache shows user online.
func waitOnline(ctx context.Context, ep *endpoint.Endpoint, user string, timeout time.Duration) error {
	return waitDevice(ctx, ep, user, "", timeout)
}

// toneShare returns the share of the recording's sounding 20 ms frames
// whose dominant tone is hz, and the total sounding duration.
func toneShare(path string, hz float64, candidates []float64) (float64, time.Duration, error) {
	clip, err := audio.ReadWAVFile(path)
	if err != nil {
		return 0, 0, err
	}
	var sounding, match time.Duration
	for _, s := range audio.Segments(clip.Samples, clip.SampleRate, 0, candidates) {
		if s.Silent() {
			continue
		}
		sounding += s.Duration()
		if s.Hz == hz {
			match += s.Duration()
		}
	}
	if sounding == 0 {
		return 0, 0, errors.New("recording is silent")
	}
	return float64(match) / float64(sounding), sounding, nil
}
