package endpoint

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/wire"
)

func TestCallAnswerHangup(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", withTone(660))
	bob := n.start("bob", "mobile", withTone(440))
	bob.waitOnline(t, "alice/laptop")

	out, err := bob.Dial(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if out.Peer != "alice/laptop" || out.Direction != "outgoing" {
		t.Fatalf("dial returned %+v", out)
	}
	ring := alice.next(t, "call.ringing")
	if ring.CallID != out.ID || ring.Peer != "bob/mobile" {
		t.Fatalf("ringing event %+v, want call %s from bob/mobile", ring, out.ID)
	}
	if err := alice.Answer(context.Background(), "no-such-call"); !isErr(err, ErrNoSuchCall) {
		t.Fatalf("answer unknown call: %v, want ErrNoSuchCall", err)
	}
	if err := bob.Answer(context.Background(), out.ID); !isErr(err, ErrBadState) {
		t.Fatalf("caller answering its own call: %v, want ErrBadState", err)
	}
	if err := alice.Answer(context.Background(), ring.CallID); err != nil {
		t.Fatal(err)
	}
	bobCall := bob.waitState(t, out.ID, "active")
	aliceCall := alice.waitState(t, out.ID, "active")
	if !bobCall.SRTP || !aliceCall.SRTP || bobCall.Codec != "PCMU" || aliceCall.Codec != "PCMU" {
		t.Fatalf("want SRTP PCMU both sides, got bob %+v alice %+v", bobCall, aliceCall)
	}
	// One second of audio each way, then check who heard what.
	eventually(t, "a second of audio at both ends", func() bool {
		return len(alice.sink.samples()) >= 8000 && len(bob.sink.samples()) >= 8000
	})
	cands := []float64{440, 660}
	if f := audio.DominantFrequency(alice.sink.samples()[2000:8000], 8000, cands); f != 440 {
		t.Errorf("alice heard %v Hz, want bob's 440", f)
	}
	if f := audio.DominantFrequency(bob.sink.samples()[2000:8000], 8000, cands); f != 660 {
		t.Errorf("bob heard %v Hz, want alice's 660", f)
	}
	if err := bob.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	ended := alice.next(t, "call.ended")
	if ended.Detail != "remote hangup: local hangup" {
		t.Errorf("alice's end reason %q", ended.Detail)
	}
	final := bob.waitState(t, out.ID, "ended")
	if final.EndReason != "local hangup" || final.Media == nil || final.Media.PacketsSent == 0 {
		t.Errorf("bob's ended call %+v", final)
	}
	af := alice.waitState(t, out.ID, "ended")
	if af.Media == nil || af.Media.Lost != 0 || af.Media.PacketsReceived == 0 {
		t.Errorf("alice's media %+v: want packets and no loss on loopback", af.Media)
	}
	if err := bob.Hangup(context.Background(), out.ID); !isErr(err, ErrNoSuchCall) {
		t.Errorf("hangup of an ended call: %v, want ErrNoSuchCall", err)
	}
}

func TestCallFailures(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop")
	bob := n.start("bob", "mobile")
	bob.waitOnline(t, "alice/laptop")
	ctx := context.Background()

	t.Run("decline", func(t *testing.T) {
		out, err := bob.Dial(ctx, "alice/laptop")
		if err != nil {
			t.Fatal(err)
		}
		ring := alice.next(t, "call.ringing")
		if err := alice.Hangup(ctx, ring.CallID); err != nil {
			t.Fatal(err)
		}
		got := bob.waitState(t, out.ID, "ended")
		if got.EndReason != "rejected: declined local hangup" {
			t.Errorf("caller's reason %q", got.EndReason)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		out, err := bob.Dial(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		alice.next(t, "call.ringing")
		if err := bob.Hangup(ctx, out.ID); err != nil {
			t.Fatal(err)
		}
		if ev := alice.next(t, "call.ended"); ev.Detail != "cancelled by caller" {
			t.Errorf("callee's reason %q", ev.Detail)
		}
	})
	t.Run("offline", func(t *testing.T) {
		if _, err := bob.Dial(ctx, "carol"); !isErr(err, ErrOffline) {
			t.Errorf("call to offline buddy: %v, want ErrOffline", err)
		}
	})
	t.Run("not a buddy", func(t *testing.T) {
		if _, err := bob.Dial(ctx, "mallory"); !isErr(err, ErrUnknownPeer) {
			t.Errorf("call to non-buddy: %v, want ErrUnknownPeer", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		if _, err := bob.Dial(ctx, "nobody"); !isErr(err, ErrUnknownPeer) {
			t.Errorf("call to unknown user: %v, want ErrUnknownPeer", err)
		}
	})
	t.Run("invalid target", func(t *testing.T) {
		for _, target := range []string{"", "Bob", "bob/", "/x", "bob/mobile/x", "bob/mobile"} {
			_, err := bob.Dial(ctx, target)
			if target == "bob/mobile" {
				if !isErr(err, ErrInvalidTarget) || !contains(err.Error(), "this endpoint") {
					t.Errorf("self call: %v", err)
				}
				continue
			}
			if !isErr(err, ErrInvalidTarget) {
				t.Errorf("Dial(%q): %v, want ErrInvalidTarget", target, err)
			}
		}
	})
}

func TestBusy(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile")
	carol := n.start("carol", "desk")
	establish(t, bob, alice)
	carol.waitOnline(t, "alice/laptop")
	out, err := carol.Dial(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := carol.waitState(t, out.ID, "ended")
	if !contains(got.EndReason, "busy") {
		t.Errorf("third caller's reason %q, want busy", got.EndReason)
	}
	if calls := alice.Calls(); len(calls) == 0 || calls[0].State != "active" || calls[0].Peer != "bob/mobile" {
		t.Errorf("alice's first call disturbed: %+v", calls)
	}
	// A phone in a call does not place a second one either.
	if _, err := alice.Dial(context.Background(), "carol"); !isErr(err, ErrBusy) {
		t.Errorf("dial while in a call: %v, want ErrBusy", err)
	}
}

func TestCodecNegotiation(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	cases := []struct {
		name           string
		caller, callee []string
		want           string // "" = rejected
	}{
		// RFC 3264 §6.1: the answerer keeps the offerer's preference.
		{"offer order wins", []string{"PCMA", "PCMU"}, []string{"PCMU", "PCMA"}, "PCMA"},
		{"only common codec", []string{"PCMU", "PCMA"}, []string{"PCMA"}, "PCMA"},
		{"nothing in common", []string{"PCMU"}, []string{"PCMA"}, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev := []string{"a", "b", "c"}[i]
			callee := n.start("alice", dev, withCodecs(tc.callee...), autoAnswer)
			caller := n.start("bob", dev, withCodecs(tc.caller...))
			caller.waitOnline(t, "alice/"+dev)
			out, err := caller.Dial(context.Background(), "alice/"+dev)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				got := caller.waitState(t, out.ID, "ended")
				if !contains(got.EndReason, string(wire.CodeUnsupported)) {
					t.Errorf("reason %q, want %s", got.EndReason, wire.CodeUnsupported)
				}
				return
			}
			got := caller.waitState(t, out.ID, "active")
			in := callee.waitState(t, out.ID, "active")
			if got.Codec != tc.want || in.Codec != tc.want {
				t.Errorf("codec caller %s callee %s, want %s", got.Codec, in.Codec, tc.want)
			}
			_ = caller.Hangup(context.Background(), out.ID)
			caller.waitState(t, out.ID, "ended")
		})
	}
}

func TestPlainRTPWhenSRTPOff(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	off := func(c *Config) { c.SRTP = false }
	n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile", off)
	// A callee that requires SRTP refuses a plain offer.
	bob.waitOnline(t, "alice/laptop")
	out, err := bob.Dial(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := bob.waitState(t, out.ID, "ended"); !contains(got.EndReason, "srtp required") {
		t.Errorf("reason %q, want srtp required", got.EndReason)
	}
	// Two endpoints with SRTP off talk plain RTP.
	carol := n.start("carol", "desk", off, autoAnswer)
	bob.waitOnline(t, "carol/desk")
	bc, cc := establish(t, bob, carol)
	if bc.SRTP || cc.SRTP {
		t.Errorf("want plain RTP: caller %+v callee %+v", bc, cc)
	}
	eventually(t, "audio at carol", func() bool { return len(carol.sink.samples()) >= 1600 })
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	cfg := n.config("alice", "laptop")
	cfg.Password = "wrong"
	ep, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	err = ep.Start(context.Background())
	if !isErr(err, access.ErrAuthFailed) || !contains(err.Error(), "wrong user or password") {
		t.Fatalf("start with a wrong password: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no CA", func(c *Config) { c.Roots = nil }, "no CA"},
		{"bad user", func(c *Config) { c.User = "Alice" }, "user"},
		{"bad device", func(c *Config) { c.Device = "" }, "device"},
		{"no password", func(c *Config) { c.Password = "" }, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := n.config("alice", "laptop")
			tc.mod(&cfg)
			if _, err := New(cfg); err == nil || !contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestEventsAndMetrics(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile")
	reg := prometheus.NewRegistry()
	if err := bob.Register(reg); err != nil {
		t.Fatal(err)
	}
	bc, _ := establish(t, bob, alice)
	_ = bob.Hangup(context.Background(), bc.ID)
	bob.waitState(t, bc.ID, "ended")
	// bob's stream, in order, from the call's start.
	var seen []string
	deadline := time.After(wait)
	for len(seen) == 0 || seen[len(seen)-1] != "call.ended" {
		select {
		case ev := <-bob.events:
			if ev.CallID == bc.ID {
				seen = append(seen, ev.Type)
			}
			if ev.Time.IsZero() {
				t.Errorf("event without a timestamp: %+v", ev)
			}
		case <-deadline:
			t.Fatalf("events so far %v", seen)
		}
	}
	want := []string{"call.dialing", "call.ringing", "call.active", "call.ended"}
	if len(seen) != len(want) {
		t.Fatalf("events %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("events %v, want %v", seen, want)
		}
	}
	if got := metricValue(t, reg, "baton_endpoint_calls_total", map[string]string{"direction": "outgoing", "result": "answered"}); got != 1 {
		t.Errorf("answered outgoing calls metric = %v, want 1", got)
	}
}

// Two endpoints of one process (a gateway) share one registry: each series
// carries the endpoint's identity as the "device" label.
func TestMetricsOfSeveralEndpointsInOneRegistry(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	alice := n.start("alice", "laptop", autoAnswer)
	bob := n.start("bob", "mobile")
	reg := prometheus.NewRegistry()
	for _, p := range []*party{alice, bob} {
		if err := p.Register(reg); err != nil {
			t.Fatalf("register %s: %v", p.Identity(), err)
		}
	}
	// The same endpoint twice is still a clear error, not a silent double count.
	if err := bob.Register(reg); err == nil || !strings.Contains(err.Error(), "bob/mobile") {
		t.Fatalf("second registration of bob/mobile: err = %v, want an error naming the device", err)
	}
	bc, _ := establish(t, bob, alice)
	_ = bob.Hangup(context.Background(), bc.ID)
	bob.waitState(t, bc.ID, "ended")
	if got := metricValue(t, reg, "baton_endpoint_calls_total", map[string]string{"device": "bob/mobile", "direction": "outgoing", "result": "answered"}); got != 1 {
		t.Errorf("bob's answered outgoing calls = %v, want 1", got)
	}
	eventually(t, "alice's incoming call counted", func() bool {
		v, ok := findMetric(t, reg, "baton_endpoint_calls_total", map[string]string{"device": "alice/laptop", "direction": "incoming"})
		return ok && v == 1
	})
	if v, ok := findMetric(t, reg, "baton_endpoint_calls_total", map[string]string{"device": "alice/laptop", "direction": "outgoing"}); ok {
		t.Errorf("alice has an outgoing call series (%v): bob's counts leaked into hers", v)
	}
	for _, dev := range []string{"alice/laptop", "bob/mobile"} {
		if got := metricValue(t, reg, "baton_endpoint_logged_in", map[string]string{"device": dev}); got != 1 {
			t.Errorf("%s logged_in = %v, want 1", dev, got)
		}
	}
}

// metricValue finds one counter or gauge in reg by name and labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := findMetric(t, reg, name, labels)
	if !ok {
		t.Fatalf("metric %s%v not found", name, labels)
	}
	return v
}

// findMetric is metricValue for polling: a metric not there yet is not an
// error.
func findMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
