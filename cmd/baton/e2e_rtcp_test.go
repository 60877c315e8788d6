package main

import (
	"fmt"
	"testing"
)

// Issue 8 §3, RTCP on the SIP legs with a real peer: baresip (which sends
// RTCP of its own, RFC 3550) calls bob through the real gateway, plain RTP
// and SDES-SRTP (`;mediaenc=srtp-mand`, so RTCP is SRTCP both ways). The
// gateway's status shows, for the call's SIP leg, RTCP received and sent,
// baresip's reception reports about the gateway's stream, and a round
// trip: baresip echoed one of the gateway's SRs in its LSR, so it took the
// gateway's (S)RTCP. Nothing is dropped as malformed, from a wrong source
// or failing SRTCP authentication.
func TestE2EGatewayBaresipRTCP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sip  []string
		opts []baresipOpts
		srtp bool
	}{
		{name: "rtp"},
		{name: "srtp", sip: []string{"  srtp: required"}, opts: []baresipOpts{{modules: []string{"srtp.so"}, account: ";mediaenc=srtp-mand"}}, srtp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startGatewayNet(t, tc.sip...)
			bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, autoAnswer: true})
			bs := startBaresipWith(t, n.sipUDP, "desk-secret", 660, tc.opts...)
			waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")
			bs.command(t, "dial", "sip:bob@"+n.sipUDP)
			var leg, rtcp map[string]any
			eventually(t, 2*pollTimeout, "baresip's RTCP reports with a round trip at the gateway", func() (bool, string) {
				calls, _ := status(t, n.dir, n.gwAdmin)["calls"].([]any)
				if len(calls) != 1 {
					return false, fmt.Sprint(calls)
				}
				leg, _ = calls[0].(map[string]any)["sip_leg"].(map[string]any)
				rtcp, _ = leg["rtcp"].(map[string]any)
				num := func(k string) float64 { v, _ := rtcp[k].(float64); return v }
				return num("packets_received") >= 2 && num("packets_sent") >= 2 && num("far_reports") >= 1 && num("rtt_ms") > 0, fmt.Sprint(rtcp)
			})
			t.Logf("gateway SIP leg RTCP with baresip (%s): %v", tc.name, rtcp)
			for _, k := range []string{"malformed", "wrong_source"} {
				if v, _ := rtcp[k].(float64); v != 0 {
					t.Errorf("rtcp %s = %v, want 0: %v", k, v, rtcp)
				}
			}
			// baresip opens the RTCP pinhole with one plain 16-octet APP
			// "PINGPONG" packet, also on an SRTP stream: not authentic
			// SRTCP (no index, no tag), so dropped and counted, once.
			if v, _ := rtcp["srtcp_auth_failed"].(float64); v > 1 || (!tc.srtp && v != 0) {
				t.Errorf("rtcp srtcp_auth_failed = %v, want at most baresip's one plain APP packet: %v", v, rtcp)
			}
			if got := leg["srtp"] != nil && leg["srtp"] != ""; got != tc.srtp {
				t.Errorf("the SIP leg's srtp is %v, want SRTP %v", leg["srtp"], tc.srtp)
			}
			if v, _ := rtcp["far_fraction_lost"].(float64); v > 0.05 {
				t.Errorf("baresip reports %.0f%% of the gateway's packets lost on loopback", 100*v)
			}
			bs.command(t, "hangup", "")
			waitNoActiveCall(t, n.dir, bob.admin)
		})
	}
}
