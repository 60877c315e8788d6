package main

import (
	"strings"
	"testing"
)

// TestCallFailures drives the ways a call does not happen, with real
// phones: an offline or unknown target is refused at once by `ctl call`;
// busy, declined and cancelled calls end with a reason that says so, on the
// side that did not cause it.
func TestCallFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// alice has two devices: laptop answers at once, desk rings until
	// someone answers or hangs up. dave is bob's buddy but never logs in;
	// erin exists but is nobody's buddy.
	pw := addUsers(t, dir, "data", "alice", "bob", "carol", "dave", "erin")
	for _, pair := range [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"bob", "dave"}} {
		mustBaton(t, dir, "buddy", "add", pair[0], pair[1], "--data-dir", "data")
	}
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	laptop := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, autoAnswer: true})
	desk := startPhone(t, dir, srv, "alice", "desk", pw["alice"], phoneOpts{tone: 550})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440})
	carol := startPhone(t, dir, srv, "carol", "mobile", pw["carol"], phoneOpts{tone: 880})
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")
	waitOnlineBuddy(t, dir, bob.admin, "alice/desk")
	waitOnlineBuddy(t, dir, carol.admin, "alice/laptop")

	t.Run("offline", func(t *testing.T) {
		r := ctl(t, dir, bob.admin, "call", "dave")
		if r.code == 0 || !strings.Contains(r.stderr, "offline") || !strings.Contains(r.stderr, "dave") {
			t.Errorf("call to a buddy who is not logged in: want a non-zero exit naming dave as offline\n%s", r)
		}
	})
	t.Run("not a buddy", func(t *testing.T) {
		for _, target := range []string{"erin", "nobody", "erin/laptop"} {
			r := ctl(t, dir, bob.admin, "call", target)
			if r.code == 0 || !strings.Contains(r.stderr, "unknown user or not a buddy") {
				t.Errorf("call to %s: want a non-zero exit with \"unknown user or not a buddy\"\n%s", target, r)
			}
		}
	})
	t.Run("invalid target", func(t *testing.T) {
		r := ctl(t, dir, bob.admin, "call", "Alice!")
		if r.code == 0 || !strings.Contains(r.stderr, "invalid call target") {
			t.Errorf("call to a malformed name: want a non-zero exit with \"invalid call target\"\n%s", r)
		}
	})
	t.Run("unknown call id", func(t *testing.T) {
		r := ctl(t, dir, bob.admin, "hangup", "c-nosuchcall")
		if r.code == 0 || !strings.Contains(r.stderr, "no such call") {
			t.Errorf("hangup of an unknown call: want a non-zero exit with \"no such call\"\n%s", r)
		}
	})
	t.Run("busy", func(t *testing.T) {
		first := dial(t, dir, bob.admin, "alice/laptop")
		waitCallState(t, dir, bob.admin, first, "active")
		waitCallState(t, dir, laptop.admin, first, "active")
		second := dial(t, dir, carol.admin, "alice/laptop")
		row := waitCallState(t, dir, carol.admin, second, "ended")
		if !strings.Contains(row["INFO"], "busy") {
			t.Errorf("carol's call to a phone in a call ended with %q, want busy", row["INFO"])
		}
		// The call in progress is not disturbed.
		if row := callRow(t, dir, laptop.admin, first); row == nil || row["STATE"] != "active" {
			t.Errorf("alice's call with bob after carol's attempt: %v, want active", row)
		}
		mustCtl(t, dir, bob.admin, "hangup", first)
		waitCallState(t, dir, laptop.admin, first, "ended")
	})
	t.Run("declined", func(t *testing.T) {
		id := dial(t, dir, bob.admin, "alice/desk")
		waitCallState(t, dir, desk.admin, id, "ringing")
		mustCtl(t, dir, desk.admin, "hangup", id)
		row := waitCallState(t, dir, bob.admin, id, "ended")
		if !strings.HasPrefix(row["INFO"], "rejected: declined") {
			t.Errorf("bob's call ended with %q, want \"rejected: declined ...\"", row["INFO"])
		}
		if row := waitCallState(t, dir, desk.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "declined") {
			t.Errorf("alice's declined call ended with %q, want \"declined ...\"", row["INFO"])
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		id := dial(t, dir, bob.admin, "alice/desk")
		waitCallState(t, dir, desk.admin, id, "ringing")
		mustCtl(t, dir, bob.admin, "hangup", id)
		if row := waitCallState(t, dir, desk.admin, id, "ended"); row["INFO"] != "cancelled by caller" {
			t.Errorf("alice's call ended with %q, want \"cancelled by caller\"", row["INFO"])
		}
		if row := waitCallState(t, dir, bob.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "cancelled") {
			t.Errorf("bob's cancelled call ended with %q, want \"cancelled ...\"", row["INFO"])
		}
	})
	t.Run("answer by ctl after failures", func(t *testing.T) {
		// After all of the above both phones still take a normal call.
		id := dial(t, dir, bob.admin, "alice/desk")
		waitCallState(t, dir, desk.admin, id, "ringing")
		mustCtl(t, dir, desk.admin, "answer", id)
		waitCallState(t, dir, bob.admin, id, "active")
		eventually(t, pollTimeout, "media to flow to bob", func() (bool, string) {
			row := callRow(t, dir, bob.admin, id)
			return row != nil && packetsReceived(t, row) > 10, strings.TrimSpace(row["INFO"])
		})
		mustCtl(t, dir, desk.admin, "hangup", id)
		if row := waitCallState(t, dir, bob.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "remote hangup") {
			t.Errorf("bob's call ended with %q, want remote hangup", row["INFO"])
		}
	})
	t.Run("max calls", func(t *testing.T) {
		// alice/conf takes two calls at once (--max-calls 2); the third
		// caller hears busy, and the two calls in progress go on.
		conf := startPhone(t, dir, srv, "alice", "conf", pw["alice"], phoneOpts{tone: 770, autoAnswer: true, maxCalls: 2})
		waitOnlineBuddy(t, dir, bob.admin, "alice/conf")
		waitOnlineBuddy(t, dir, carol.admin, "alice/conf")
		first := dial(t, dir, bob.admin, "alice/conf")
		second := dial(t, dir, carol.admin, "alice/conf")
		waitCallState(t, dir, bob.admin, first, "active")
		waitCallState(t, dir, carol.admin, second, "active")
		third := dial(t, dir, desk.admin, "alice/conf")
		if row := waitCallState(t, dir, desk.admin, third, "ended"); !strings.Contains(row["INFO"], "busy") {
			t.Errorf("a third call to a phone with --max-calls 2 ended with %q, want busy", row["INFO"])
		}
		for _, id := range []string{first, second} {
			if row := callRow(t, dir, conf.admin, id); row == nil || row["STATE"] != "active" {
				t.Errorf("alice/conf's call %s after the third attempt: %v, want active", id, row)
			}
		}
		mustCtl(t, dir, bob.admin, "hangup", first)
		mustCtl(t, dir, carol.admin, "hangup", second)
		waitCallState(t, dir, conf.admin, first, "ended")
		waitCallState(t, dir, conf.admin, second, "ended")
	})
}
