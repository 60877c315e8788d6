package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// deskAnswers registers alice's desk phone (sipp, register.xml) on a new
// port and has it answer the next call (answer_until_bye.xml: it fails on
// any request but the gateway's BYE), its RTP on media.
func deskAnswers(t *testing.T, sipp string, n *bridgeNet, media *sipMedia) <-chan error {
	t.Helper()
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	phone := make(chan error, 1)
	go func() {
		phone <- sippServeWait(sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port),
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	return phone
}

// checkDeskHeard waits for the desk's scenario (it must have seen only
// INVITE, ACK and the final BYE) and checks its RTP: one SSRC, nothing
// lost, no timestamp jump, the tones want in order.
func checkDeskHeard(t *testing.T, what string, phone <-chan error, media *sipMedia, want []float64) {
	t.Helper()
	select {
	case err := <-phone:
		if err != nil {
			t.Fatalf("%s: the desk phone's dialog saw something unexpected: %v", what, err)
		}
	case <-time.After(runTimeout):
		t.Fatalf("%s: the desk phone's call did not end", what)
	}
	media.close()
	rep := media.report()
	t.Logf("%s: the desk heard %d packets, %d lost, %d SSRCs, %d timestamp jumps, longest gap %v", what, rep.packets, rep.lost, rep.ssrcs, rep.tsJumps, rep.maxGap)
	if rep.packets < 150 || rep.ssrcs != 1 || rep.lost != 0 || rep.tsJumps != 0 {
		t.Errorf("%s: the desk's RTP across the transfer: %d packets, %d SSRCs, %d lost, %d timestamp jumps; want >= 150, 1, 0, 0",
			what, rep.packets, rep.ssrcs, rep.lost, rep.tsJumps)
	}
	order, gap := heardToneOrder(media.pcm())
	t.Logf("%s: the desk heard tones %v, longest silence between them %v", what, order, gap)
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("%s: the desk heard %v, want %v", what, order, want)
	}
}

// Issue 9 §2, `ctl transfer --attended` with a SIP phone behind the
// gateway as either party. bob's softphone (the transferor, two call
// slots) talks with alice's desk phone (sipp) and with carol's softphone.
// X the desk phone: the desk's device (the gateway) calls carol with
// invite-replaces, the desk's SIP leg as its audio; carol takes it in
// place of her call with bob. Y the desk phone: carol calls the desk's
// device with invite-replaces, which moves the desk's SIP leg to that
// call. Either way the desk phone gets no SIP message until the final BYE
// (answer_until_bye.xml fails on any other), its RTP is one stream, and it
// hears bob's 440 Hz, then carol's 880 Hz; carol's recording of the new
// call holds the desk's 660 Hz, and each of bob's calls ends.
func TestE2ECtlTransferAttendedSIPPhone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNetWith(t, func(dir string, _ map[string]string) string {
		mustBaton(t, dir, "buddy", "add", "bob", "carol", "--data-dir", filepath.Join(dir, "data"))
		return ""
	})
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, maxCalls: 2})
	carolRec := filepath.Join(n.dir, "carol.wav")
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	waitOnlineBuddy(t, n.dir, bob.admin, "carol/laptop")

	for i, tc := range []struct {
		name   string
		deskIs string // "x" or "y"
	}{{"desk phone transferred (X)", "x"}, {"desk phone the target (Y)", "y"}} {
		media := startSIPMedia(t, "127.0.0.1", 660)
		phone := deskAnswers(t, sipp, n, media)
		waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
		deskID := dial(t, n.dir, bob.admin, "alice/desk")
		waitCallState(t, n.dir, bob.admin, deskID, "active")
		carolID := dial(t, n.dir, bob.admin, "carol/laptop")
		waitCallState(t, n.dir, carol.admin, carolID, "active")
		time.Sleep(1500 * time.Millisecond) // the desk and carol hear bob
		id, id2, x, y := deskID, carolID, "alice/desk", "carol/laptop"
		if tc.deskIs == "y" {
			id, id2, x, y = carolID, deskID, "carol/laptop", "alice/desk"
		}
		r := mustCtl(t, n.dir, bob.admin, "--timeout", "30s", "transfer", id, "--attended", id2)
		t.Logf("%s: ctl transfer --attended: %s", tc.name, strings.TrimSpace(r.stdout))
		if !strings.Contains(r.stdout, x+" now talks to "+y) || !strings.Contains(r.stdout, id2+" replaced") {
			t.Errorf("%s: ctl transfer --attended printed %q", tc.name, r.stdout)
		}
		waitCallState(t, n.dir, bob.admin, deskID, "ended")
		waitCallState(t, n.dir, bob.admin, carolID, "ended")
		newID := waitActiveWith(t, n.dir, carol.admin, "alice/desk", phone)
		time.Sleep(2 * time.Second) // the desk and carol talk
		mustCtl(t, n.dir, carol.admin, "hangup", newID)
		checkDeskHeard(t, tc.name, phone, media, []float64{440, 880})
		// carol's recordings: one per call, two per case.
		for j, want := range []float64{440, 660} {
			rec := filepath.Join(n.dir, fmt.Sprintf("carol-%d.wav", 2*i+j+1))
			if 2*i+j == 0 {
				rec = carolRec
			}
			var clip *audio.Clip
			eventually(t, 10*time.Second, "a readable recording "+rec, func() (bool, string) {
				var err error
				clip, err = audio.ReadWAVFile(rec)
				return err == nil, fmt.Sprint(err)
			})
			order, _ := heardToneOrder(clip.Samples)
			t.Logf("%s: %s heard %v", tc.name, filepath.Base(rec), order)
			if fmt.Sprint(order) != fmt.Sprint([]float64{want}) {
				t.Errorf("%s: %s heard %v, want %v", tc.name, filepath.Base(rec), order, want)
			}
		}
	}
}
