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
		{[]string{"transfer", id}, "exactly one of --to"},
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

// deskReferred is alice's desk phone (sipp) answering bob's call and
// accepting the gateway's REFER: what answer_refer.xml logged about it.
type deskReferred struct {
	referto, callid, gwcontact, us, gw string
}

// startReferredDesk registers alice's desk phone (sipp), runs
// answer_refer.xml on its port, has bob call it, and waits for the call.
func startReferredDesk(t *testing.T, sipp string, n *bridgeNet, bob *phone, rtpPort int) (sdir, sipPort, logFile, id string, done chan error) {
	t.Helper()
	sdir = t.TempDir()
	sipPort = freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	logFile = filepath.Join(sdir, "answer_refer.log")
	done = make(chan error, 1)
	go func() {
		done <- sippServeWait(sipp, sdir, "answer_refer.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(rtpPort),
			"-trace_logs", "-log_file", logFile, "-i", "127.0.0.1", "-p", sipPort)
	}()
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	id = dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	return sdir, sipPort, logFile, id, done
}

// referredLog reads what answer_refer.xml logged on the REFER.
func referredLog(t *testing.T, logFile string, done chan error) deskReferred {
	t.Helper()
	get := func(k string) string {
		return strings.TrimSpace(strings.TrimPrefix(waitSippLog(t, logFile, k+"=", done), k+"="))
	}
	return deskReferred{referto: get("referto"), callid: get("callid"), gwcontact: get("gwcontact"), us: get("us"), gw: get("gw")}
}

// Issue 9 §2, `baton ctl transfer` when the transferee is a SIP phone
// behind the gateway: bob (P2P) talks with alice's desk phone (sipp,
// answer_refer.xml) and transfers it to carol. The gateway sends the phone
// REFER (Refer-To sip:carol@gateway, Referred-By bob); the phone answers
// 202, NOTIFYs 100, calls carol (refer_target.xml: an ordinary INVITE
// through the gateway) and NOTIFYs 200; bob's ctl transfer reports done
// and bob's call ends (the phone's first dialog gets BYE); the phone and
// carol talk, each hearing the other.
func TestE2ECtlTransferSIPPhone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bobRec, carolRec := filepath.Join(n.dir, "bob.wav"), filepath.Join(n.dir, "carol.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, record: bobRec})
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	deskBob := startSIPMedia(t, "127.0.0.1", 660)
	deskCarol := startSIPMedia(t, "127.0.0.1", 550)
	sdir, _, logFile, id, first := startReferredDesk(t, sipp, n, bob, deskBob.addr().Port)
	time.Sleep(time.Second) // bob hears the desk for a while

	xfer := make(chan result, 1)
	go func() { xfer <- ctl(t, n.dir, bob.admin, "--timeout", "60s", "transfer", id, "--to", "carol") }()
	d := referredLog(t, logFile, first)
	t.Logf("the desk phone was REFERred to %q (dialog %s, gateway %s)", d.referto, d.callid, d.gwcontact)
	if d.referto != "carol" {
		t.Fatalf("Refer-To names %q, want carol", d.referto)
	}
	second := make(chan error, 1)
	go func() {
		second <- sippRun(sipp, sdir, n.sipUDP, "refer_target.xml", "-s", d.referto, "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(deskCarol.addr().Port),
			"-key", "notifyuri", d.gwcontact, "-key", "notifyfrom", d.us, "-key", "notifyto", d.gw, "-key", "notifycallid", d.callid,
			"-key", "notifycseq", "2", "-i", "127.0.0.1", "-p", freeUDPPort(t))
	}()
	var r result
	select {
	case r = <-xfer:
	case <-time.After(runTimeout):
		t.Fatal("ctl transfer did not return")
	}
	t.Logf("ctl transfer: %s", r)
	if r.code != 0 || !strings.Contains(r.stdout, "transferred "+id+": alice/desk now talks to carol") {
		t.Fatalf("ctl transfer: exit %d, want done\n%s", r.code, r)
	}
	waitCallState(t, n.dir, bob.admin, id, "ended")
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("the desk's first dialog (the gateway's BYE expected): %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk's first dialog did not end")
	}
	carolID := waitActiveWith(t, n.dir, carol.admin, "alice/desk", second)
	time.Sleep(2 * time.Second) // the desk and carol talk
	mustCtl(t, n.dir, carol.admin, "hangup", carolID)
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("the desk's call with carol: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk's call with carol did not end")
	}
	bob.stop(t)
	carol.stop(t)
	for _, c := range []struct {
		rec  string
		want float64
	}{{bobRec, 660}, {carolRec, 550}} {
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
	deskCarol.close()
	if heard, _ := heardToneOrder(deskCarol.pcm()); fmt.Sprint(heard) != "[880]" {
		t.Errorf("the desk's second line heard %v, want carol's 880 Hz", heard)
	}
}

// The REFERred phone cannot reach the target (404 in the final NOTIFY):
// bob's ctl transfer fails naming it, and bob's call with the desk stays.
func TestE2ECtlTransferSIPPhoneTargetNotFound(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440})
	desk := startSIPMedia(t, "127.0.0.1", 660)
	sdir, _, logFile, id, first := startReferredDesk(t, sipp, n, bob, desk.addr().Port)

	xfer := make(chan result, 1)
	go func() { xfer <- ctl(t, n.dir, bob.admin, "--timeout", "60s", "transfer", id, "--to", "nobody") }()
	d := referredLog(t, logFile, first)
	if err := sippRun(sipp, sdir, n.sipUDP, "refer_target_404.xml", "-s", d.referto, "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
		"-key", "rtpip", "127.0.0.1", "-key", "rtpport", "40000",
		"-key", "notifyuri", d.gwcontact, "-key", "notifyfrom", d.us, "-key", "notifyto", d.gw, "-key", "notifycallid", d.callid,
		"-key", "notifycseq", "2", "-i", "127.0.0.1", "-p", freeUDPPort(t)); err != nil {
		t.Fatalf("the desk's call to nobody: %v", err)
	}
	r := <-xfer
	t.Logf("ctl transfer: %s", r)
	if r.code == 0 || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "the call stays") {
		t.Errorf("ctl transfer to nobody: exit %d, want an error naming the 404\n%s", r.code, r)
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" {
		t.Fatalf("bob's call after the failed transfer: %v", row)
	}
	before := desk.report().packets
	time.Sleep(time.Second)
	if after := desk.report().packets; after < before+25 {
		t.Errorf("the desk got %d packets in the second after the failed transfer: the call does not go on", after-before)
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	if err := <-first; err != nil {
		t.Fatalf("the desk's dialog with bob: %v", err)
	}
}

// Issue 9 §2, transfer policy through the handoff.Policy seam: the
// gateway's devices use the policy-rules plugin with a rule that refuses
// transfers to carol (kind: transfer, peer: the target). bob's `ctl
// transfer` of his call with alice's desk phone to carol is refused by
// the gateway's device before any REFER (the phone sees nothing; ctl
// names the rule's reason; the call stays); the desk phone's own blind
// REFER to carol gets a final NOTIFY 403 and its call stays until it
// hangs up. The gateway logs the rule's reason.
func TestE2EPolicyPluginRefusesTransfers(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	bdir := t.TempDir()
	bin := buildPlugin(t, bdir, "policy-rules")
	rules := writeFile(t, bdir, "rules.yaml", `rules:
  - {kind: transfer, peer: "carol*", action: deny, reason: "no transfers to carol"}
  - {kind: transfer, action: allow}
  - {same_user: true, action: allow}
`)
	n := startBridgeNetWith(t, func(string, map[string]string) string {
		return "plugins:\n  policy:\n    path: " + bin + "\n    args: [\"-rules\", \"" + rules + "\"]\n"
	})
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, autoAnswer: true})

	// bob transfers the desk phone: refused at the gateway's device.
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	desk := startSIPMedia(t, "127.0.0.1", 660)
	phone := make(chan error, 1)
	go func() {
		phone <- sippServeWait(sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk.addr().Port),
			"-i", "127.0.0.1", "-p", sipPort)
	}()
	time.Sleep(500 * time.Millisecond) // sipp binds its port
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
	id := dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	r := ctl(t, n.dir, bob.admin, "--timeout", "30s", "transfer", id, "--to", "carol")
	t.Logf("ctl transfer to carol: %s", r)
	if r.code == 0 || !strings.Contains(r.stderr, "refused by policy: no transfers to carol") || !strings.Contains(r.stderr, "the call stays") {
		t.Errorf("ctl transfer: exit %d, want a refusal naming the rule's reason\n%s", r.code, r)
	}
	if row := callRow(t, n.dir, bob.admin, id); row == nil || row["STATE"] != "active" {
		t.Fatalf("bob's call after the refused transfer: %v", row)
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	// answer_until_bye.xml fails on any request but the BYE: no REFER came.
	if err := <-phone; err != nil {
		t.Fatalf("the desk phone's dialog: %v", err)
	}

	// The desk phone REFERs bob to carol: NOTIFY 403, the call stays.
	desk2 := startSIPMedia(t, "127.0.0.1", 660)
	if frag := referRun(t, sipp, n, "bob", "carol", desk2.addr().Port); frag != "SIP/2.0 403" {
		t.Errorf("the final NOTIFY said %q, want SIP/2.0 403", frag)
	}
	if rep := desk2.report(); rep.packets < 150 {
		t.Errorf("the desk heard only %d packets: the call did not go on after the refused transfer", rep.packets)
	}
	eventually(t, 5*time.Second, "the gateway logging the rule's reason", func() (bool, string) {
		return strings.Count(n.gw.stderr.String(), "no transfers to carol") >= 2, ""
	})
}

// As TestE2ECtlTransferSIPPhone, for a call the desk phone placed itself
// (the gateway is the UAS of the dialog it REFERs in): the desk
// (call_accept_refer.xml) calls bob, bob transfers it to carol, the REFER
// and NOTIFYs flow in that dialog, and the desk ends up talking to carol.
func TestE2ECtlTransferSIPPhoneItsOwnCall(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	carolRec := filepath.Join(n.dir, "carol.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	deskBob := startSIPMedia(t, "127.0.0.1", 660)
	deskCarol := startSIPMedia(t, "127.0.0.1", 550)
	sdir := t.TempDir()
	sipPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", sipPort)
	logFile := filepath.Join(sdir, "call_accept_refer.log")
	first := make(chan error, 1)
	go func() {
		first <- sippRun(sipp, sdir, n.sipUDP, "call_accept_refer.xml", "-s", "bob", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(deskBob.addr().Port), "-trace_logs", "-log_file", logFile, "-i", "127.0.0.1", "-p", sipPort)
	}()
	id := waitActiveWith(t, n.dir, bob.admin, "alice/desk", first)

	xfer := make(chan result, 1)
	go func() { xfer <- ctl(t, n.dir, bob.admin, "--timeout", "60s", "transfer", id, "--to", "carol") }()
	d := referredLog(t, logFile, first)
	second := make(chan error, 1)
	go func() {
		second <- sippRun(sipp, sdir, n.sipUDP, "refer_target.xml", "-s", d.referto, "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(deskCarol.addr().Port),
			"-key", "notifyuri", d.gwcontact, "-key", "notifyfrom", d.us, "-key", "notifyto", d.gw, "-key", "notifycallid", d.callid,
			"-key", "notifycseq", "4", "-i", "127.0.0.1", "-p", freeUDPPort(t))
	}()
	var r result
	select {
	case r = <-xfer:
	case <-time.After(runTimeout):
		t.Fatal("ctl transfer did not return")
	}
	if r.code != 0 || !strings.Contains(r.stdout, "transferred "+id+": alice/desk now talks to carol") {
		t.Fatalf("ctl transfer: exit %d, want done\n%s", r.code, r)
	}
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("the desk's first dialog (the gateway's BYE expected): %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk's first dialog did not end")
	}
	carolID := waitActiveWith(t, n.dir, carol.admin, "alice/desk", second)
	time.Sleep(2 * time.Second) // the desk and carol talk
	mustCtl(t, n.dir, carol.admin, "hangup", carolID)
	if err := <-second; err != nil {
		t.Fatalf("the desk's call with carol: %v", err)
	}
	carol.stop(t)
	clip, err := audio.ReadWAVFile(carolRec)
	if err != nil {
		t.Fatal(err)
	}
	if order, _ := heardToneOrder(clip.Samples); fmt.Sprint(order) != "[550]" {
		t.Errorf("carol heard %v, want the desk's 550 Hz", order)
	}
}
