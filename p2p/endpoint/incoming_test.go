package endpoint

import (
	"context"
	"github.com/baton-voice/baton/p2p/wire"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// incomingLog records what OnIncoming and OnEvent saw, in order.
type incomingLog struct {
	mu    sync.Mutex
	calls []IncomingCall
	order []string // "incoming:ID" and "event:TYPE:ID"
}

func (l *incomingLog) add(s string) {
	l.mu.Lock()
	l.order = append(l.order, s)
	l.mu.Unlock()
}

func (l *incomingLog) snapshot() ([]IncomingCall, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]IncomingCall(nil), l.calls...), append([]string(nil), l.order...)
}

// TestOnIncomingDecides: OnIncoming sees each incoming call once, typed,
// right after its ringing event and before any other, and its Decision
// is carried out: the default follows AutoAnswer, Ring overrides it,
// Answer uses the decision's sink, Decline tells the caller the code.
func TestOnIncomingDecides(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		autoAnswer bool
		decision   Decision
		wantState  string // callee's state once settled
		wantResult string // caller's result once the call ended ("" = not ended)
	}{
		{"default with auto-answer answers", true, Decision{}, "active", ""},
		{"default without auto-answer rings", false, Decision{}, "ringing", ""},
		{"ring overrides auto-answer", true, Decision{Action: IncomingRing}, "ringing", ""},
		{"answer", false, Decision{Action: IncomingAnswer}, "active", ""},
		{"decline busy", true, Decision{Action: IncomingDecline, Code: wire.CodeBusy, Reason: "on another line"}, "ended", "busy"},
		{"decline default code", false, Decision{Action: IncomingDecline}, "ended", "declined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			log := &incomingLog{}
			own := &frameSink{}
			desk := n.start("alice", "desk", withTone(440), func(c *Config) {
				c.AutoAnswer = tc.autoAnswer
				c.OnEvent = func(ev Event) {
					if ev.CallID != "" {
						log.add("event:" + ev.Type + ":" + ev.CallID)
					}
				}
				c.OnIncoming = func(in IncomingCall) Decision {
					log.mu.Lock()
					log.calls = append(log.calls, in)
					log.mu.Unlock()
					log.add("incoming:" + in.ID)
					d := tc.decision
					if d.Action == IncomingAnswer {
						d.Options.Sink = own
					}
					return d
				}
			})
			bob := n.start("bob", "laptop", withTone(660))
			bob.waitOnline(t, "alice/desk")
			out, err := bob.Dial(context.Background(), "alice/desk")
			if err != nil {
				t.Fatal(err)
			}
			in := desk.waitState(t, out.ID, tc.wantState)
			if tc.wantResult != "" {
				if got := bob.waitState(t, out.ID, "ended"); got.Result != tc.wantResult {
					t.Errorf("caller's result %q (%s), want %q", got.Result, got.EndReason, tc.wantResult)
				}
			}
			if tc.decision.Action == IncomingAnswer {
				eventually(t, "the decision's sink to hear bob", func() bool { return len(own.samples()) > 1600 })
				if len(desk.sink.samples()) != 0 {
					t.Error("the endpoint's own sink got audio; the decision named another")
				}
			}
			calls, order := log.snapshot()
			if len(calls) != 1 {
				t.Fatalf("OnIncoming called %d times, want once", len(calls))
			}
			got := calls[0]
			if got.ID != out.ID || got.Peer.String() != "bob/laptop" || got.Codec == "" || got.Codec != in.Codec || got.Time.IsZero() || got.PeerGateway != "" {
				t.Errorf("OnIncoming saw %+v; call %+v", got, in)
			}
			var mine []string
			for _, o := range order {
				if strings.HasSuffix(o, ":"+out.ID) {
					mine = append(mine, strings.TrimSuffix(o, ":"+out.ID))
				}
			}
			if len(mine) < 2 || mine[0] != "event:call.ringing" || mine[1] != "incoming" {
				t.Errorf("order of the call's events at the callee: %v, want call.ringing, then OnIncoming, then the rest", mine)
			}
			if tc.wantState == "ringing" {
				// Still up to a person: answer it now.
				if err := desk.Answer(context.Background(), out.ID); err != nil {
					t.Fatal(err)
				}
				desk.waitState(t, out.ID, "active")
			}
		})
	}
}

// TestEventKinds: every kind round-trips through its Type string, every
// event type the endpoint's code emits is a known kind, and the events of
// a real call arrive typed.
func TestEventKinds(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for k := KindUnknown + 1; k < numEventKinds; k++ {
		s := k.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("kind %d has type %q (empty, unknown or a duplicate)", int(k), s)
		}
		seen[s] = true
		if ParseEventKind(s) != k {
			t.Errorf("ParseEventKind(%q) = %v, want %v", s, ParseEventKind(s), k)
		}
	}
	if ParseEventKind("no.such") != KindUnknown || EventKind(-1).String() != "unknown" || numEventKinds.String() != "unknown" {
		t.Error("unknown types and kinds are not KindUnknown / \"unknown\"")
	}

	// The emit sites: literal types, and the handoff and push outcomes
	// built from a state.
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`emit\(Event\{Type: "([a-z.-]+)"[,}]`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			found++
			if ParseEventKind(m[1]) == KindUnknown {
				t.Errorf("%s emits %q, which no EventKind names", f, m[1])
			}
		}
	}
	// Emit sites with a named constant type (EventDTMF, EventHeld...).
	for _, typ := range []string{EventDTMF, EventHeld, EventResumed, EventCodecChanged} {
		if ParseEventKind(typ) == KindUnknown {
			t.Errorf("%q is no EventKind", typ)
		}
	}
	if found < 20 {
		t.Errorf("found only %d emit sites; the pattern no longer matches the code", found)
	}
	for _, state := range []string{"done", "rolled-back", "call-ended", "failed"} {
		for _, prefix := range []string{"handoff.", "push."} {
			if ParseEventKind(prefix+state) == KindUnknown {
				t.Errorf("%s%s is no EventKind", prefix, state)
			}
		}
	}
	if ParseEventKind("push.refused") == KindUnknown {
		t.Error("push.refused is no EventKind")
	}

	// A real call's events carry their kind.
	n := newNetwork(t)
	desk := n.start("alice", "desk", autoAnswer)
	bob := n.start("bob", "laptop")
	evs, cancel := desk.Subscribe()
	defer cancel()
	watch := &party{Endpoint: desk.Endpoint, events: evs}
	out, _ := establish(t, bob, desk)
	if err := bob.Hangup(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	for _, want := range []EventKind{KindCallRinging, KindCallActive, KindCallEnded} {
		ev := watch.next(t, want.String())
		if ev.Kind != want {
			t.Errorf("%s event has kind %v", ev.Type, ev.Kind)
		}
	}
	// An event emitted by kind only gets its Type.
	ev := Event{Kind: KindMediaRebind}
	ev.typed()
	if ev.Type != "media.rebind" {
		t.Errorf("typed event by kind has type %q", ev.Type)
	}
}
