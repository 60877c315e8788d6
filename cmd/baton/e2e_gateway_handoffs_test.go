package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/control"
)

// Issue 9 §5: the gateway's GET /v1/handoffs. A trunk caller reaches
// alice's desk phone (sipp); alice's laptop pulls the call (the gateway is
// B for alice/desk, C for the trunk's pstn/trunk1); the desk phone takes it
// back with *8 (the gateway is A for alice/desk, C again for the trunk).
// The records say so: B's sip_messages hold the BYE to the desk phone
// after the commit and its 200; A's hold the pickup's INVITE, 200 and ACK;
// the trunk's (C) hold nothing, with the longest send gap toward the trunk
// measured on the leg, which cannot exceed what the trunk's own receiver
// saw. `baton ctl handoffs` against the gateway prints the same.
func TestE2EGatewayHandoffsRoles(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	sdir := t.TempDir()
	n := startBridgeNetWith(t, func(dir string, pw map[string]string) string {
		return fmt.Sprintf(`trunks:
  - name: pstn
    device: pstn/trunk1
    password_file: %s
    allow: [127.0.0.6]
    numbers:
      - {number: "+15551230", to: alice/desk}
`, pw["pstn"])
	})
	eventually(t, pollTimeout, "the trunk's device online", func() (bool, string) {
		ts := trunkStatus(t, n.dir, n.gwAdmin, "pstn")
		return ts["online"] == true, fmt.Sprint(ts)
	})
	gw := control.NewClient(n.gwAdmin, 0)
	if list, err := gw.HandoffRecords(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("before any call: %v, %v; want an empty list", list, err)
	}
	events := gatewayEvents(t, n.gwAdmin)

	deskPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", deskPort)
	desk1 := startSIPMedia(t, "127.0.0.1", 440)
	deskAnswers := sippServe(t, sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk1.addr().Port),
		"-i", "127.0.0.1", "-p", deskPort)
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660})

	trunk := startSIPMedia(t, "127.0.0.1", 350)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "trunk_call.xml", "-s", "+15551230", "-key", "deskuser", "+14155550100",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(trunk.addr().Port), "-i", "127.0.0.6", "-p", freeUDPPort(t))
	}()
	eventually(t, pollTimeout, "the trunk's call answered by the desk phone", func() (bool, string) {
		select {
		case err := <-call:
			t.Fatalf("the trunk's call ended before it was answered: %v", err)
		default:
		}
		r := status(t, n.dir, n.gwAdmin)
		calls, _ := r["calls"].([]any)
		for _, c := range calls {
			if m, ok := c.(map[string]any); ok && m["state"] == "active" {
				return true, ""
			}
		}
		return false, fmt.Sprint(r["calls"])
	})
	time.Sleep(1500 * time.Millisecond)

	if r := mustCtl(t, n.dir, laptop.admin, "pull", "--from", "desk"); !strings.Contains(r.stdout, "done") {
		t.Fatalf("the laptop's pull did not report done:\n%s", r.stdout)
	}
	select {
	case err := <-deskAnswers:
		if err != nil {
			t.Fatalf("the desk phone's first dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the gateway never sent BYE to the desk phone after the laptop's pull")
	}
	time.Sleep(1500 * time.Millisecond)

	desk2 := startSIPMedia(t, "127.0.0.1", 550)
	takeBack := make(chan error, 1)
	go func() {
		takeBack <- sippRun(sipp, sdir, n.sipUDP, "call_until_bye.xml", "-s", "*8", "-key", "deskuser", "alice",
			"-au", "alice", "-ap", "alice-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(desk2.addr().Port),
			"-i", "127.0.0.1", "-p", deskPort)
	}()
	// Both moves are recorded: B and A for alice/desk, C twice for the trunk.
	var list []control.GatewayHandoff
	eventually(t, pollTimeout, "the gateway's handoffs", func() (bool, string) {
		var err error
		list, err = gw.HandoffRecords(t.Context())
		if err != nil {
			return false, err.Error()
		}
		var b, a, c int
		for _, h := range list {
			switch {
			case h.Role == "B" && h.State == "done":
				b++
			case h.Role == "A" && h.State == "done":
				a++
			case h.Role == "C" && h.State == "done":
				c++
			}
		}
		return b == 1 && a == 1 && c == 2, fmt.Sprintf("%d B, %d A, %d C done: %+v", b, a, c, list)
	})
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("the trunk's SIP dialog saw something during the moves: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the trunk's call did not end")
	}
	select {
	case err := <-takeBack:
		if err != nil {
			t.Fatalf("the desk phone's second dialog: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the desk phone got no BYE when the trunk hung up")
	}
	trunk.close()
	rep := trunk.report()

	list, err := gw.HandoffRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range list {
		gap := "-"
		if h.GapHeardByCMS != nil {
			gap = fmt.Sprintf("%.2f", *h.GapHeardByCMS)
		}
		t.Logf("%s %s %s as %s: %s, commit after %.2f ms (-1: none), gap heard by C %s ms, %d SIP messages on %v",
			h.ID, h.Kind, h.Device, h.Role, h.State, commitMS(h.TimeToCommitMS), gap, len(h.SIPMessages), h.SIPCallIDs)
		for _, m := range h.SIPMessages {
			t.Logf("    %+8.2f ms %-8s %-6s %3d %-10s %s", float64(m.Time.Sub(h.Started).Microseconds())/1000, m.Dir, m.Method, m.Status, m.CSeq, m.Remote)
		}
	}
	var bRec, aRec *control.GatewayHandoff
	var cRecs []control.GatewayHandoff
	for i := range list {
		switch h := &list[i]; {
		case h.Role == "B" && h.State == "done":
			bRec = h
		case h.Role == "A" && h.State == "done":
			aRec = h
		case h.Role == "C" && h.State == "done":
			cRecs = append(cRecs, *h)
		}
	}

	// B: the BYE to the desk phone after the commit, and its 200.
	if bRec.Device != "alice/desk" || bRec.To != "alice/laptop" || bRec.TimeToCommitMS == nil || len(bRec.Steps) < 2 {
		t.Errorf("B: %+v", bRec.HandoffInfo)
	}
	commit := bRec.Started.Add(time.Duration(commitMS(bRec.TimeToCommitMS) * float64(time.Millisecond)))
	if m, ok := findSIP(bRec.SIPMessages, "sent", "BYE", 0); !ok {
		t.Errorf("B: no BYE sent to the desk phone in %+v", bRec.SIPMessages)
	} else if m.Time.Before(commit.Add(-time.Millisecond)) {
		t.Errorf("B: BYE at %v, before the commit at %v", m.Time, commit)
	}
	if _, ok := findSIP(bRec.SIPMessages, "received", "", 200); !ok {
		t.Errorf("B: no 200 for the BYE in %+v", bRec.SIPMessages)
	}
	for _, m := range bRec.SIPMessages {
		if m.Method == "INVITE" {
			t.Errorf("B: an INVITE in the pull's window: %+v", m)
		}
	}

	// A: the pickup's INVITE, the gateway's 200 (sent before the pull,
	// docs/transfers.md), the ACK.
	if aRec.Device != "alice/desk" || aRec.Kind != "pull" || aRec.From != "alice/laptop" && aRec.From != "laptop" {
		t.Errorf("A: %+v", aRec.HandoffInfo)
	}
	// (The phone's first INVITE is challenged: INVITE, 407, ACK first.)
	ok, ok2 := findSIP(aRec.SIPMessages, "sent", "", 200)
	inv, ok1 := findSIPCSeq(aRec.SIPMessages, "received", "INVITE", strings.Fields(ok.CSeq + " x")[0]+" INVITE")
	ack, ok3 := findSIPCSeq(aRec.SIPMessages, "received", "ACK", strings.Fields(ok.CSeq + " x")[0]+" ACK")
	if !ok1 || !ok2 || !ok3 || ok.Time.Before(inv.Time) || ack.Time.Before(ok.Time) || !strings.HasSuffix(ok.CSeq, "INVITE") {
		t.Errorf("A: want INVITE, 200 (INVITE), ACK in order, got %+v", aRec.SIPMessages)
	}

	// A and B relay to C (the trunk, behind this gateway): their gap is
	// the trunk leg's too.
	for _, h := range []*control.GatewayHandoff{aRec, bRec} {
		if h.GapHeardByCMS == nil {
			t.Errorf("%s as %s: no gap_heard_by_c_ms, but C is the gateway's trunk", h.Device, h.Role)
		} else if limit := float64(rep.maxGap.Milliseconds()) + 50; *h.GapHeardByCMS > limit {
			t.Errorf("%s as %s: gap_heard_by_c_ms %.2f, but the trunk's longest gap was %v", h.Device, h.Role, *h.GapHeardByCMS, rep.maxGap)
		}
	}

	// C: the trunk's dialog saw nothing; the gap toward it is measured.
	if len(cRecs) != 2 {
		t.Fatalf("want 2 C records, got %d", len(cRecs))
	}
	for _, c := range cRecs {
		if c.Device != "pstn/trunk1" || len(c.SIPCallIDs) != 1 || c.TimeToCommitMS == nil || !hasStep(c, 7) || !hasStep(c, 11) {
			t.Errorf("C: %+v", c)
		}
		if len(c.SIPMessages) != 0 {
			t.Errorf("C: SIP messages on the trunk's dialog during the handoff: %+v", c.SIPMessages)
		}
		if c.GapHeardByCMS == nil {
			t.Errorf("C: no gap_heard_by_c_ms")
			continue
		}
		// The trunk's receiver saw every pause the gateway sent, plus
		// loopback jitter.
		if limit := float64(rep.maxGap.Milliseconds()) + 50; *c.GapHeardByCMS > limit {
			t.Errorf("C: gap_heard_by_c_ms %.2f, but the trunk's longest gap was %v", *c.GapHeardByCMS, rep.maxGap)
		}
	}
	t.Logf("the trunk's receiver: longest packet gap %v, %d lost", rep.maxGap, rep.lost)

	// The gateway's event stream carried each role's events, with the device.
	for _, want := range []string{"alice/desk handoff.offered", "alice/desk handoff.muted", "pstn/trunk1 handoff.reestablished",
		"pstn/trunk1 media.peer-moved", "alice/desk handoff.step", "alice/desk handoff.done"} {
		eventually(t, pollTimeout, "event "+want, func() (bool, string) {
			got := events()
			return slices.Contains(got, want), fmt.Sprint(got)
		})
	}

	// One by id, and ctl against the gateway.
	if one, err := gw.HandoffRecord(t.Context(), bRec.ID); err != nil || one.Role != "B" {
		t.Errorf("GET /v1/handoffs/%s: %+v, %v", bRec.ID, one, err)
	}
	r := mustCtl(t, n.dir, n.gwAdmin, "handoffs")
	for _, want := range []string{"gateway: alice/desk as B", "gateway: alice/desk as A", "gateway: pstn/trunk1 as C", "no SIP messages", "sent      BYE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ctl handoffs: no %q in:\n%s", want, r.stdout)
		}
	}
	if r := ctl(t, n.dir, n.gwAdmin, "handoff", "g-nope"); r.code == 0 || !strings.Contains(r.stderr+r.stdout, "no-such-handoff") && !strings.Contains(r.stderr+r.stdout, "not a handoff") {
		t.Errorf("ctl handoff g-nope: %s", r)
	}
}

// gatewayEvents reads the gateway's GET /v1/events until the test ends;
// the returned func lists "device type" of the events so far.
func gatewayEvents(t *testing.T, admin string) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events at the gateway: %s", resp.Status)
	}
	var mu sync.Mutex
	var got []string
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev control.DeviceEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			mu.Lock()
			got = append(got, ev.Device+" "+ev.Type)
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func findSIP(list []control.SIPMessage, dir, method string, status int) (control.SIPMessage, bool) {
	for _, m := range list {
		if m.Dir == dir && m.Method == method && m.Status == status {
			return m, true
		}
	}
	return control.SIPMessage{}, false
}

func findSIPCSeq(list []control.SIPMessage, dir, method, cseq string) (control.SIPMessage, bool) {
	for _, m := range list {
		if m.Dir == dir && m.Method == method && m.CSeq == cseq {
			return m, true
		}
	}
	return control.SIPMessage{}, false
}

// Issue 9 §5, a transfer from a SIP phone: alice's desk phone (sipp)
// REFERs bob to carol (TestE2EGatewayBlindTransfer's call). The gateway's
// /v1/handoffs holds it: alice/desk as the transferee, done, a step per
// sipfrag it reported (100, then 200), and the REFER, its 202 and the
// NOTIFYs among its SIP messages.
func TestE2EGatewayHandoffsBlindTransfer(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	startPhone(t, n.dir, n.srv, "bob", "softphone", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
	startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, autoAnswer: true})
	desk := startSIPMedia(t, "127.0.0.1", 660)
	if frag := referRun(t, sipp, n, "bob", "carol", desk.addr().Port); frag != "SIP/2.0 200" {
		t.Fatalf("the final NOTIFY said %q, want SIP/2.0 200", frag)
	}
	gw := control.NewClient(n.gwAdmin, 0)
	list, err := gw.HandoffRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var rec *control.GatewayHandoff
	for i := range list {
		h := &list[i]
		t.Logf("%s %s %s as %s: %s, %d steps, %d SIP messages", h.ID, h.Kind, h.Device, h.Role, h.State, len(h.Steps), len(h.SIPMessages))
		for _, m := range h.SIPMessages {
			t.Logf("    %+8.2f ms %-8s %-6s %3d %-12s %s", float64(m.Time.Sub(h.Started).Microseconds())/1000, m.Dir, m.Method, m.Status, m.CSeq, m.Remote)
		}
		if h.Kind == "refer" {
			rec = h
		}
	}
	if rec == nil {
		t.Fatalf("no refer record in %+v", list)
	}
	if rec.Device != "alice/desk" || rec.Role != "transferee" || rec.State != "done" || rec.Peer != "bob/softphone" || commitMS(rec.TimeToCommitMS) <= 0 {
		t.Errorf("refer record: %+v", rec.HandoffInfo)
	}
	var frags []string
	for _, s := range rec.Steps {
		frags = append(frags, s.Title)
	}
	if len(frags) != 2 || !strings.Contains(frags[0], "SIP/2.0 100") || !strings.Contains(frags[1], "SIP/2.0 200") {
		t.Errorf("refer steps %q, want the 100 then the 200 sipfrag", frags)
	}
	if _, ok := findSIP(rec.SIPMessages, "received", "REFER", 0); !ok {
		t.Errorf("no REFER in %+v", rec.SIPMessages)
	}
	if _, ok := findSIPCSeq(rec.SIPMessages, "sent", "", func() string {
		m, _ := findSIP(rec.SIPMessages, "received", "REFER", 0)
		return m.CSeq
	}()); !ok {
		t.Errorf("no answer to the REFER in %+v", rec.SIPMessages)
	}
	if _, ok := findSIP(rec.SIPMessages, "sent", "NOTIFY", 0); !ok {
		t.Errorf("no NOTIFY in %+v", rec.SIPMessages)
	}
}

func commitMS(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

func hasStep(h control.GatewayHandoff, step int) bool {
	for _, s := range h.Steps {
		if s.Step == step {
			return true
		}
	}
	return false
}

// Issue 9 §5, `baton ctl transfer` of a SIP phone's call: bob transfers
// alice's desk phone (sipp) to nobody; the gateway REFERs the phone, whose
// final NOTIFY says 404 (TestE2ECtlTransferSIPPhoneTargetNotFound's call).
// The gateway's record: alice/desk as the transferee, failed, with the
// REFER it sent, the phone's 202 and its NOTIFYs.
func TestE2EGatewayHandoffsCtlTransferSIPPhone(t *testing.T) {
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
	if r := <-xfer; r.code == 0 {
		t.Fatalf("ctl transfer to nobody succeeded:\n%s", r)
	}
	gw := control.NewClient(n.gwAdmin, 0)
	var rec control.GatewayHandoff
	eventually(t, pollTimeout, "the transfer's record", func() (bool, string) {
		list, err := gw.HandoffRecords(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for _, h := range list {
			if h.Kind == "transfer" && h.State != "running" {
				rec = h
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", list)
	})
	t.Logf("%s %s %s as %s: %s (%s), %d steps", rec.ID, rec.Kind, rec.Device, rec.Role, rec.State, rec.Error, len(rec.Steps))
	for _, m := range rec.SIPMessages {
		t.Logf("    %+8.2f ms %-8s %-6s %3d %-12s %s", float64(m.Time.Sub(rec.Started).Microseconds())/1000, m.Dir, m.Method, m.Status, m.CSeq, m.Remote)
	}
	if rec.Device != "alice/desk" || rec.Role != "transferee" || rec.State != "failed" || !strings.Contains(rec.Error, "404") || rec.TimeToCommitMS != nil {
		t.Errorf("transfer record: %+v", rec)
	}
	refer, ok := findSIP(rec.SIPMessages, "sent", "REFER", 0)
	if !ok {
		t.Fatalf("no REFER sent in %+v", rec.SIPMessages)
	}
	if _, ok := findSIPCSeq(rec.SIPMessages, "received", "", refer.CSeq); !ok {
		t.Errorf("no answer to the REFER in %+v", rec.SIPMessages)
	}
	if _, ok := findSIP(rec.SIPMessages, "received", "NOTIFY", 0); !ok {
		t.Errorf("no NOTIFY from the phone in %+v", rec.SIPMessages)
	}
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	if err := <-first; err != nil {
		t.Fatalf("the desk's dialog with bob: %v", err)
	}
}

// waitGatewayRecord waits for a finished record of the gateway at admin
// that match accepts, logs every record with its SIP messages, and
// returns it.
func waitGatewayRecord(t *testing.T, admin, what string, match func(control.GatewayHandoff) bool) control.GatewayHandoff {
	t.Helper()
	gw := control.NewClient(admin, 0)
	var rec control.GatewayHandoff
	var list []control.GatewayHandoff
	eventually(t, pollTimeout, what, func() (bool, string) {
		var err error
		list, err = gw.HandoffRecords(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for _, h := range list {
			if h.State != "running" && match(h) {
				rec = h
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", list)
	})
	for _, h := range list {
		var steps []string
		for _, s := range h.Steps {
			steps = append(steps, fmt.Sprintf("%d %s", s.Step, s.Title))
		}
		t.Logf("%s %s %s as %s: %s (%s), commit after %.2f ms, steps %q", h.ID, h.Kind, h.Device, h.Role, h.State, h.Error, commitMS(h.TimeToCommitMS), steps)
		for _, m := range h.SIPMessages {
			t.Logf("    %+8.2f ms %-8s %-9s %3d %-12s %s", float64(m.Time.Sub(h.Started).Microseconds())/1000, m.Dir, m.Method, m.Status, m.CSeq, m.Remote)
		}
	}
	return rec
}

// sipSeq is a record's SIP messages as "dir METHOD" or "dir STATUS CSEQ-METHOD".
func sipSeq(h control.GatewayHandoff) []string {
	var out []string
	for _, m := range h.SIPMessages {
		if m.Method != "" {
			out = append(out, m.Dir+" "+m.Method)
			continue
		}
		method := ""
		if f := strings.Fields(m.CSeq); len(f) == 2 {
			method = " " + f[1]
		}
		out = append(out, fmt.Sprintf("%s %d%s", m.Dir, m.Status, method))
	}
	return out
}

// checkSIPSeq checks that want appears in h's SIP messages in that order
// (a UDP retransmission or a provisional response may come between), and
// that every message is of a method in want (no message of another
// transaction).
func checkSIPSeq(t *testing.T, h control.GatewayHandoff, want ...string) {
	t.Helper()
	got := sipSeq(h)
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("%s as %s: SIP messages %q, want %q in this order", h.Device, h.Role, got, want)
	}
	methods := map[string]bool{}
	for _, w := range want {
		f := strings.Fields(w)
		methods[f[len(f)-1]] = true
	}
	for _, g := range got {
		f := strings.Fields(g)
		if !methods[f[len(f)-1]] {
			t.Errorf("%s as %s: unexpected SIP message %q among %q", h.Device, h.Role, g, got)
		}
	}
}

func stepNumbers(h control.GatewayHandoff) []int {
	var out []int
	for _, s := range h.Steps {
		out = append(out, s.Step)
	}
	return out
}
