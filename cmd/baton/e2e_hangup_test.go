package main

import (
	"strings"
	"testing"
)

// TestE2EHangupPrintsEndedCall checks what `baton ctl answer` and
// `baton ctl hangup` print: the call's state after the operation (the
// control API answers POST .../answer and .../hangup with the updated call,
// docs/control-api.md). After a hangup, a cancel or a decline the call is
// over, so the printed row must say "ended" and why, not the state it had
// before.
func TestE2EHangupPrintsEndedCall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440})
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")

	for _, c := range []struct {
		name     string
		answer   bool   // alice answers with ctl answer first
		hangupBy *phone // who runs ctl hangup
		want     string // INFO of the printed row
	}{
		{name: "hangup of an active call", answer: true, hangupBy: bob, want: "local hangup"},
		{name: "caller cancels", hangupBy: bob, want: "cancelled: local hangup"},
		{name: "callee declines", hangupBy: alice, want: "declined: local hangup"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := dial(t, dir, bob.admin, "alice/laptop")
			waitCallState(t, dir, alice.admin, id, "ringing")
			if c.answer {
				r := mustCtl(t, dir, alice.admin, "answer", id)
				if rows := table(t, r.stdout); len(rows) != 1 || rows[0]["STATE"] != "active" {
					t.Errorf("ctl answer printed %v, want the call active\n%s", rows, r)
				}
				waitCallState(t, dir, bob.admin, id, "active")
			}
			r := mustCtl(t, dir, c.hangupBy.admin, "hangup", id)
			rows := table(t, r.stdout)
			if len(rows) != 1 || rows[0]["ID"] != id || rows[0]["STATE"] != "ended" || rows[0]["INFO"] != c.want {
				t.Errorf("ctl hangup printed %v, want call %s ended with %q\n%s", rows, id, c.want, r)
			}
			// Whatever the printout said, the call does end on both sides.
			for _, p := range []*phone{alice, bob} {
				row := waitCallState(t, dir, p.admin, id, "ended")
				if p == c.hangupBy && row["INFO"] != c.want {
					t.Errorf("%s: call ended with %q, want %q", p.id, row["INFO"], c.want)
				}
				if p != c.hangupBy && strings.TrimSpace(row["INFO"]) == "" {
					t.Errorf("%s: call ended without a reason", p.id)
				}
			}
		})
	}
}
