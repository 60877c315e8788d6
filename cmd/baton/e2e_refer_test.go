package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// referRun runs call_refer.xml as alice's desk phone calling service and
// transferring to referto, and returns the final sipfrag sipp logged.
func referRun(t *testing.T, sipp string, n *bridgeNet, service, referto string, rtpPort int) string {
	t.Helper()
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	if err := sippRun(sipp, sdir, n.sipUDP, "call_refer.xml", "-s", service, "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(rtpPort), "-key", "referto", referto,
		"-trace_logs", "-i", "127.0.0.1", "-p", sipPort); err != nil {
		t.Fatalf("the desk phone's transfer: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(sdir, "call_refer_*_logs.log"))
	var all strings.Builder
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		all.Write(b)
	}
	i := strings.Index(all.String(), "final sipfrag: ")
	if i < 0 {
		t.Fatalf("sipp logged no final sipfrag:\n%s", all.String())
	}
	line, _, _ := strings.Cut(all.String()[i+len("final sipfrag: "):], "\n")
	return strings.TrimSpace(line)
}

// Issue 9 §2, blind transfer from a SIP phone (RFC 3515, RFC 5589 §6):
// alice's desk phone (sipp) talks with bob (P2P) and REFERs him to carol
// (P2P). The gateway answers 202, NOTIFYs 100 then 200, and relays bob's
// call into a new call to carol; the desk hangs up; bob and carol talk,
// each hearing the other; bob's hangup ends carol's call too.
func TestE2EGatewayBlindTransfer(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bobRec, carolRec := filepath.Join(n.dir, "bob.wav"), filepath.Join(n.dir, "carol.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, record: bobRec, autoAnswer: true})
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	desk := startSIPMedia(t, "127.0.0.1", 660)

	if frag := referRun(t, sipp, n, "bob", "carol", desk.addr().Port); frag != "SIP/2.0 200" {
		t.Fatalf("the final NOTIFY said %q, want SIP/2.0 200", frag)
	}
	// The desk has hung up; bob's call goes on, relayed to carol's.
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
	}{{bobRec, []float64{660, 880}}, {carolRec, []float64{440}}} {
		clip, err := audio.ReadWAVFile(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		order, _ := heardToneOrder(clip.Samples)
		t.Logf("%s heard %v", filepath.Base(c.rec), order)
		if fmt.Sprint(order) != fmt.Sprint(c.want) {
			t.Errorf("%s heard %v, want %v", filepath.Base(c.rec), order, c.want)
		}
	}
}

// A REFER to a target that does not exist: the final NOTIFY carries 404
// and the call stays with the phone until it hangs up.
func TestE2EGatewayBlindTransferUnknownTarget(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	desk := startSIPMedia(t, "127.0.0.1", 660)
	frag := referRun(t, sipp, n, "bob", "nobody", desk.addr().Port)
	if frag != "SIP/2.0 404" {
		t.Errorf("the final NOTIFY said %q, want SIP/2.0 404", frag)
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
