package endpoint

import (
	"context"
	"sync"
	"testing"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/wire"
)

// A gateway gives each call its own audio (DialWith, AnswerWith), learns of
// calls through OnEvent, and passes a SIP phone's refusal on with its code
// (Decline), which the caller sees as the call's Result.
func TestPerCallAudioOnEventAndDecline(t *testing.T) {
	t.Parallel()
	n := newNetwork(t)
	var mu sync.Mutex
	var seen []Event
	alice := n.start("alice", "desk", func(c *Config) {
		c.OnEvent = func(ev Event) { mu.Lock(); seen = append(seen, ev); mu.Unlock() }
		c.NewSource = func(string) (audio.Source, error) { return audio.NewTone(1000, 8000, 0.3) } // must not be used
	})
	bob := n.start("bob", "mobile", withTone(1000)) // must not be heard by alice
	bob.waitOnline(t, "alice/desk")

	// Call 1: bob's Dial uses bob's own per-call tone; alice answers with
	// hers; each hears the other's per-call tone, not the factories'.
	bobTone, err := audio.NewTone(440, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	aliceTone, err := audio.NewTone(660, 8000, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	bobSink, aliceSink := &frameSink{}, &frameSink{}
	out, err := bob.DialWith(context.Background(), "alice/desk", CallOptions{Source: bobTone, Sink: bobSink})
	if err != nil {
		t.Fatal(err)
	}
	ring := alice.next(t, "call.ringing")
	if err := alice.AnswerWith(context.Background(), ring.CallID, CallOptions{Source: aliceTone, Sink: aliceSink}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a second of per-call audio both ways", func() bool {
		return len(aliceSink.samples()) >= 8000 && len(bobSink.samples()) >= 8000
	})
	cands := []float64{440, 660, 1000}
	if f := audio.DominantFrequency(aliceSink.samples()[2000:8000], 8000, cands); f != 440 {
		t.Errorf("alice's per-call sink heard %v Hz, want bob's per-call 440", f)
	}
	if f := audio.DominantFrequency(bobSink.samples()[2000:8000], 8000, cands); f != 660 {
		t.Errorf("bob's per-call sink heard %v Hz, want alice's per-call 660", f)
	}
	if len(alice.sink.samples()) != 0 || len(bob.sink.samples()) != 0 {
		t.Errorf("the endpoints' default sinks got audio of a call with its own sink")
	}
	if err := alice.AnswerWith(context.Background(), ring.CallID, CallOptions{}); !isErr(err, ErrBadState) {
		t.Errorf("answering an active call: %v, want ErrBadState", err)
	}
	if err := bob.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	alice.waitState(t, out.ID, "ended")
	if got := bob.waitState(t, out.ID, "ended").Result; got != "completed" {
		t.Errorf("hung-up call's result %q, want completed", got)
	}

	// Call 2: alice declines as busy; bob's call ends with that code.
	out2, err := bob.Dial(context.Background(), "alice/desk")
	if err != nil {
		t.Fatal(err)
	}
	ring2 := alice.next(t, "call.ringing")
	if err := alice.Decline(context.Background(), ring2.CallID, wire.CodeBusy, "desk phone busy"); err != nil {
		t.Fatal(err)
	}
	ended := bob.waitState(t, out2.ID, "ended")
	if ended.Result != string(wire.CodeBusy) || !contains(ended.EndReason, "desk phone busy") {
		t.Errorf("declined call at the caller: result %q reason %q, want busy with the phone's reason", ended.Result, ended.EndReason)
	}
	if err := alice.Decline(context.Background(), ring2.CallID, wire.CodeBusy, ""); !isErr(err, ErrNoSuchCall) && !isErr(err, ErrBadState) {
		t.Errorf("declining an ended call: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, ev := range seen {
		if ev.CallID == ring.CallID || ev.CallID == ring2.CallID {
			types = append(types, ev.Type)
		}
	}
	want := []string{"call.ringing", "call.active", "call.ended", "call.ringing", "call.ended"}
	if len(types) != len(want) {
		t.Fatalf("OnEvent saw %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("OnEvent saw %v, want %v", types, want)
		}
	}
}
