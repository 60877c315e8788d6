package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 8 §6, `baton ctl` against the gateway: the control API serves
// each online device under /v1/endpoints/{user}/{device}/ (`ctl
// --endpoint alice/desk ...`). Click to dial: `ctl --endpoint alice/desk
// call bob` rings alice's SIP desk phone (sipp answers with its RTP on the
// test's socket), then calls bob from alice/desk with the phone's audio;
// bob hears the desk, the desk hears bob; `ctl --endpoint alice/desk
// hangup` ends both (sipp gets BYE). What only the phone can do (answer,
// pull) is refused with a clear error; a device that is not online and a
// gateway without --endpoint say so.
func TestE2EGatewayCtlEndpoints(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bobRec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 660, record: bobRec, autoAnswer: true})

	sdir := t.TempDir()
	deskPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", deskPort)
	desk := startSIPMedia(t, "127.0.0.1", 440)
	phone := sippServe(t, sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1",
		"-key", "rtpport", fmt.Sprint(desk.addr().Port), "-i", "127.0.0.1", "-p", deskPort)

	eventually(t, pollTimeout, "alice/desk among the gateway's endpoints", func() (bool, string) {
		r := ctl(t, n.dir, n.gwAdmin, "endpoints")
		return r.code == 0 && strings.Contains(r.stdout, "alice/desk"), r.String()
	})
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	// Without --endpoint the gateway has no calls of its own to list.
	if r := ctl(t, n.dir, n.gwAdmin, "calls"); r.code == 0 || !strings.Contains(r.stderr, "no-endpoint") {
		t.Errorf("ctl calls against the gateway without --endpoint: want a no-endpoint error\n%s", r)
	}
	// carol has no phone registered: her device is not online.
	if r := ctl(t, n.dir, n.gwAdmin, "--endpoint", "carol/desk", "calls"); r.code == 0 || !strings.Contains(r.stderr, "carol/desk is not online") {
		t.Errorf("ctl --endpoint carol/desk calls: want \"carol/desk is not online\"\n%s", r)
	}
	if r := ctl(t, n.dir, n.gwAdmin, "--endpoint", "nobody/desk", "calls"); r.code == 0 || !strings.Contains(r.stderr, "not a device of this gateway") {
		t.Errorf("ctl --endpoint nobody/desk calls: want \"not a device of this gateway\"\n%s", r)
	}

	r := mustCtl(t, n.dir, n.gwAdmin, "--endpoint", "alice/desk", "--timeout", "40s", "call", "bob")
	rows := table(t, r.stdout)
	if len(rows) != 1 || rows[0]["ID"] == "" {
		t.Fatalf("click to dial printed no call:\n%s", r)
	}
	id := rows[0]["ID"]
	waitCallState(t, n.dir, bob.admin, id, "active")
	eventually(t, pollTimeout, "the call active at the gateway's alice/desk", func() (bool, string) {
		r := ctl(t, n.dir, n.gwAdmin, "--endpoint", "alice/desk", "calls")
		return strings.Contains(r.stdout, id) && strings.Contains(r.stdout, "active") && strings.Contains(r.stdout, "bob/laptop"), r.String()
	})
	if r := ctl(t, n.dir, n.gwAdmin, "--endpoint", "alice/desk", "answer", id); r.code == 0 || !strings.Contains(r.stderr, "on the phone") {
		t.Errorf("ctl --endpoint alice/desk answer: want a refusal saying it is done on the phone\n%s", r)
	}
	if r := ctl(t, n.dir, n.gwAdmin, "--endpoint", "alice/desk", "pull", "--from", "laptop"); r.code == 0 || !strings.Contains(r.stderr, "from the phone") {
		t.Errorf("ctl --endpoint alice/desk pull: want a refusal naming the phone\n%s", r)
	}
	time.Sleep(3 * time.Second) // both sides hear each other for a while
	mustCtl(t, n.dir, n.gwAdmin, "--endpoint", "alice/desk", "hangup", id)
	waitCallState(t, n.dir, bob.admin, id, "ended")
	select {
	case err := <-phone:
		if err != nil {
			t.Fatalf("alice's desk phone: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the gateway never sent BYE to the desk phone after ctl hangup")
	}
	desk.close()
	checkHears(t, bobRec, 440, time.Second)
	if o, _ := heardToneOrder(desk.pcm()); len(o) != 1 || o[0] != 660 {
		t.Errorf("the desk phone heard %v, want bob's 660 Hz", o)
	}
}
