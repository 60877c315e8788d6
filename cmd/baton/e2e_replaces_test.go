package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
	"github.com/baton-voice/baton/p2p/control"
)

// waitSippLog waits for a line starting with prefix in a sipp log
// (-trace_logs, written by the scenario's <log> actions) and returns it;
// the scenario ending first (done) fails the test.
func waitSippLog(t *testing.T, path, prefix string, done chan error) string {
	t.Helper()
	var line string
	eventually(t, pollTimeout, "sipp to log "+prefix, func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the sipp scenario ended before logging %q: %v", prefix, err)
		default:
		}
		f, err := os.Open(path)
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); strings.HasPrefix(s, prefix) {
				line = s
				return true, ""
			}
		}
		return false, "not yet"
	})
	return line
}

// Issue 9 §1 role A (a) and §3, with the real binary and sipp as the desk
// phone: alice's desk subscribes to her dialogs (RFC 4235) and sees the
// laptop's call with bob appear in a NOTIFY; it takes the call with an
// INVITE whose Replaces header (RFC 3891) is built from that NOTIFY. The
// laptop's call is handed off, bob keeps the call and hears the desk, the
// subscription sees the laptop's dialog end, and the desk un-SUBSCRIBEs
// (final NOTIFY). A Replaces for the dialog that just ended gets 481, and
// carol's phone may not watch alice's calls (403).
func TestE2EBridgeDialogEventReplaces(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bobRec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 880, record: bobRec, autoAnswer: true})
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660})
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)

	// Another user's phone may not watch alice's calls.
	runSipp(t, sipp, sdir, n.sipUDP, "dialog_subscribe_403.xml", "-s", "alice", "-key", "deskuser", "carol",
		"-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", freeUDPPort(t))

	logFile := filepath.Join(sdir, "subscribe.log")
	sub := make(chan error, 1)
	go func() {
		sub <- sippRun(sipp, sdir, n.sipUDP, "dialog_subscribe.xml", "-s", "alice", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", freeUDPPort(t), "-trace_logs", "-log_file", logFile)
	}()
	waitSippLog(t, logFile, "subscribed", sub)

	waitOnlineBuddy(t, n.dir, laptop.admin, "bob/softphone")
	id := dial(t, n.dir, laptop.admin, "bob")
	waitCallState(t, n.dir, bob.admin, id, "active")
	replaces := strings.TrimPrefix(waitSippLog(t, logFile, "replaces=", sub), "replaces=")
	t.Logf("the desk's NOTIFY gave Replaces: %s", replaces)
	if !strings.HasPrefix(replaces, id+";to-tag=") {
		t.Fatalf("Replaces %q from the NOTIFY does not name the laptop's call %s", replaces, id)
	}
	time.Sleep(2 * time.Second) // bob hears the laptop for a while

	desk := startSIPMedia(t, "127.0.0.1", 440)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "invite_replaces.xml", "-s", "alice", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-key", "replaces", replaces,
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk.addr().Port), "-d", "6000",
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	if row := waitCallState(t, n.dir, laptop.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "handed off to alice/desk") {
		t.Errorf("the laptop's call ended with %q", row["INFO"])
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" || row["PEER"] != "alice/desk" {
		t.Fatalf("bob's call after the Replaces: %v, want active with alice/desk", row)
	}
	// Issue 9 §5: the gateway's record of the Replaces pull. alice/desk
	// ran it (role A) from the laptop, all twelve steps, committed at
	// step 7; its SIP messages are the desk's INVITE with Replaces (first
	// challenged), the 200 once the pull committed, and the ACK. bob (C)
	// and the laptop (B) are P2P devices: no records of the gateway's.
	rec := waitGatewayRecord(t, n.gwAdmin, "the gateway's record of the Replaces pull", func(h control.GatewayHandoff) bool {
		return h.Kind == "pull" && h.Device == "alice/desk"
	})
	if rec.Role != "A" || rec.State != "done" || rec.CallID != id || rec.TimeToCommitMS == nil ||
		!slices.Equal(stepNumbers(rec), []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) || !strings.HasSuffix(rec.From, "laptop") {
		t.Errorf("the Replaces pull's record: %+v, steps %v", rec.HandoffInfo, stepNumbers(rec))
	}
	checkSIPSeq(t, rec, "received INVITE", "sent 407 INVITE", "received ACK", "received INVITE", "sent 200 INVITE", "received ACK")
	// The laptop's dialog just ended: the same Replaces matches nothing.
	runSipp(t, sipp, sdir, n.sipUDP, "invite_replaces_481.xml", "-s", "alice", "-key", "deskuser", "alice",
		"-au", "alice", "-ap", "alice-sip-secret", "-key", "replaces", replaces,
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", "40000", "-i", "127.0.0.1", "-p", freeUDPPort(t))

	// The subscription saw the laptop's dialog terminate, then ended.
	select {
	case err := <-sub:
		if err != nil {
			t.Fatalf("the desk's subscription: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk's subscription scenario did not end")
	}
	if got := waitSippLog(t, logFile, "terminated=", sub); got != "terminated="+id {
		t.Errorf("the subscription saw %q end, want the laptop's call %s", got, id)
	}
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("the desk phone's dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("sipp's call did not end")
	}
	waitCallState(t, n.dir, bob.admin, id, "ended")

	var clip *audio.Clip
	eventually(t, 10*time.Second, "bob's recording", func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(bobRec)
		return err == nil, fmt.Sprint(err)
	})
	order, gap := heardToneOrder(clip.Samples)
	t.Logf("bob heard tones %v, longest silence between them %v", order, gap)
	if len(order) < 2 || order[0] != 660 || order[len(order)-1] != 440 {
		t.Errorf("bob heard %v, want the laptop's 660 Hz then the desk's 440 Hz", order)
	}
	// As for the pickup code: the desk is answered before the pull, so its
	// RTP flows when the gateway streams it to bob (docs/transfers.md); this
	// bound (a silence between tones) only says the audio came through.
	if gap > 400*time.Millisecond {
		t.Errorf("bob heard %v of silence between the laptop and the desk", gap)
	}
	desk.close()
	if heard, _ := heardToneOrder(desk.pcm()); len(heard) == 0 || heard[len(heard)-1] != 880 {
		t.Errorf("the desk phone heard %v, want bob's 880 Hz", heard)
	}
}

// Issue 9 §1 role A and B and §4 with a real SIP user agent: baresip is
// alice's desk phone (it has no dialog-event pickup, so it dials the
// pickup code). alice's laptop softphone talks to bob; baresip dials *8 and
// takes the call (the gateway is A); then the laptop pulls it back from the
// desk (the gateway is B, baresip gets BYE after the commit). bob's call
// never ends; he hears the laptop, the desk, the laptop again; baresip's
// recording holds bob's tone.
func TestE2EBaresipPickupAndHandBack(t *testing.T) {
	t.Parallel()
	n := startBridgeNet(t)
	bobRec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 880, record: bobRec, autoAnswer: true})
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660})
	bs := startBaresipWith(t, n.sipUDP, "alice-sip-secret", 440)
	waitOnlineBuddy(t, n.dir, laptop.admin, "alice/desk")
	waitOnlineBuddy(t, n.dir, laptop.admin, "bob/softphone")

	id := dial(t, n.dir, laptop.admin, "bob")
	waitCallState(t, n.dir, bob.admin, id, "active")
	time.Sleep(2 * time.Second) // bob hears the laptop

	bs.command(t, "dial", "sip:*8@"+n.sipUDP)
	if row := waitCallState(t, n.dir, laptop.admin, id, "ended"); !strings.HasPrefix(row["INFO"], "handed off to alice/desk") {
		t.Fatalf("the laptop's call ended with %q, want handed off to alice/desk", row["INFO"])
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" || row["PEER"] != "alice/desk" {
		t.Fatalf("bob's call after baresip's pickup: %v, want active with alice/desk", row)
	}
	time.Sleep(3 * time.Second) // bob hears the desk

	r := mustCtl(t, n.dir, laptop.admin, "pull", "--from", "desk")
	if !strings.Contains(r.stdout, "done") {
		t.Fatalf("ctl pull did not report done:\n%s", r.stdout)
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" || row["PEER"] != "alice/laptop" {
		t.Fatalf("bob's call after the laptop pulled it back: %v, want active with alice/laptop", row)
	}
	// baresip got BYE (re reports it as the peer resetting the session)
	// before bob's call ends.
	eventually(t, pollTimeout, "baresip's call to end with the gateway's BYE", func() (bool, string) {
		out := bs.out.String()
		return strings.Contains(out, "session closed: Connection reset by peer") && strings.Contains(out, "terminated (duration"), tail(out, 500)
	})
	heard := bs.heard(t)
	time.Sleep(2 * time.Second) // bob hears the laptop again
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitCallState(t, n.dir, bob.admin, id, "ended")

	checkHears(t, heard, 880, 2*time.Second)
	var clip *audio.Clip
	eventually(t, 10*time.Second, "bob's recording", func() (bool, string) {
		var err error
		clip, err = audio.ReadWAVFile(bobRec)
		return err == nil, fmt.Sprint(err)
	})
	order, gap := heardToneOrder(clip.Samples)
	t.Logf("bob heard tones %v, longest silence between them %v", order, gap)
	if len(order) != 3 || order[0] != 660 || order[1] != 440 || order[2] != 660 {
		t.Errorf("bob heard %v, want the laptop's 660 Hz, baresip's 440 Hz, the laptop's 660 Hz", order)
	}
	if gap > 400*time.Millisecond {
		t.Errorf("bob heard %v of silence between two devices", gap)
	}
}
