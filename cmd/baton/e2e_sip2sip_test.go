package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Issue 8 §2, SIP phone -> SIP phone through the gateway: alice's desk
// phone (sipp) dials "carol"; carol's only device online is her SIP desk
// phone behind the same gateway (sipp as the UAS, registered first). The
// gateway bridges the two dialogs through the two devices' P2P endpoints,
// so the call is an ordinary P2P call that a softphone of either user can
// later pull. carol's phone answers; audio flows both ways between the
// two phones' RTP sockets; alice hangs up after 10 s and carol's phone
// gets the gateway's BYE.
func TestE2EDeskPhoneCallsDeskPhone(t *testing.T) {
	t.Parallel()
	sipp := needTool(t, "sipp")
	n := startBridgeNet(t)
	sdir := t.TempDir()

	carolPort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "carol", "-au", "carol", "-ap", "carol-sip-secret", "-i", "127.0.0.1", "-p", carolPort)
	carolMedia := startSIPMedia(t, "127.0.0.1", 550)
	carol := sippServe(t, sipp, sdir, "answer_until_bye.xml", "-key", "rtpip", "127.0.0.1",
		"-key", "rtpport", fmt.Sprint(carolMedia.addr().Port), "-i", "127.0.0.1", "-p", carolPort)

	alicePort := freeUDPPort(t)
	runSipp(t, sipp, sdir, n.sipUDP, "register.xml", "-key", "deskuser", "alice", "-au", "alice", "-ap", "alice-sip-secret", "-i", "127.0.0.1", "-p", alicePort)
	eventually(t, pollTimeout, "both desk phones registered", func() (bool, string) {
		st := mustCtl(t, n.dir, n.gwAdmin, "status").stdout
		return strings.Contains(st, "alice/desk") && strings.Contains(st, "carol/desk"), st
	})
	aliceMedia := startSIPMedia(t, "127.0.0.1", 660)
	// call_external_media.xml: alice talks for 10 s, then sends BYE.
	if err := sippRun(sipp, sdir, n.sipUDP, "call_external_media.xml", "-s", "carol", "-key", "deskuser", "alice",
		"-au", "alice", "-ap", "alice-sip-secret", "-key", "rtpip", "127.0.0.1", "-key", "rtpport", fmt.Sprint(aliceMedia.addr().Port),
		"-i", "127.0.0.1", "-p", alicePort); err != nil {
		t.Fatalf("alice's desk phone calling carol's: %v", err)
	}
	select {
	case err := <-carol:
		if err != nil {
			t.Fatalf("carol's desk phone: %v", err)
		}
	case <-time.After(runTimeout):
		t.Fatal("the gateway never sent BYE to carol's desk phone after alice hung up")
	}
	aliceMedia.close()
	carolMedia.close()
	ar, cr := aliceMedia.report(), carolMedia.report()
	t.Logf("alice's phone heard %d packets (%d lost), carol's %d (%d lost)", ar.packets, ar.lost, cr.packets, cr.lost)
	if o, _ := heardToneOrder(aliceMedia.pcm()); len(o) != 1 || o[0] != 550 {
		t.Errorf("alice's desk phone heard %v, want carol's 550 Hz", o)
	}
	if o, _ := heardToneOrder(carolMedia.pcm()); len(o) != 1 || o[0] != 660 {
		t.Errorf("carol's desk phone heard %v, want alice's 660 Hz", o)
	}
	if ar.packets < 200 || cr.packets < 200 {
		t.Errorf("too little audio over a 10 s call: alice heard %d packets, carol %d", ar.packets, cr.packets)
	}
}
