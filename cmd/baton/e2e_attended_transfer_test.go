package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Issue 9 §2, `baton ctl transfer ID --attended ID2` between P2P
// softphones: alice's laptop (three call slots) talks with bob (call ID)
// and with carol (call ID2), and joins them. First refused: ID2 a call
// with dave, whom bob may not call (not his buddy): exit non-zero with the
// reason, every call kept. Then bob calls carol with invite-replaces
// (alice's signed Replaces naming ID2), carol takes it in place of ID2,
// and both of alice's calls end. Each recording is one call: bob's first
// holds alice's 660 Hz, his second carol's 880 Hz; carol's first alice's
// 660 Hz, her second bob's 440 Hz.
func TestE2ECtlTransferAttended(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob", "carol", "dave")
	for _, p := range [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"alice", "dave"}, {"bob", "carol"}} {
		mustBaton(t, dir, "buddy", "add", p[0], p[1], "--data-dir", "data")
	}
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	bobRec, carolRec := filepath.Join(dir, "bob.wav"), filepath.Join(dir, "carol.wav")
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, record: bobRec, autoAnswer: true})
	carol := startPhone(t, dir, srv, "carol", "phone", pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	dave := startPhone(t, dir, srv, "dave", "phone", pw["dave"], phoneOpts{tone: 550, autoAnswer: true})
	laptop := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, maxCalls: 3})
	for _, p := range []string{"bob/mobile", "carol/phone", "dave/phone"} {
		waitOnlineBuddy(t, dir, laptop.admin, p)
	}
	waitOnlineBuddy(t, dir, bob.admin, "carol/phone")
	id := dial(t, dir, laptop.admin, "bob")
	id2 := dial(t, dir, laptop.admin, "carol")
	id3 := dial(t, dir, laptop.admin, "dave")
	waitCallState(t, dir, bob.admin, id, "active")
	waitCallState(t, dir, carol.admin, id2, "active")
	waitCallState(t, dir, dave.admin, id3, "active")
	time.Sleep(time.Second) // bob and carol hear the laptop for a while

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"transfer", id, "--attended", id3}, "not a buddy"}, // dave: alice's buddy, not bob's
		{[]string{"transfer", id, "--attended", id}, "joins two different calls"},
		{[]string{"transfer", id, "--attended", "c-0000000000000000"}, "no such call"},
		{[]string{"transfer", id, "--attended", id2, "--to", "carol"}, "exactly one of"},
	} {
		r := ctl(t, dir, laptop.admin, append([]string{"--timeout", "30s"}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("ctl %v: exit %d, want an error saying %q\n%s", tc.args, r.code, tc.want, r)
		}
		t.Logf("ctl %v: %s", tc.args, strings.TrimSpace(r.stderr))
	}
	for _, c := range []struct{ admin, id string }{{laptop.admin, id}, {laptop.admin, id2}, {laptop.admin, id3}, {bob.admin, id}, {carol.admin, id2}} {
		if row := callRow(t, dir, c.admin, c.id); row == nil || row["STATE"] != "active" {
			t.Fatalf("call %s after the refused transfers: %v", c.id, row)
		}
	}
	mustCtl(t, dir, laptop.admin, "hangup", id3)

	r := mustCtl(t, dir, laptop.admin, "--timeout", "30s", "transfer", id, "--attended", id2)
	t.Logf("ctl transfer --attended: %s", strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "transferred "+id+": bob/mobile now talks to carol/phone") || !strings.Contains(r.stdout, id2+" replaced") {
		t.Errorf("ctl transfer --attended printed %q", r.stdout)
	}
	for _, c := range []struct{ admin, id string }{{laptop.admin, id}, {laptop.admin, id2}, {bob.admin, id}, {carol.admin, id2}} {
		waitCallState(t, dir, c.admin, c.id, "ended")
	}
	newID := waitActiveWith(t, dir, carol.admin, "bob/mobile", nil)
	if row := callRow(t, dir, bob.admin, newID); row == nil || row["STATE"] != "active" || row["PEER"] != "carol/phone" {
		t.Fatalf("bob's call with carol: %v", row)
	}
	time.Sleep(2 * time.Second) // bob and carol talk
	mustCtl(t, dir, carol.admin, "hangup", newID)
	waitCallState(t, dir, bob.admin, newID, "ended")
	for _, p := range []*phone{laptop, bob, carol, dave} {
		p.stop(t)
	}
	for _, c := range []struct {
		rec  string
		want float64
	}{{bobRec, 660}, {filepath.Join(dir, "bob-2.wav"), 880}, {carolRec, 660}, {filepath.Join(dir, "carol-2.wav"), 440}} {
		clip, err := audio.ReadWAVFile(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		order, gap := heardToneOrder(clip.Samples)
		t.Logf("%s heard %v (longest gap %v, %v of audio)", filepath.Base(c.rec), order, gap, time.Duration(len(clip.Samples))*time.Second/8000)
		if fmt.Sprint(order) != fmt.Sprint([]float64{c.want}) {
			t.Errorf("%s heard %v, want %v", filepath.Base(c.rec), order, c.want)
		}
	}
}
