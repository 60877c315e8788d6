package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Issue 9 §1, push: `baton ctl push ID --to DEVICE` on the device that has
// the call makes the target pull it (the same twelve steps). alice/laptop
// pushes her call with bob to alice/mobile; bob's call never ends and he
// hears the laptop, then the mobile, without a gap; the mobile's handoff
// record holds the twelve steps. A push to a device of another user is
// refused and the call stays.
func TestE2EPush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	bobRec := filepath.Join(dir, "bob.wav")
	bob := startPhone(t, dir, srv, "bob", "desk", pw["bob"], phoneOpts{tone: 440, record: bobRec, autoAnswer: true})
	laptop := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660})
	mobile := startPhone(t, dir, srv, "alice", "mobile", pw["alice"], phoneOpts{tone: 880})
	waitOnlineBuddy(t, dir, laptop.admin, "bob/desk")
	waitOnlineBuddy(t, dir, laptop.admin, "alice/mobile")
	id := dial(t, dir, laptop.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(1500 * time.Millisecond) // bob hears the laptop

	if f := ctl(t, dir, laptop.admin, "push", id, "--to", "bob/desk"); f.code == 0 || !strings.Contains(f.stdout+f.stderr, "not a device of alice") {
		t.Errorf("push to bob/desk: exit %d\n%s", f.code, f)
	}
	if f := ctl(t, dir, laptop.admin, "push", id); f.code == 0 || !strings.Contains(f.stderr, "--to DEVICE is required") {
		t.Errorf("push without --to: exit %d\n%s", f.code, f)
	}
	r := mustCtl(t, dir, laptop.admin, "push", id, "--to", "mobile")
	if row := table(t, r.stdout); len(row) != 1 || row[0]["STATE"] != "ended" || !strings.HasPrefix(row[0]["INFO"], "handed off to alice/mobile") {
		t.Fatalf("ctl push printed:\n%s", r.stdout)
	}
	if row := waitCallState(t, dir, mobile.admin, id, "active"); row["PEER"] != "bob/desk" {
		t.Errorf("the mobile's call is with %q", row["PEER"])
	}
	if row := waitCallState(t, dir, bob.admin, id, "active"); row["PEER"] != "alice/mobile" {
		t.Errorf("bob's call is with %q after the push, want alice/mobile", row["PEER"])
	}
	// The mobile ran the pull: its handoff record holds the twelve steps.
	if hs := mustCtl(t, dir, mobile.admin, "handoffs").stdout; !strings.Contains(hs, "done") || !strings.Contains(hs, "step 12") {
		t.Errorf("the mobile's handoffs:\n%s", hs)
	}
	time.Sleep(1500 * time.Millisecond) // bob hears the mobile
	mustCtl(t, dir, bob.admin, "hangup", id)
	waitCallState(t, dir, mobile.admin, id, "ended")
	bob.stop(t)

	clip, err := audio.ReadWAVFile(bobRec)
	if err != nil {
		t.Fatal(err)
	}
	order, gap := heardToneOrder(clip.Samples)
	t.Logf("bob heard %v, longest silence between tones %v", order, gap)
	if len(order) != 2 || order[0] != 660 || order[1] != 880 {
		t.Errorf("bob heard %v, want the laptop's 660 Hz then the mobile's 880 Hz", order)
	}
	if gap > 200*time.Millisecond {
		t.Errorf("bob heard %v of silence across the push", gap)
	}
}

// A push to a SIP phone behind the gateway is not implemented: the
// gateway's device refuses it with what to do instead, and the call stays.
func TestE2EPushToSIPPhoneRefused(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	runSipp(t, sipp, t.TempDir(), n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
		"-i", "127.0.0.1", "-p", freeUDPPort(t))
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660})
	waitOnlineBuddy(t, n.dir, laptop.admin, "bob/softphone")
	waitOnlineBuddy(t, n.dir, laptop.admin, "alice/desk")
	id := dial(t, n.dir, laptop.admin, "bob")
	waitCallState(t, n.dir, bob.admin, id, "active")
	f := ctl(t, n.dir, laptop.admin, "push", id, "--to", "desk")
	if f.code == 0 || !strings.Contains(f.stderr, "not implemented yet") || !strings.Contains(f.stderr, "pickup code") {
		t.Errorf("push to the SIP desk phone: exit %d\n%s", f.code, f)
	}
	if row := waitCallState(t, n.dir, laptop.admin, id, "active"); row["PEER"] != "bob/softphone" {
		t.Errorf("the laptop's call after the refused push: %v", row)
	}
}
