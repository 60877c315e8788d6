package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestByHandCall follows the README's "Running the pieces by hand" with the
// real binary: users (one password from a file, one from standard input),
// an access server, two phones, and a call placed, watched and hung up with
// `baton ctl`. Each recording must hold the other party's tone.
func TestByHandCall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	alicePW := writeFile(t, dir, "alice.pw", "alice-secret\n")
	r := mustBaton(t, dir, "user", "add", "alice", "--data-dir", "data", "--password-file", alicePW)
	if !strings.Contains(r.stdout, "user alice added") {
		t.Fatalf("unexpected output:\n%s", r)
	}
	// bob's password comes on standard input, as `... < bob.pw` would.
	r = baton(t, dir, "bob-secret\n", "user", "add", "bob", "--data-dir", "data")
	if r.code != 0 || !strings.Contains(r.stdout, "user bob added") {
		t.Fatalf("user add with the password on stdin:\n%s", r)
	}
	bobPW := writeFile(t, dir, "bob.pw", "bob-secret\n")
	r = mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	if !strings.Contains(r.stdout, "alice and bob are buddies") {
		t.Fatalf("unexpected output:\n%s", r)
	}

	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	if srv.ca != filepath.Join("data", "ca.crt") {
		t.Errorf("access server says endpoints trust %q, want data/ca.crt", srv.ca)
	}
	if _, err := os.Stat(filepath.Join(dir, srv.ca)); err != nil {
		t.Fatalf("the CA file the access server printed: %v", err)
	}

	bob := startPhone(t, dir, srv, "bob", "mobile", bobPW, phoneOpts{tone: 440, record: "bob.wav"})
	// The event stream starts before alice logs in, so her presence
	// arriving on it proves the stream is connected before the call.
	events := start(t, "ctl events", dir, "ctl", "--admin", bob.admin, "events")
	alice := startPhone(t, dir, srv, "alice", "laptop", alicePW, phoneOpts{tone: 660, record: "alice.wav", autoAnswer: true})

	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")
	events.waitStdout(t, regexp.MustCompile(`presence\s+-\s+alice/laptop\s+online`))

	id := dial(t, dir, bob.admin, "alice")
	row := waitCallState(t, dir, bob.admin, id, "active")
	if row["PEER"] != "alice/laptop" || row["DIR"] != "out" || row["SRTP"] != "yes" || row["CODEC"] != "PCMU" {
		t.Errorf("bob's active call: %v, want out to alice/laptop, PCMU over SRTP", row)
	}
	row = waitCallState(t, dir, alice.admin, id, "active")
	if row["PEER"] != "bob/mobile" || row["DIR"] != "in" {
		t.Errorf("alice's active call: %v, want in from bob/mobile", row)
	}
	time.Sleep(2 * time.Second) // let the tones play

	r = mustCtl(t, dir, bob.admin, "hangup", id)
	// What `ctl hangup` prints about the call's new state is checked by
	// TestE2EHangupPrintsEndedCall; here only that it names the call.
	if rows := table(t, r.stdout); len(rows) != 1 || rows[0]["ID"] != id {
		t.Errorf("ctl hangup printed %v, want call %s\n%s", rows, id, r)
	}
	if row := waitCallState(t, dir, alice.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "remote hangup") {
		t.Errorf("alice's call ended with %q, want remote hangup", row["INFO"])
	}
	if row := waitCallState(t, dir, bob.admin, id, "ended"); row["INFO"] != "local hangup" {
		t.Errorf("bob's call ended with %q, want local hangup", row["INFO"])
	}

	checkHears(t, filepath.Join(dir, "alice.wav"), 440, time.Second) // bob's tone
	checkHears(t, filepath.Join(dir, "bob.wav"), 660, time.Second)   // alice's tone

	// The event stream saw the whole call, in order.
	events.waitStdout(t, regexp.MustCompile(`call\.ended\s+`+regexp.QuoteMeta(id)))
	if code := events.stop(t); code != 0 {
		t.Errorf("ctl events exited %d after SIGINT, want 0", code)
	}
	var seen []string
	for _, line := range strings.Split(events.stdout.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == id && f[3] == "alice/laptop" {
			seen = append(seen, f[1])
		}
	}
	want := []string{"call.dialing", "call.ringing", "call.active", "call.ended"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("bob's events for call %s: %v, want %v\n%s", id, seen, want, events.stdout.String())
	}
	for _, p := range []*phone{alice, bob} {
		if code := p.stop(t); code != 0 {
			t.Errorf("%s exited %d after SIGINT, want 0", p.id, code)
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("access server exited %d after SIGINT, want 0", code)
	}
}
