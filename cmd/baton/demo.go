package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
		Short: "Run the whole network in one process and check that a call works",
		Long: `Run, in one process on loopback with real sockets: an access server, users
alice and bob, and the endpoints alice/laptop and bob/mobile. bob calls alice;
each plays a distinct tone; after --duration bob hangs up. The demo prints a
timeline (login, presence, call states) and a per-direction media report,
writes each party's recording to WAV, and exits non-zero if any check fails.`,
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
		line := fmt.Sprintf("  %+8.3fs  %-13s %-20s", d.Seconds(), e.who, e.ev.Type)
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
	name   string // user/device
	ep     *endpoint.Endpoint
	events chan endpoint.Event
	rec    string
	tone   int
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
	fmt.Fprintf(out, "Baton demo: access server, alice/laptop and bob/mobile on loopback; output in %s\n\n", dir)

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

	parties := []*demoParty{
		{name: "alice/laptop", tone: cfg.Tone.Callee, rec: filepath.Join(dir, "alice-laptop.wav")},
		{name: "bob/mobile", tone: cfg.Tone.Caller, rec: filepath.Join(dir, "bob-mobile.wav")},
	}
	var watchers sync.WaitGroup
	defer watchers.Wait()
	reg := prometheus.NewRegistry()
	for _, p := range parties {
		user, device, _ := strings.Cut(p.name, "/")
		src, err := sourceFactory(p.tone, "")
		if err != nil {
			return err
		}
		ep, err := endpoint.New(endpoint.Config{
			Access:   ln.Addr().String(),
			Roots:    srv.CA().Pool(),
			User:     user,
			Device:   device,
			Password: passwords[user],
			SRTP:     true,
			Codecs:   codecs.DefaultRegistry(),
			// The demo answers through the API, like a person would.
			NewSource: src,
			NewSink:   sinkFactory(p.rec),
			Logger:    log,
		})
		if err != nil {
			return err
		}
		if err := ep.Register(reg); err != nil {
			// Two endpoints in one registry would collide; the demo's
			// admin API shows bob's metrics only.
			log.Debug("metrics not registered", "party", p.name, "err", err)
		}
		p.ep = ep
		p.events = make(chan endpoint.Event, 256)
		evs, cancel := ep.Subscribe()
		defer cancel()
		tl.watch(p.name, evs, p.events, &watchers)
	}
	alice, bob := parties[0], parties[1]
	for _, p := range parties {
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

	// Claim step 1 and presence: bob must see alice online before calling.
	if err := waitOnline(ctx, bob.ep, "alice", 10*time.Second); err != nil {
		return err
	}
	call, err := bob.ep.Dial(ctx, "alice")
	if err != nil {
		return err
	}
	ring, err := waitFor(ctx, alice.events, "alice's phone to ring", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.ringing" })
	if err != nil {
		return err
	}
	if err := alice.ep.Answer(ctx, ring.CallID); err != nil {
		return err
	}
	if _, err := waitFor(ctx, bob.events, "the call to be active at bob", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.active" }); err != nil {
		return err
	}
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := bob.ep.Hangup(ctx, call.ID); err != nil {
		return err
	}
	if _, err := waitFor(ctx, alice.events, "the call to end at alice", 10*time.Second, func(ev endpoint.Event) bool { return ev.Type == "call.ended" }); err != nil {
		return err
	}
	bobCall, err := bob.ep.Call(call.ID)
	if err != nil {
		return err
	}
	aliceCall, err := alice.ep.Call(ring.CallID)
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "Timeline:")
	tl.print(out)
	fmt.Fprintln(out)

	var failed []string
	check := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed = append(failed, fmt.Sprintf(format, args...))
		}
		fmt.Fprintf(out, "  [%s] %s\n", mark, fmt.Sprintf(format, args...))
	}

	fmt.Fprintln(out, "Media report:")
	report := func(from, to string, sender, receiver endpoint.CallInfo) {
		s, r := sender.Media, receiver.Media
		if s == nil || r == nil {
			check(false, "%s -> %s: no media statistics", from, to)
			return
		}
		fmt.Fprintf(out, "  %s -> %s: codec %s, srtp %t, sent %d, received %d, lost %d, late %d, jitter %.2f ms, concealed %d\n",
			from, to, receiver.Codec, receiver.SRTP, s.PacketsSent, r.PacketsReceived, r.Lost, r.Late, r.JitterMS, r.Concealed)
	}
	report("bob/mobile", "alice/laptop", bobCall, aliceCall)
	report("alice/laptop", "bob/mobile", aliceCall, bobCall)
	fmt.Fprintln(out)

	fmt.Fprintln(out, "Checks:")
	expected := uint64(cfg.Duration / (20 * time.Millisecond))
	for _, pair := range []struct {
		from, to string
		s, r     endpoint.CallInfo
	}{{"bob/mobile", "alice/laptop", bobCall, aliceCall}, {"alice/laptop", "bob/mobile", aliceCall, bobCall}} {
		if pair.s.Media == nil || pair.r.Media == nil {
			check(false, "%s -> %s: media statistics missing", pair.from, pair.to)
			continue
		}
		check(pair.r.Media.PacketsReceived >= expected*9/10,
			"%s -> %s: received %d packets, want at least %d (90%% of %s of 20 ms packets)", pair.from, pair.to, pair.r.Media.PacketsReceived, expected*9/10, cfg.Duration)
		check(pair.r.Media.Lost == 0, "%s -> %s: %d packets lost, want 0 on loopback", pair.from, pair.to, pair.r.Media.Lost)
		check(pair.r.SRTP, "%s -> %s: media encrypted with SRTP", pair.from, pair.to)
	}
	check(bobCall.EndReason == "local hangup", "bob's call ended by local hangup (got %q)", bobCall.EndReason)
	check(strings.HasPrefix(aliceCall.EndReason, "remote hangup"), "alice's call ended by remote hangup (got %q)", aliceCall.EndReason)
	for _, p := range []struct {
		party *demoParty
		hears int
		from  string
	}{{alice, bob.tone, "bob"}, {bob, alice.tone, "alice"}} {
		share, dur, err := toneShare(p.party.rec, float64(p.hears), []float64{float64(cfg.Tone.Caller), float64(cfg.Tone.Callee)})
		if err != nil {
			check(false, "%s recording: %v", p.party.name, err)
			continue
		}
		check(share >= 0.9 && dur >= cfg.Duration*8/10,
			"%s heard %s's %d Hz tone in %.0f%% of %.2fs of recorded audio (%s)", p.party.name, p.from, p.hears, share*100, dur.Seconds(), p.party.rec)
	}
	fmt.Fprintln(out)
	if len(failed) > 0 {
		fmt.Fprintf(out, "demo FAILED: %d check(s) failed\n", len(failed))
		return fmt.Errorf("demo: %d check(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	fmt.Fprintln(out, "demo passed: recordings in", dir)
	return nil
}

// waitOnline waits until ep's presence cache shows user online.
func waitOnline(ctx context.Context, ep *endpoint.Endpoint, user string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, b := range ep.Buddies() {
			if b.User == user && b.Status == "online" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s never saw %s online", ep.Identity(), user)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
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

var _ = slog.LevelInfo
