package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// baresipOpts are extra modules and account parameters for
// startBaresipWith.
type baresipOpts struct {
	modules []string // e.g. "srtp.so"
	account string   // appended to the account line, e.g. ";mediaenc=srtp-mand"
}

func moduleLines(opts []baresipOpts) string {
	var b strings.Builder
	for _, o := range opts {
		for _, m := range o.modules {
			b.WriteString("module " + m + "\n")
		}
	}
	return b.String()
}

func accountParams(opts []baresipOpts) string {
	var b strings.Builder
	for _, o := range opts {
		b.WriteString(o.account)
	}
	return b.String()
}

func sipLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestE2EGatewayBaresipSRTP: the real gateway with sip.srtp required and
// baresip with mandatory SDES-SRTP (srtp.so, mediaenc=srtp-mand): baresip
// calls the softphone bob/laptop through the gateway, then bob calls
// baresip; each side's recording holds the other's tone, and the gateway's
// SIP leg reports the suite and no authentication failures.
func TestE2EGatewayBaresipSRTP(t *testing.T) {
	t.Parallel()
	n := startGatewayNet(t, "  srtp: required")
	rec := filepath.Join(n.dir, "bob.wav")
	bob := startPhone(t, n.dir, n.srv, "bob", "laptop", n.pw["bob"], phoneOpts{tone: 440, record: rec, autoAnswer: true})
	bs := startBaresipWith(t, n.sipUDP, "desk-secret", 660, baresipOpts{modules: []string{"srtp.so"}, account: ";mediaenc=srtp-mand"})
	waitOnlineBuddy(t, n.dir, bob.admin, "alice/desk")

	// baresip -> gateway -> bob.
	bs.command(t, "dial", "sip:bob@"+n.sipUDP)
	var id string
	eventually(t, pollTimeout, "bob to be in an active call", func() (bool, string) {
		r := ctl(t, n.dir, bob.admin, "calls")
		for _, row := range table(t, r.stdout) {
			if row["STATE"] == "active" {
				id = row["ID"]
				return true, ""
			}
		}
		return false, r.stdout
	})
	time.Sleep(3 * time.Second)
	checkSRTPLeg(t, n)
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitNoActiveCall(t, n.dir, bob.admin)
	checkHears(t, rec, 660, 2*time.Second)
	first := bs.heard(t)
	checkHears(t, first, 440, 2*time.Second)

	// bob -> gateway -> baresip (answermode=auto): the gateway's RTP/SAVP
	// offer.
	if err := os.Remove(first); err != nil {
		t.Fatal(err)
	}
	id = dial(t, n.dir, bob.admin, "alice/desk")
	waitCallState(t, n.dir, bob.admin, id, "active")
	time.Sleep(3 * time.Second)
	checkSRTPLeg(t, n)
	mustCtl(t, n.dir, bob.admin, "hangup", id)
	waitNoActiveCall(t, n.dir, bob.admin)
	checkHears(t, bs.heard(t), 440, 2*time.Second)
	checkHears(t, strings.TrimSuffix(rec, ".wav")+"-2.wav", 660, 2*time.Second)
}

// checkSRTPLeg checks the gateway's one call: its SIP leg is SRTP and has
// received packets; authentication failures are logged.
func checkSRTPLeg(t *testing.T, n *gatewayNet) {
	t.Helper()
	st := status(t, n.dir, n.gwAdmin)
	calls, _ := st["calls"].([]any)
	if len(calls) != 1 {
		t.Fatalf("gateway calls %v, want one", calls)
	}
	leg, _ := calls[0].(map[string]any)["sip_leg"].(map[string]any)
	t.Logf("gateway SIP leg: %v", leg)
	if leg["srtp"] == nil || leg["srtp"] == "" {
		t.Fatalf("the SIP leg is not SRTP: %v", leg)
	}
	if r, _ := leg["packets_received"].(float64); r < 50 {
		t.Fatalf("the SIP leg received %v packets in 3 s of SRTP", leg["packets_received"])
	}
}
