package policyrules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/handoff"
)

func TestPluginRulesDecide(t *testing.T) {
	t.Parallel()
	s, err := Parse([]byte(`
default: allow
rules:
  - {name: night, time: "22:00-06:00", action: deny, reason: night}
  - {name: weekend, days: [sat, sun], action: deny, reason: weekend}
  - {name: office, kind: pull, time: "09:00-17:00", timezone: UTC, owner: "desk*/*", action: allow, reason: office}
  - {name: other users, same_user: false, action: deny, reason: other user}
  - {name: trunk, peer: "sip:*@trunk.example", action: deny, reason: trunk}
`))
	if err != nil {
		t.Fatal(err)
	}
	mon := func(h, m int) time.Time { return time.Date(2025, 3, 3, h, m, 0, 0, time.Local) } // a Monday
	sat := time.Date(2025, 3, 8, 12, 0, 0, 0, time.Local)
	same := handoff.Request{Kind: handoff.KindPull, Requester: "alice/a", Owner: "alice/b"}
	for _, tc := range []struct {
		name   string
		req    handoff.Request
		at     time.Time
		reason string
	}{
		{"night before midnight", same, mon(23, 0), "night"},
		{"night after midnight", same, mon(5, 59), "night"},
		{"morning is not night", same, mon(6, 0), "no rule matched; default allow"},
		{"weekend", same, sat, "weekend"},
		{"office pull", handoff.Request{Kind: handoff.KindPull, Requester: "bob/x", Owner: "desk1/y"}, time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC), "office"},
		{"office query does not match kind", handoff.Request{Kind: handoff.KindQuery, Requester: "bob/x", Owner: "desk1/y"}, time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC), "other user"},
		{"trunk peer", handoff.Request{Kind: handoff.KindPull, Requester: "alice/a", Owner: "alice/b", Peer: "sip:+4930@trunk.example"}, mon(12, 0), "trunk"},
		{"no peer never matches a peer rule", same, mon(12, 0), "no rule matched; default allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := s.Decide(tc.req, tc.at); d.Reason != tc.reason {
				t.Fatalf("Decide = %+v, want reason %q", d, tc.reason)
			}
		})
	}
}

func TestPluginRulesInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, msg string }{
		{"unknown key", "rules: [{action: allow, colour: red}]", "colour"},
		{"unknown top key", "defaults: deny", "defaults"},
		{"no action", "rules: [{name: x}]", "rule x: action is required"},
		{"bad kind", "rules: [{kind: steal, action: allow}]", `rule #1: kind "steal"`},
		{"bad time", "rules: [{time: 9-5, action: allow}]", `time "9-5"`},
		{"empty window", "rules: [{time: 09:00-09:00, action: allow}]", "empty window"},
		{"bad day", "rules: [{days: [someday], action: allow}]", `day "someday"`},
		{"bad zone", "rules: [{timezone: Mars/Olympus, action: allow}]", "timezone"},
		{"bad default", "default: maybe", `default "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Parse = %v, want ErrInvalid naming %q", err, tc.msg)
			}
		})
	}
	if s, err := Parse(nil); err != nil || s.Len() != 0 {
		t.Fatalf("empty file: %v, %v", s, err)
	}
}

// kind: transfer matches transfer requests only, and peer is the target.
func TestPluginRulesTransfer(t *testing.T) {
	t.Parallel()
	s, err := Parse([]byte(`
default: allow
rules:
  - {name: no transfers to the trunk, kind: transfer, peer: "pstn*", action: deny, reason: "no transfers to the PSTN"}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 3, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		req   handoff.Request
		allow bool
	}{
		{handoff.Request{Kind: handoff.KindTransfer, Requester: "bob/softphone", Owner: "alice/desk", CallID: "c-1", Peer: "pstn/trunk"}, false},
		{handoff.Request{Kind: handoff.KindTransfer, Requester: "bob/softphone", Owner: "alice/desk", CallID: "c-1", Peer: "carol"}, true},
		{handoff.Request{Kind: handoff.KindPull, Requester: "alice/a", Owner: "alice/b", Peer: "pstn/trunk"}, true},
	} {
		d := s.Decide(tc.req, now)
		if d.Allow != tc.allow {
			t.Errorf("%s to %s: %+v, want allow=%v", tc.req.Kind, tc.req.Peer, d, tc.allow)
		}
	}
}
