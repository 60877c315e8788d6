package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestByHandPull is the handoff with three real phones, driven with
// `baton ctl` as docs/operations.md shows: alice's desk is in a call with
// bob; her laptop lists the desk's sessions, pulls the call (the twelve
// steps), then moves its media from 127.0.0.2 to 127.0.0.7; bob never sees
// the call end until he hangs up, and hears the desk, then the laptop.
func TestByHandPull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")

	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, record: "bob.wav", autoAnswer: true})
	desk := startPhone(t, dir, srv, "alice", "desk", pw["alice"], phoneOpts{tone: 660, record: "desk.wav"})
	events := start(t, "bob's events", dir, "ctl", "--admin", bob.admin, "events", "call.")
	waitOnlineBuddy(t, dir, desk.admin, "bob/mobile")
	id := dial(t, dir, desk.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(time.Second) // bob hears the desk for a while

	laptop := start(t, "alice/laptop", dir, "phone", "--access", srv.addr, "--ca", srv.ca, "--user", "alice", "--device", "laptop",
		"--password-file", pw["alice"], "--admin", "127.0.0.1:0", "--tone", "880", "--record", "laptop.wav", "--media-ip", "127.0.0.2")
	lapAdmin := laptop.waitStdout(t, phoneReady)[3]

	// What the desk would report to a session query.
	sessions := table(t, mustCtl(t, dir, lapAdmin, "sessions", "--device", "desk").stdout)
	if len(sessions) != 1 || sessions[0]["CALL ID"] != id || sessions[0]["PEER"] != "bob/mobile" {
		t.Fatalf("sessions on the desk: %v, want call %s", sessions, id)
	}

	r := mustCtl(t, dir, lapAdmin, "pull", "--from", "desk")
	for step := 1; step <= 12; step++ {
		if !regexp.MustCompile(`step\s+` + strconv.Itoa(step) + `\s`).MatchString(r.stdout) {
			t.Errorf("ctl pull printed no step %d:\n%s", step, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "done") {
		t.Errorf("ctl pull did not report done:\n%s", r.stdout)
	}
	if row := waitCallState(t, dir, bob.admin, id, "active"); row["PEER"] != "alice/laptop" {
		t.Errorf("bob's call is with %q after the pull, want alice/laptop", row["PEER"])
	}
	if row := waitCallState(t, dir, desk.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "handed off to alice/laptop") {
		t.Errorf("the desk's call ended with %q", row["INFO"])
	}
	waitCallState(t, dir, lapAdmin, id, "active")
	time.Sleep(time.Second)

	// The laptop's address changes.
	r = mustCtl(t, dir, lapAdmin, "rebind", "--ip", "127.0.0.7")
	if !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, "127.0.0.7:") {
		t.Errorf("ctl rebind:\n%s", r.stdout)
	}
	if st := status(t, dir, lapAdmin); st["media_ip"] != "127.0.0.7" {
		t.Errorf("laptop media_ip %v after rebind", st["media_ip"])
	}
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(time.Second)

	// While in the call, the laptop cannot pull another one.
	if f := ctl(t, dir, lapAdmin, "pull", "--from", "desk"); f.code == 0 || !strings.Contains(f.stdout+f.stderr, "already in a call") {
		t.Errorf("pull while in a call: exit %d\n%s", f.code, f)
	}

	mustCtl(t, dir, bob.admin, "hangup", id)
	if row := waitCallState(t, dir, lapAdmin, id, "ended"); !strings.HasPrefix(row["INFO"], "remote hangup") {
		t.Errorf("laptop's call ended with %q", row["INFO"])
	}
	// A pull from the idle desk finds nothing and says so.
	if f := ctl(t, dir, lapAdmin, "pull", "--from", "desk"); f.code == 0 || !strings.Contains(f.stdout+f.stderr, "no active session") {
		t.Errorf("pull from an idle desk: exit %d\n%s", f.code, f)
	}
	// bob's stream of call events: one call, never ended before his hangup.
	events.waitStdout(t, regexp.MustCompile(`call\.ended\s+`+regexp.QuoteMeta(id)))
	if n := strings.Count(events.stdout.String(), "call.ended"); n != 1 {
		t.Errorf("bob saw %d call.ended events, want exactly his own hangup\n%s", n, events.stdout.String())
	}
	for _, p := range []*proc{laptop, desk.proc, bob.proc, events} {
		p.stop(t)
	}
	order, _, err := toneOrder(filepath.Join(dir, "bob.wav"), []float64{440, 660, 880})
	if err != nil || order != "660,880" {
		t.Errorf("bob heard %q (%v), want the desk's 660 Hz then the laptop's 880 Hz", order, err)
	}
	checkHears(t, filepath.Join(dir, "laptop.wav"), 440, time.Second)
}
