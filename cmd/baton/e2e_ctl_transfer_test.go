package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Issue 9 §2, `baton ctl transfer` between P2P softphones: alice's laptop
// talks with bob and transfers him to carol. Refused first (a target bob
// cannot call): exit non-zero, the reason, the call kept. Then bob calls
// carol (transfer-request/transfer-result), carol answers, alice's call
// ends; bob hears alice, then carol (a second recording: a new call),
// carol hears bob.
func TestE2ECtlTransferBetweenPhones(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob", "carol", "dave")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	mustBaton(t, dir, "buddy", "add", "alice", "dave", "--data-dir", "data")
	mustBaton(t, dir, "buddy", "add", "bob", "carol", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")

	bobRec, carolRec := filepath.Join(dir, "bob.wav"), filepath.Join(dir, "carol.wav")
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440, record: bobRec, autoAnswer: true})
	laptop := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660})
	carol := startPhone(t, dir, srv, "carol", "phone", pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	waitOnlineBuddy(t, dir, laptop.admin, "bob/mobile")
	waitOnlineBuddy(t, dir, bob.admin, "carol/phone")
	id := dial(t, dir, laptop.admin, "bob")
	waitCallState(t, dir, bob.admin, id, "active")
	time.Sleep(time.Second) // bob hears the laptop for a while

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"transfer", id, "--to", "dave"}, "not a buddy"}, // alice's buddy, not bob's
		{[]string{"transfer", id, "--to", "bob/mobile"}, "a party of the call"},
		{[]string{"transfer", "c-0000000000000000", "--to", "carol"}, "no such call"},
		{[]string{"transfer", id}, `"to" not set`},
	} {
		r := ctl(t, dir, laptop.admin, tc.args...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("ctl %v: exit %d, want an error saying %q\n%s", tc.args, r.code, tc.want, r)
		}
	}
	if row := callRow(t, dir, laptop.admin, id); row == nil || row["STATE"] != "active" {
		t.Fatalf("the laptop's call after the refused transfers: %v", row)
	}

	r := mustCtl(t, dir, laptop.admin, "--timeout", "30s", "transfer", id, "--to", "carol")
	t.Logf("ctl transfer: %s", strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "transferred "+id+": bob/mobile now talks to carol") {
		t.Errorf("ctl transfer printed %q", r.stdout)
	}
	waitCallState(t, dir, laptop.admin, id, "ended")
	waitCallState(t, dir, bob.admin, id, "ended")
	carolID := waitActiveWith(t, dir, carol.admin, "bob/mobile", nil)
	if row := callRow(t, dir, bob.admin, carolID); row == nil || row["STATE"] != "active" || row["PEER"] != "carol/phone" {
		t.Fatalf("bob's call with carol: %v", row)
	}
	time.Sleep(2 * time.Second) // bob and carol talk
	mustCtl(t, dir, carol.admin, "hangup", carolID)
	waitCallState(t, dir, bob.admin, carolID, "ended")
	for _, p := range []*phone{laptop, bob, carol} {
		p.stop(t)
	}
	for _, c := range []struct {
		rec  string
		want float64
	}{{bobRec, 660}, {filepath.Join(dir, "bob-2.wav"), 880}, {carolRec, 440}} {
		clip, err := audio.ReadWAVFile(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		order, _ := heardToneOrder(clip.Samples)
		t.Logf("%s heard %v", filepath.Base(c.rec), order)
		if fmt.Sprint(order) != fmt.Sprint([]float64{c.want}) {
			t.Errorf("%s heard %v, want %v", filepath.Base(c.rec), order, c.want)
		}
	}
}
