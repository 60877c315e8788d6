package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// trunkCallToLaptop has the provider (sipp, trunk_call.xml: 10 s of
// silence at the SIP level, then BYE; it fails on any message from the
// gateway mid-call) call +15551230, routed to alice/laptop, and waits
// until the laptop's call with pstn/trunk1 is active.
func trunkCallToLaptop(t *testing.T, sipp, sdir string, n *bridgeNet, laptop *phone, hz float64) (string, *sipMedia, <-chan error) {
	t.Helper()
	media := startSIPMedia(t, "127.0.0.1", hz)
	call := make(chan error, 1)
	go func() {
		call <- sippRun(sipp, sdir, n.sipUDP, "trunk_call.xml", "-s", "+15551230", "-key", "deskuser", "+14155550100",
			"-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(media.addr().Port), "-i", "127.0.0.6", "-p", freeUDPPort(t))
	}()
	return waitActiveWith(t, n.dir, laptop.admin, "pstn/trunk1", call), media, call
}

// checkTrunkHeard waits for the provider's scenario to end well (nothing
// unexpected reached it) and checks its RTP: one SSRC, no sequence number
// lost, no timestamp jump, and the tones want in order.
func checkTrunkHeard(t *testing.T, what string, call <-chan error, media *sipMedia, want []float64) {
	t.Helper()
	select {
	case err := <-call:
		if err != nil {
			t.Fatalf("%s: the trunk's SIP dialog saw something unexpected: %v", what, err)
		}
	case <-time.After(runTimeout):
		t.Fatalf("%s: the trunk's call did not end", what)
	}
	media.close()
	rep := media.report()
	t.Logf("%s: the trunk heard %d packets, %d lost, %d SSRCs, %d timestamp jumps, longest gap %v", what, rep.packets, rep.lost, rep.ssrcs, rep.tsJumps, rep.maxGap)
	if rep.packets < 300 || rep.ssrcs != 1 || rep.lost != 0 || rep.tsJumps != 0 {
		t.Errorf("%s: the trunk's RTP across the transfer: %d packets, %d SSRCs, %d lost, %d timestamp jumps; want >= 300, 1, 0, 0",
			what, rep.packets, rep.ssrcs, rep.lost, rep.tsJumps)
	}
	order, gap := heardToneOrder(media.pcm())
	t.Logf("%s: the trunk heard tones %v, longest silence between them %v", what, order, gap)
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("%s: the trunk heard %v, want %v", what, order, want)
	}
}

// Issue 9 §2, `baton ctl transfer` of a trunk's call: the gateway is the
// transferee for the trunk party. A PSTN caller (sipp as the provider's
// SBC, trunk_call.xml, failing on any SIP message mid-call) reaches
// alice's laptop. Transferred to a trunk (toll fraud): refused, the call
// kept. Transferred blind to carol/laptop: the trunk's device calls carol
// with the trunk's SIP leg as its audio, the laptop's call ends, and the
// trunk sees no SIP message and one RTP stream (same SSRC, no loss, no
// timestamp jump) with the laptop's 660 Hz, then carol's 880 Hz; carol's
// recording holds the caller's 440 Hz; the provider's BYE ends carol's
// call. Then attended (`--attended`, the SIP party case): a second trunk
// call reaches the laptop, which also calls carol; the trunk's device
// calls carol with invite-replaces, carol takes it in place of her call
// with the laptop, both of the laptop's calls end, and the trunk again
// hears 660 then 880 Hz on one untouched stream.
func TestE2ECtlTransferTrunkCall(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	sdir := t.TempDir()
	n := startBridgeNetWith(t, func(dir string, pw map[string]string) string {
		mustBaton(t, dir, "buddy", "add", "pstn", "carol", "--data-dir", filepath.Join(dir, "data"))
		return fmt.Sprintf(`trunks:
  - name: pstn
    device: pstn/trunk1
    password_file: %s
    allow: [127.0.0.6]
    numbers:
      - {number: "+15551230", to: alice/laptop}
`, pw["pstn"])
	})
	eventually(t, pollTimeout, "the trunk's device online", func() (bool, string) {
		ts := trunkStatus(t, n.dir, n.gwAdmin, "pstn")
		return ts["online"] == true, fmt.Sprint(ts)
	})
	carolRec := filepath.Join(n.dir, "carol.wav")
	laptop := startPhone(t, n.dir, n.srv, "alice", "laptop", n.pw["alice"], phoneOpts{tone: 660, autoAnswer: true, maxCalls: 2})
	carol := startPhone(t, n.dir, n.srv, "carol", "laptop", n.pw["carol"], phoneOpts{tone: 880, record: carolRec, autoAnswer: true})
	waitOnlineBuddy(t, n.dir, laptop.admin, "carol/laptop")

	// Blind.
	id, media, call := trunkCallToLaptop(t, sipp, sdir, n, laptop, 440)
	time.Sleep(1500 * time.Millisecond) // the caller hears the laptop for a while
	r := ctl(t, n.dir, laptop.admin, "--timeout", "30s", "transfer", id, "--to", "pstn")
	if r.code == 0 || !strings.Contains(r.stderr, "toll fraud") {
		t.Errorf("a trunk's caller transferred to a trunk: exit %d, want a refusal naming toll fraud\n%s", r.code, r)
	}
	t.Logf("to a trunk: %s", strings.TrimSpace(r.stderr))
	if row := callRow(t, n.dir, laptop.admin, id); row == nil || row["STATE"] != "active" {
		t.Fatalf("the laptop's call after the refused transfer: %v", row)
	}
	r = mustCtl(t, n.dir, laptop.admin, "--timeout", "30s", "transfer", id, "--to", "carol/laptop")
	t.Logf("ctl transfer: %s", strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "pstn/trunk1 now talks to carol/laptop") {
		t.Errorf("ctl transfer printed %q", r.stdout)
	}
	waitCallState(t, n.dir, laptop.admin, id, "ended")
	newID := waitActiveWith(t, n.dir, carol.admin, "pstn/trunk1", call)
	checkTrunkHeard(t, "blind", call, media, []float64{660, 880})
	waitCallState(t, n.dir, carol.admin, newID, "ended") // the provider's BYE ended it
	checkHears(t, carolRec, 440, 2*time.Second)

	// Attended: the trunk's caller (550 Hz now) and carol, both with the laptop.
	id, media, call = trunkCallToLaptop(t, sipp, sdir, n, laptop, 550)
	id2 := dial(t, n.dir, laptop.admin, "carol/laptop")
	waitCallState(t, n.dir, carol.admin, id2, "active")
	time.Sleep(1500 * time.Millisecond)
	r = mustCtl(t, n.dir, laptop.admin, "--timeout", "30s", "transfer", id, "--attended", id2)
	t.Logf("ctl transfer --attended: %s", strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "pstn/trunk1 now talks to carol/laptop") || !strings.Contains(r.stdout, id2+" replaced") {
		t.Errorf("ctl transfer --attended printed %q", r.stdout)
	}
	for _, c := range []struct{ admin, id string }{{laptop.admin, id}, {laptop.admin, id2}, {carol.admin, id2}} {
		waitCallState(t, n.dir, c.admin, c.id, "ended")
	}
	newID = waitActiveWith(t, n.dir, carol.admin, "pstn/trunk1", call)
	checkTrunkHeard(t, "attended", call, media, []float64{660, 880})
	waitCallState(t, n.dir, carol.admin, newID, "ended")
	carol.stop(t)
	// carol's recordings: the blind transfer's call, her call with the
	// laptop (660 Hz), the attended transfer's call (the caller's 550 Hz).
	for _, c := range []struct {
		rec  string
		want float64
	}{{filepath.Join(n.dir, "carol-2.wav"), 660}, {filepath.Join(n.dir, "carol-3.wav"), 550}} {
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
