package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAccessRestartDoesNotDropCall stops the access server in the middle of
// a call. The access server is never on the call path (DESIGN.md §1), so
// the call stays up with audio flowing both ways; when the server comes back
// on the same address and data directory, both phones log in again on their
// own.
func TestAccessRestartDoesNotDropCall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access (first run)", dir, "data", "127.0.0.1:0")
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, autoAnswer: true})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440})
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")

	id := dial(t, dir, bob.admin, "alice")
	waitCallState(t, dir, bob.admin, id, "active")
	waitCallState(t, dir, alice.admin, id, "active")

	if code := srv.stop(t); code != 0 {
		t.Errorf("access server exited %d after SIGINT, want 0", code)
	}
	// Both phones notice that their access session is gone...
	for _, p := range []*phone{alice, bob} {
		eventually(t, pollTimeout, p.id+" to notice the access server is gone", func() (bool, string) {
			st := status(t, dir, p.admin)
			return st["logged_in"] == false, fmt.Sprint(st)
		})
	}
	// New calls wait for the login...
	if r := ctl(t, dir, bob.admin, "call", "alice"); r.code == 0 || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("a new call without an access session: want a non-zero exit with \"not logged in\"\n%s", r)
	}
	// ...but the call in progress does not: media keeps arriving on both
	// sides.
	before := map[*phone]uint64{}
	for _, p := range []*phone{alice, bob} {
		before[p] = packetsReceived(t, waitCallState(t, dir, p.admin, id, "active"))
	}
	time.Sleep(2 * time.Second)
	for _, p := range []*phone{alice, bob} {
		row := callRow(t, dir, p.admin, id)
		if row == nil || row["STATE"] != "active" {
			t.Fatalf("%s: call %s is %v two seconds after the access server stopped, want active", p.id, id, row)
		}
		// 2 s of 20 ms packets is 100; a tenth of that proves audio still
		// flows without measuring how fast.
		if got := packetsReceived(t, row); got < before[p]+10 {
			t.Errorf("%s: packets received went from %d to %d in 2 s without the access server, want at least %d more",
				p.id, before[p], got, 10)
		}
	}

	again := startAccess(t, "access (second run)", dir, "data", srv.addr)
	if again.fp != srv.fp {
		t.Errorf("the restarted access server has CA %s, want %s", again.fp, srv.fp)
	}
	// The phones retry with backoff (up to 30 s between attempts): poll
	// generously.
	for _, p := range []*phone{alice, bob} {
		eventually(t, 60*time.Second, p.id+" to log in again", func() (bool, string) {
			st := status(t, dir, p.admin)
			return st["logged_in"] == true, fmt.Sprint(st)
		})
	}
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")
	if row := callRow(t, dir, bob.admin, id); row == nil || row["STATE"] != "active" {
		t.Errorf("bob's call after the access server came back: %v, want still active", row)
	}
	mustCtl(t, dir, bob.admin, "hangup", id)
	if row := waitCallState(t, dir, alice.admin, id, "ended"); row["INFO"] == "" {
		t.Errorf("alice's call ended without a reason: %v", row)
	}
}
