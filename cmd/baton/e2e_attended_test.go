package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/control"
)

// escapeReplaces percent-encodes a Replaces value for a Refer-To URI
// header (RFC 3261 §19.1.1: ';', '=' and '@' may not appear raw).
func escapeReplaces(v string) string {
	return strings.NewReplacer("%", "%25", "@", "%40", ";", "%3B", "=", "%3D").Replace(v)
}

// attendedRun runs call_refer_attended.xml as alice's desk phone calling
// service and REFERring it to referto with Replaces (percent-encoded), and
// returns the final sipfrag sipp logged.
func attendedRun(t *testing.T, sipp, sdir string, n *bridgeNet, sipPort, service, referto, replaces string, rtpPort int) string {
	t.Helper()
	logFile := filepath.Join(sdir, "attended-"+service+".log")
	if err := sippRun(sipp, sdir, n.sipUDP, "call_refer_attended.xml", "-s", service, "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(rtpPort), "-key", "referto", referto, "-key", "replaces", replaces,
		"-trace_logs", "-log_file", logFile, "-i", "127.0.0.1", "-p", sipPort); err != nil {
		t.Fatalf("the desk phone's attended transfer: %v", err)
	}
	b, _ := os.ReadFile(logFile)
	i := strings.Index(string(b), "final sipfrag: ")
	if i < 0 {
		t.Fatalf("sipp logged no final sipfrag:\n%s", b)
	}
	line, _, _ := strings.Cut(string(b)[i+len("final sipfrag: "):], "\n")
	return strings.TrimSpace(line)
}

// Issue 9 §2, attended transfer from a SIP phone (RFC 5589 §7, RFC 3891):
// alice's desk phone (two sipp instances, one per dialog) has a call with
// bob (P2P) and one with carol (P2P), both through the gateway. On the
// call with bob it sends REFER with Refer-To: <sip:carol@gw?Replaces=..>
// naming the call with carol. The gateway answers 202, joins bob and carol
// (each P2P call relayed into the other), NOTIFYs 100 then 200, and sends
// BYE on carol's dialog (call_until_replaced.xml fails without it); the
// desk sends BYE on bob's. bob and carol talk: each hears the desk, then
// the other; bob's hangup ends carol's call.
func TestE2EGatewayAttendedTransfer(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bobRec, carolRec := filepath.Join(n.dir, "bob.wav"), filepath.Join(n.dir, "carol.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, record: bobRec, autoAnswer: true})
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	deskBob := startSIPMedia(t, "127.0.0.1", 660)
	deskCarol := startSIPMedia(t, "127.0.0.1", 550)
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)

	// Call 2, the desk with carol: it logs its dialog, then waits for the
	// gateway's BYE.
	call2Log := filepath.Join(sdir, "call2.log")
	call2 := make(chan error, 1)
	go func() {
		call2 <- sippRun(sipp, sdir, n.sipUDP, "call_until_replaced.xml", "-s", "carol", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(deskCarol.addr().Port),
			"-trace_logs", "-log_file", call2Log, "-i", "127.0.0.1", "-p", freeUDPPort(t))
	}()
	replaces := strings.TrimPrefix(waitSippLog(t, call2Log, "replaces=", call2), "replaces=")
	t.Logf("the desk's dialog with carol: Replaces %s", replaces)
	time.Sleep(time.Second) // carol hears the desk for a while

	// Call 1, the desk with bob: after 2 s, REFER to carol with Replaces.
	if frag := attendedRun(t, sipp, sdir, n, sipPort, "bob", "carol", escapeReplaces(replaces), deskBob.addr().Port); frag != "SIP/2.0 200" {
		t.Fatalf("the final NOTIFY said %q, want SIP/2.0 200", frag)
	}
	select {
	case err := <-call2:
		if err != nil {
			t.Fatalf("the desk's dialog with carol (the gateway's BYE expected): %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk's dialog with carol did not end")
	}
	// Issue 9 §5: the gateway's record of the attended REFER. alice/desk
	// is the transferee of kind refer, done, a step per sipfrag it
	// reported (100, 200); its SIP messages, on the dialog with bob, are
	// the REFER, the 202, each NOTIFY and its 200 (the desk's BYE comes
	// after the window).
	rec := waitGatewayRecord(t, n.gwAdmin, "the gateway's record of the attended REFER", func(h control.GatewayHandoff) bool {
		return h.Kind == "refer" && h.Device == "alice/desk"
	})
	var frags []string
	for _, s := range rec.Steps {
		frags = append(frags, s.Title)
	}
	if rec.Role != "transferee" || rec.State != "done" || rec.Peer != "bob/softphone" || rec.TimeToCommitMS == nil ||
		len(frags) != 2 || !strings.Contains(frags[0], "SIP/2.0 100") || !strings.Contains(frags[1], "SIP/2.0 200") {
		t.Errorf("the attended REFER's record: %+v, steps %q", rec.HandoffInfo, frags)
	}
	checkSIPSeq(t, rec, "received REFER", "sent 202 REFER", "sent NOTIFY", "received 200 NOTIFY", "sent NOTIFY", "received 200 NOTIFY")
	// Both desk dialogs are over; bob and carol are joined.
	var bobID, carolID string
	eventually(t, pollTimeout, "bob's and carol's calls active after the transfer", func() (bool, string) {
		b := table(t, ctl(t, n.dir, bob.admin, "calls").stdout)
		c := table(t, ctl(t, n.dir, carol.admin, "calls").stdout)
		bobID, carolID = "", ""
		for _, r := range b {
			if r["STATE"] == "active" {
				bobID = r["ID"]
			}
		}
		for _, r := range c {
			if r["STATE"] == "active" {
				carolID = r["ID"]
			}
		}
		return bobID != "" && carolID != "", fmt.Sprint(b, c)
	})
	time.Sleep(2 * time.Second) // bob and carol talk
	mustCtl(t, n.dir, bob.admin, "hangup", bobID)
	waitCallState(t, n.dir, carol.admin, carolID, "ended")
	bob.stop(t)
	carol.stop(t)

	for _, c := range []struct {
		rec  string
		want []float64
	}{{bobRec, []float64{660, 880}}, {carolRec, []float64{550, 440}}} {
		clip, err := audio.ReadWAVFile(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		order, gap := heardToneOrder(clip.Samples)
		t.Logf("%s heard %v (longest silence between tones %v)", filepath.Base(c.rec), order, gap)
		if fmt.Sprint(order) != fmt.Sprint(c.want) {
			t.Errorf("%s heard %v, want %v", filepath.Base(c.rec), order, c.want)
		}
	}
}

// An attended REFER whose Replaces names no dialog: the final NOTIFY
// carries 481 and the call stays with the phone until it hangs up.
func TestE2EGatewayAttendedTransferUnknownDialog(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	desk := startSIPMedia(t, "127.0.0.1", 660)
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	frag := attendedRun(t, sipp, sdir, n, sipPort, "bob", "carol", escapeReplaces("no-such-call@127.0.0.1;to-tag=abc;from-tag=def"), desk.addr().Port)
	if frag != "SIP/2.0 481" {
		t.Errorf("the final NOTIFY said %q, want SIP/2.0 481", frag)
	}
	// The phone talked 3 s after the failed transfer, then hung up: bob's
	// call was kept until that BYE.
	eventually(t, pollTimeout, "bob's call ended by the desk's BYE", func() (bool, string) {
		rows := table(t, ctl(t, n.dir, bob.admin, "calls").stdout)
		return len(rows) == 1 && rows[0]["STATE"] == "ended", fmt.Sprint(rows)
	})
	if rep := desk.report(); rep.packets < 150 {
		t.Errorf("the desk heard only %d packets: the call did not go on after the failed transfer", rep.packets)
	}
}

// An attended REFER whose Replaces names a dialog of another SIP account
// (carol's desk phone calling alice's laptop) gets the same NOTIFY 481 as
// an unknown dialog: alice's phone learns nothing of carol's dialogs, and
// neither call moves.
func TestE2EGatewayAttendedTransferOtherAccount(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 880, autoAnswer: true})
	carolDesk := startSIPMedia(t, "127.0.0.1", 550)
	aliceDesk := startSIPMedia(t, "127.0.0.1", 660)
	sdir := t.TempDir()
	carolPort, alicePort := freeUDPPort(t), freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", carolPort)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", alicePort)

	carolLog := filepath.Join(sdir, "carol.log")
	carolCall := make(chan error, 1)
	go func() {
		carolCall <- sippRun(sipp, sdir, n.sipUDP, "call_until_replaced.xml", "-s", "alice+laptop", "-key", "deskuser", "carol",
			"-au", "carol", "-ap", "carol-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(carolDesk.addr().Port),
			"-trace_logs", "-log_file", carolLog, "-i", "127.0.0.1", "-p", carolPort)
	}()
	replaces := strings.TrimPrefix(waitSippLog(t, carolLog, "replaces=", carolCall), "replaces=")
	laptopID := waitActiveWith(t, n.dir, laptop.admin, "carol/desk", carolCall)

	frag := attendedRun(t, sipp, sdir, n, alicePort, "bob", "carol", escapeReplaces(replaces), aliceDesk.addr().Port)
	if frag != "SIP/2.0 481" {
		t.Errorf("the final NOTIFY for carol's dialog said %q, want SIP/2.0 481 (as for an unknown one)", frag)
	}
	// Only the gateway's log tells the two apart.
	eventually(t, 5*time.Second, "the gateway logging the other account's dialog", func() (bool, string) {
		return strings.Contains(n.gw.stderr.String(), "Replaces names another account's dialog"), ""
	})
	if row := callRow(t, n.dir, laptop.admin, laptopID); row == nil || row["STATE"] != "active" || row["PEER"] != "carol/desk" {
		t.Fatalf("carol's call after alice's REFER: %v, want active with carol/desk", row)
	}
	eventually(t, pollTimeout, "bob's call ended by alice's desk's BYE", func() (bool, string) {
		rows := table(t, ctl(t, n.dir, bob.admin, "calls").stdout)
		return len(rows) == 1 && rows[0]["STATE"] == "ended", fmt.Sprint(rows)
	})
	// carol's phone waits for the gateway's BYE: the laptop hangs up.
	mustCtl(t, n.dir, laptop.admin, "hangup", laptopID)
	select {
	case err := <-carolCall:
		if err != nil {
			t.Fatalf("carol's desk dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("carol's desk dialog did not end")
	}
}
