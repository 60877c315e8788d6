package simphone

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"time"
)

// dominantHz is the strongest of the candidate tones in pcm (Goertzel).
func dominantHz(pcm []int16, candidates ...float64) float64 {
	best, bestPow := 0.0, 0.0
	for _, hz := range candidates {
		k := 2 * math.Cos(2*math.Pi*hz/8000)
		var s1, s2 float64
		for _, v := range pcm {
			s := float64(v) + k*s1 - s2
			s2, s1 = s1, s
		}
		if p := s1*s1 + s2*s2 - k*s1*s2; p > bestPow {
			best, bestPow = hz, p
		}
	}
	return best
}

// Two phones call each other directly (the callee stands in for the
// gateway): the callee answers at once, each hears the other's tone, and
// the caller's BYE ends the call on both sides.
func TestPhoneToPhone(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("127.0.0.1")
	callee, err := Start(Config{User: "carol", Gateway: "127.0.0.1:9", IP: ip, Tone: 660, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	caller, err := Start(Config{User: "alice", Gateway: callee.Addr().String(), IP: ip, Tone: 440})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := caller.Call(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	var in *Call
	select {
	case in = <-callee.Incoming():
	case <-ctx.Done():
		t.Fatal("the callee never answered")
	}
	if in.Peer != "alice" {
		t.Errorf("the callee sees the call from %q, want alice", in.Peer)
	}
	for len(out.Heard()) < 8000 || len(in.Heard()) < 8000 {
		select {
		case <-ctx.Done():
			t.Fatalf("a second of audio never arrived: caller heard %d samples, callee %d", len(out.Heard()), len(in.Heard()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if hz := dominantHz(out.Heard(), 440, 660); hz != 660 {
		t.Errorf("the caller heard %v Hz, want 660", hz)
	}
	if hz := dominantHz(in.Heard(), 440, 660); hz != 440 {
		t.Errorf("the callee heard %v Hz, want 440", hz)
	}
	if err := out.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Call{out, in} {
		select {
		case <-c.Ended():
		case <-ctx.Done():
			t.Fatal("a side of the call never ended after BYE")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("127.0.0.1")
	for _, c := range []Config{
		{Gateway: "127.0.0.1:5060", IP: ip, Tone: 440},
		{User: "a", Gateway: "nohost", IP: ip, Tone: 440},
		{User: "a", Gateway: "127.0.0.1:0", IP: ip, Tone: 440},
		{User: "a", Gateway: "127.0.0.1:5060", IP: ip, Tone: 0},
		{User: "a", Gateway: "127.0.0.1:5060", Tone: 440},
	} {
		if p, err := Start(c); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded, want an error", c)
		}
	}
}
